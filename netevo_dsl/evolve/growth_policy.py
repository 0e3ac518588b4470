"""Growing and pruning a compiled network during training.

`RecommendationPolicy(spec)` is an `on_epoch_end` callback for
`runtime.growth.GrowthTrainer`: after an epoch it asks the tracker for
recommendations, applies the exact ones to (spec, weights) through the
function-preserving transforms (prune dead units, merge identical units, widen
saturated layers), optionally grows connections of masked layers SET-style, and
hands the trainer the new module together with the transforms, so the optimizer's
state (SGD momentum, Adam moments) follows every kept, copied or removed unit.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import compile_module
from .apply import apply_recommendations


class RecommendationPolicy:
    def __init__(self, spec, network: str | None = None, every: int = 1, thresholds: dict | None = None,
                 grow_rate: float = 0.0, seed: int = 0):
        self.spec, self.network, self.every = spec, network, max(1, int(every))
        self.thresholds = dict(thresholds or {})
        self.grow_rate = float(grow_rate)
        self.rng = np.random.default_rng(seed)
        self.log: list[str] = []

    def __call__(self, epoch: int, tracker):
        if (epoch + 1) % self.every:
            return None
        model = tracker.model
        if self.grow_rate > 0:
            self._grow_masks(model)
        applied = apply_recommendations(self.spec, model.state_dict(), tracker.recommendations(**self.thresholds),
                                        network=self.network, rng=self.rng)
        if not applied.actions:
            return None
        new_model = compile_module(applied.spec, name=self.network)
        new_model.load_state_dict(applied.weights)
        self.spec = applied.spec
        self.log += [f"epoch {epoch}: {a}" for a in applied.actions]
        return new_model, applied

    @torch.no_grad()
    def _grow_masks(self, model):
        """SET-style growth: enable a fraction of each masked layer's missing connections, at weight 0."""
        for name, module in model.named_modules():
            mask = getattr(module, "mask", None)
            if mask is None or not hasattr(module, "grow"):
                continue
            missing = (~mask).flatten().nonzero().flatten()
            n = int(round(self.grow_rate * mask.numel()))
            if n and len(missing):
                pick = missing[torch.from_numpy(self.rng.choice(len(missing), size=min(n, len(missing)),
                                                                replace=False))]
                module.grow(pick)
                self.log.append(f"grew {len(pick)} connection(s) of `{name}`")
