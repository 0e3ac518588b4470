"""Settings of a network search: the network's `evolve` block, then command-line flags.

The block is read and validated by `passes.check_network_evolve` (the same code
`netevo check` runs); the resolved settings are saved in the run folder as
`config.yaml` and must match on `--resume`.
"""
from __future__ import annotations

from pathlib import Path

import attrs
import yaml

from ..errors import EvolveError, UsageError, raise_all
from ..ir import nodes as ir


@attrs.frozen
class NetworkSettings:
    target: str
    task: str
    task_params: dict = attrs.field(factory=dict, hash=False)
    population: int = 8
    generations: int = 5
    seed: int = 0
    selection: str = "nsga2"  # nsga2 | aging | random
    inherit: bool = True
    sample: int = 4  # aging: tournament sample size S (Real et al. 2019)
    walk: int = 3  # random: rule applications per candidate, from the spec's network
    objectives: tuple = (("maximize", "accuracy"), ("minimize", "params"))
    epochs: float | None = 1.0
    steps: int | None = None
    batch_size: int = 64
    optimizer: str = "Adam"
    optimizer_args: tuple = (("lr", 0.001),)
    scheduler: str | None = None
    scheduler_args: tuple = ()
    backend: str = "local"  # local | ray
    address: str | None = None
    batched: bool = True

    def to_dict(self) -> dict:
        d = attrs.asdict(self, recurse=False)
        for k in ("objectives", "optimizer_args", "scheduler_args"):
            d[k] = [list(_plain(x) for x in pair) for pair in d[k]]
        d["task_params"] = dict(d["task_params"])
        d["kind"] = "network"
        return d

    @staticmethod
    def from_dict(d: dict) -> "NetworkSettings":
        d = {k: v for k, v in d.items() if k != "kind"}
        for k in ("objectives", "optimizer_args", "scheduler_args"):
            if k in d:
                d[k] = tuple(tuple(_tuple(x) for x in pair) for pair in d[k])
        return NetworkSettings(**d)

    def train_config(self):
        from ..runtime.train_networks import TrainConfig

        return TrainConfig(epochs=self.epochs, steps=self.steps, batch_size=self.batch_size, optimizer=self.optimizer,
                           optimizer_args=self.optimizer_args, scheduler=self.scheduler,
                           scheduler_args=self.scheduler_args)

    @property
    def metrics(self) -> list[str]:
        return [m for _, m in self.objectives]


def _plain(x):
    return list(x) if isinstance(x, tuple) else x


def _tuple(x):
    return tuple(x) if isinstance(x, list) else x


def is_network_target(spec: ir.Spec, target: str | None = None) -> bool:
    """Whether the spec's (chosen) evolve block evolves a network."""
    blocks = [b for b in spec.of_kind(ir.EvolveBlock) if target is None or b.target == target]
    return len(blocks) == 1 and spec.find(blocks[0].target, (ir.Network,)) is not None


def resolve_network_settings(spec: ir.Spec, target: str | None = None, overrides: dict | None = None
                             ) -> NetworkSettings:
    from ..passes.check_network_evolve import read_network_evolve
    from ..passes.elaborate import elaborate

    blocks = [b for b in spec.of_kind(ir.EvolveBlock) if target is None or b.target == target]
    if len(blocks) != 1:
        raise EvolveError("pick one evolve block" if blocks else "the spec has no `evolve` block", None,
                          "pick one with --target NAME")
    block = blocks[0]
    values, errors = read_network_evolve(block, elaborate(spec, block.target))
    raise_all(errors)
    values = {k: v for k, v in values.items() if k in FIELDS}
    values["target"] = block.target
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        if k not in FIELDS:
            raise UsageError(f"`--{k.replace('_', '-')}` does not apply to a network search")
        values[k] = v
    if values["selection"] not in ("nsga2", "aging", "random"):
        raise UsageError(f"a network search's selection is nsga2, aging or random, not `{values['selection']}`")
    if values["population"] < 2:
        raise UsageError("`population` must be at least 2")
    if values.get("backend", "local") not in ("local", "ray"):
        raise UsageError("backend is local or ray")
    return NetworkSettings(**values)


FIELDS = {f.name for f in attrs.fields(NetworkSettings)}


def save_network_settings(settings: NetworkSettings, path: Path) -> None:
    path.write_text(yaml.safe_dump(settings.to_dict(), sort_keys=True), encoding="utf-8")


def load_network_settings(path: Path) -> NetworkSettings:
    try:
        return NetworkSettings.from_dict(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, TypeError) as e:
        raise UsageError(f"{path}: cannot read the run's settings ({e})", hint="is this a netevo run folder?") from None
