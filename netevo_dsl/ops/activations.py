"""Activation functions, shared by network ops and WANN genomes.

The WANN set follows Gaier & Ha (2019) and the authors' code. In a WANN genome
`linear` means the identity; in a network, `linear(...)` is the layer and the
identity activation is spelled `identity()`.

Each entry names the torch expression that computes it, so the compiler,
the batched evaluator and the reference evaluator share one definition.
"""
from __future__ import annotations

import attrs


@attrs.frozen
class Activation:
    name: str
    id: int  # stable integer id, used when genomes are packed into tensors
    torch_expr: str  # a torch expression in `x`; `torch` and `math` are in scope
    idempotent: bool = False  # f(f(x)) == f(x): Net2Deeper may insert an identity after it
    bounded: tuple | None = None  # (low, high) for saturation analysis
    doc: str = ""


WANN_ACTIVATIONS: tuple[Activation, ...] = (
    Activation("linear", 0, "x", idempotent=True, doc="identity"),
    Activation("step", 1, "(x > 0).to(x.dtype)", idempotent=True, bounded=(0.0, 1.0), doc="unsigned step"),
    Activation("sin", 2, "torch.sin(math.pi * x)", doc="sin(pi x)"),
    Activation("gauss", 3, "torch.exp(-x * x / 2.0)", bounded=(0.0, 1.0), doc="exp(-x^2 / 2)"),
    Activation("tanh", 4, "torch.tanh(x)", bounded=(-1.0, 1.0)),
    Activation("sigmoid", 5, "torch.sigmoid(x)", bounded=(0.0, 1.0), doc="logistic"),
    Activation("inverse", 6, "-x", doc="-x"),
    Activation("abs", 7, "torch.abs(x)", idempotent=True),
    Activation("relu", 8, "torch.relu(x)", idempotent=True),
    Activation("cos", 9, "torch.cos(math.pi * x)", doc="cos(pi x)"),
    Activation("square", 10, "x * x", doc="x^2"),
)

WANN_BY_NAME = {a.name: a for a in WANN_ACTIVATIONS}

# Activations available as network ops (`relu()`, `gelu()`, ...). `linear` is a layer there.
NETWORK_ACTIVATIONS: tuple[Activation, ...] = tuple(a for a in WANN_ACTIVATIONS if a.name != "linear") + (
    Activation("identity", 11, "x", idempotent=True),
    Activation("gelu", 12, "torch.nn.functional.gelu(x)"),
    Activation("gelu_tanh", 13, "torch.nn.functional.gelu(x, approximate='tanh')", doc="GPT-2's gelu"),
    Activation("silu", 14, "torch.nn.functional.silu(x)"),
    # MobileNet's: ReLU6 (Sandler et al. 2018), hard swish and hard sigmoid (Howard et al. 2019, MobileNetV3)
    Activation("relu6", 15, "torch.nn.functional.relu6(x)", idempotent=True, bounded=(0.0, 6.0), doc="min(max(x, 0), 6)"),
    Activation("hardswish", 16, "torch.nn.functional.hardswish(x)", doc="x * relu6(x + 3) / 6"),
    Activation("hardsigmoid", 17, "torch.nn.functional.hardsigmoid(x)", bounded=(0.0, 1.0), doc="relu6(x + 3) / 6"),
)

NETWORK_BY_NAME = {a.name: a for a in NETWORK_ACTIVATIONS}
ALL_BY_ID = {a.id: a for a in WANN_ACTIVATIONS + NETWORK_ACTIVATIONS}


def wann_activation(name: str) -> Activation:
    return WANN_BY_NAME[name]


def torch_fn(name: str, wann: bool = True):
    """The activation as a callable on tensors (imports torch lazily)."""
    table = WANN_BY_NAME if wann else NETWORK_BY_NAME
    return _torch_impls()[table[name].name]


def _torch_impls() -> dict:
    global _IMPLS
    if _IMPLS is None:
        import math

        import torch
        import torch.nn.functional as F

        _IMPLS = {
            "linear": lambda x: x,
            "identity": lambda x: x,
            "step": lambda x: (x > 0).to(x.dtype),
            "sin": lambda x: torch.sin(math.pi * x),
            "gauss": lambda x: torch.exp(-x * x / 2.0),
            "tanh": torch.tanh,
            "sigmoid": torch.sigmoid,
            "inverse": lambda x: -x,
            "abs": torch.abs,
            "relu": torch.relu,
            "cos": lambda x: torch.cos(math.pi * x),
            "square": lambda x: x * x,
            "gelu": F.gelu,
            "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
            "silu": F.silu,
            "relu6": F.relu6,
            "hardswish": F.hardswish,
            "hardsigmoid": F.hardsigmoid,
        }
    return _IMPLS


_IMPLS = None
