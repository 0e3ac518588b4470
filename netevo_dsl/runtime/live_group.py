"""A chunk of one group of layered networks as a control policy whose finished episodes leave the batch.

The network evaluator's counterpart of `live_pack.LivePackPolicy` (issue 18, item 2). A chunk's
rollout batch is members x shared weights x repeats. When `ControlTask.rollout` shows the policy
which episodes are live, it keeps the members that still have a live episode, the weights at which
any of those has one, and the repeats likewise (`live_pack.kept_axes`): the members' stacks (masks,
valid positions, expanded conv kernels) are cut along their first axis, the weights and the sample
count shrink with them. Nothing is rebuilt: a cut costs a few `index_select`s.

Whether the results keep their bits depends on the kernels: every op of a group program computes
each member, weight and sample apart, but a batched matmul or grouped convolution over fewer rows
may pick another blocking of the same sum. `tests/runtime/test_live_networks.py` compares the
compacted rollout with the full one bit for bit on both CPU dtypes.
"""
from __future__ import annotations

import torch

from .live_pack import kept_axes
from .network_program import GroupProgram


class LiveGroupPolicy:
    """Members `rows` of `program` at `weights`, `repeats` episodes each."""

    def __init__(self, program: GroupProgram, rows: slice, weights: torch.Tensor, repeats: int):
        self.program, self.weights, self.repeats = program, weights, repeats
        self.stacks = program.select(rows)
        self.cuts = 0

    def __call__(self, observations: torch.Tensor) -> torch.Tensor:
        return self.program(self.stacks, observations, self.weights, self.repeats, shared_input=False)

    def keep(self, alive: torch.Tensor):
        """alive [members, weights, repeats] of the current batch -> per-axis indices kept, or None."""
        axes = kept_axes(alive)
        if axes is None:
            return None
        members, weights, repeats = axes
        if len(members) < alive.shape[0]:
            self.stacks = {k: v.index_select(0, members.to(v.device)) for k, v in self.stacks.items()}
        if len(weights) < alive.shape[1]:
            self.weights = self.weights.index_select(0, weights.to(self.weights.device))
        self.repeats = len(repeats)
        self.cuts += 1
        return tuple(a if len(a) < n else None for a, n in zip(axes, alive.shape))
