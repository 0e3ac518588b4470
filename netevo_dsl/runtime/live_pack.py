"""A packed WANN population as a control policy whose finished episodes leave the batch.

A rollout's batch is genomes x shared weights x repeats, and the value buffer's sample axis
(the repeats) is shared by every genome of a pack. So the batch shrinks as a cross product:
when `ControlTask.rollout` shows the policy which episodes are live, it keeps the genomes
that still have a live episode, the weights at which any of those has one, and the repeats
likewise, and packs those genomes again at those weights (`pack_population` on a subset,
a few milliseconds). Episodes inside the cross product that have ended ride along, masked,
as before. Fewer genomes also mean fewer levels and activation groups, so a step costs
fewer calls, not only fewer elements.

The results are the bits of the uncompacted rollout: a packed node computes
f(w * (sum of its sources)) with its sources in the same order whatever is packed with it
(see `wann_pack`), and the task's physics is elementwise.
"""
from __future__ import annotations

import torch

from .wann_pack import PackedPopulation, pack_population

# Repack only when the kept cross product is at most this share of the current batch: a repack
# costs about as much as a few steps of the whole population.
REPACK_SHARE = 0.75


class LivePackPolicy:
    """`pack` (of `genomes`, in `pack.members` order) at `weights`, `repeats` episodes each."""

    def __init__(self, pack: PackedPopulation, genomes: list, n_obs: int, n_outputs: int, weights: torch.Tensor,
                 repeats: int):
        self.pack, self.genomes, self.weights = pack, list(genomes), weights
        self.n_obs, self.n_outputs = n_obs, n_outputs
        self.values = pack.buffer(repeats)
        self.repacks = 0

    def __call__(self, observations: torch.Tensor) -> torch.Tensor:
        return self.pack.forward(observations, self.values)

    def keep(self, alive: torch.Tensor):
        """alive [genomes, weights, repeats] of the current batch -> per-axis indices kept, or None."""
        axes = kept_axes(alive)
        if axes is None:
            return None
        full = alive.shape
        genomes, weights, repeats = axes
        if len(genomes) < full[0] or len(weights) < full[1]:
            chosen = genomes.tolist()
            self.genomes = [self.genomes[k] for k in chosen]
            self.weights = self.weights.index_select(0, weights.to(self.weights.device))
            members = [self.pack.members[k] for k in chosen]
            self.pack, failures = pack_population(self.genomes, self.n_obs, self.n_outputs, self.weights,
                                                  shared_inputs=False, indices=members)
            assert not failures and self.pack.members == members, "a subset of a valid pack packs alike"
            self.repacks += 1
        self.values = self.pack.buffer(len(repeats))
        return tuple(a if len(a) < n else None for a, n in zip(axes, full))


def kept_axes(alive: torch.Tensor) -> tuple | None:
    """alive [batch, weights, repeats] -> the indices along each axis with a live episode, or None
    when their cross product is over REPACK_SHARE of the batch (not worth a cut yet)."""
    axes = tuple(torch.nonzero(alive.any(dim=others)).flatten() for others in ((1, 2), (0, 2), (0, 1)))
    if len(axes[0]) * len(axes[1]) * len(axes[2]) > REPACK_SHARE * alive.numel():
        return None
    return axes
