"""The `torch.optim` optimizers and `torch.optim.lr_scheduler` schedulers a `train` part may name.

Pure Python (so `netevo check` validates them without importing torch). Each entry
lists the keyword arguments a spec may give, from the classes' signatures in
torch 2.x; `REQUIRED` marks arguments without a default. Left out: LBFGS (needs a
closure), SparseAdam (sparse gradients), Muon (2-D weights only), the implementation
switches (foreach, fused, capturable, differentiable), and schedulers that take
functions or other schedulers, or need a metric (LambdaLR, MultiplicativeLR,
SequentialLR, ChainedScheduler, ReduceLROnPlateau).
"""
from __future__ import annotations

from .registry import REQUIRED

_ADAM = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")
OPTIMIZERS: dict[str, tuple] = {
    "Adam": _ADAM + ("decoupled_weight_decay",),
    "AdamW": _ADAM,
    "Adamax": ("lr", "betas", "eps", "weight_decay", "maximize"),
    "NAdam": ("lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay", "maximize"),
    "RAdam": ("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize"),
    "SGD": ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"),
    "RMSprop": ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"),
    "Rprop": ("lr", "etas", "step_sizes", "maximize"),
    "Adagrad": ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"),
    "Adadelta": ("lr", "rho", "eps", "weight_decay", "maximize"),
    "Adafactor": ("lr", "beta2_decay", "eps", "d", "weight_decay", "maximize"),
    "ASGD": ("lr", "lambd", "alpha", "t0", "weight_decay", "maximize"),
}

SCHEDULERS: dict[str, dict] = {
    "StepLR": {"step_size": REQUIRED, "gamma": 0.1},
    "MultiStepLR": {"milestones": REQUIRED, "gamma": 0.1},
    "ExponentialLR": {"gamma": REQUIRED},
    "CosineAnnealingLR": {"T_max": REQUIRED, "eta_min": 0.0},
    "CosineAnnealingWarmRestarts": {"T_0": REQUIRED, "T_mult": 1, "eta_min": 0.0},
    "LinearLR": {"start_factor": 1 / 3, "end_factor": 1.0, "total_iters": 5},
    "ConstantLR": {"factor": 1 / 3, "total_iters": 5},
    "PolynomialLR": {"total_iters": 5, "power": 1.0},
    "OneCycleLR": {"max_lr": REQUIRED, "total_steps": None, "epochs": None, "steps_per_epoch": None,
                   "pct_start": 0.3, "anneal_strategy": "cos", "cycle_momentum": True, "base_momentum": 0.85,
                   "max_momentum": 0.95, "div_factor": 25.0, "final_div_factor": 1e4, "three_phase": False},
    "CyclicLR": {"base_lr": REQUIRED, "max_lr": REQUIRED, "step_size_up": 2000, "step_size_down": None,
                 "mode": "triangular", "gamma": 1.0, "cycle_momentum": True, "base_momentum": 0.8,
                 "max_momentum": 0.9},
}


def canonical_name(name: str, table) -> str | None:
    """The table's spelling of `name`, matched without regard to case (`adam` -> `Adam`)."""
    if name in table:
        return name
    folded = {k.lower(): k for k in table}
    return folded.get(name.lower())
