"""Run settings: the spec's `evolve` block, then a YAML config or preset, then command-line flags.

Every setting is validated with a clear error; the resolved settings are saved
in the run folder as `config.yaml`.
"""
from __future__ import annotations

import math
from pathlib import Path

import attrs
import yaml

from ..errors import EvolveError, NetevoError, UsageError, did_you_mean
from ..ir import nodes as ir

PRESETS = {
    "quick": {"population": 32, "generations": 5},
    "small": {"population": 64, "generations": 20},
    "paper": {"population": 192, "generations": 1024},  # swing-up's; `paper_settings` gives each task its own
}

# The published settings of Gaier & Ha (2019), from the authors' code (google/brain-tokyo-workshop,
# WANNRelease/WANN/p/*.json): `default_wan.json` for every task, then the task's own file on top.
# Keys are netevo's (popSize -> population, maxGen -> generations, select_cullRatio -> cull,
# select_eliteRatio -> elite, select_tournSize -> tournament, prob_initEnable -> init_density,
# alg_probMoo -> prob_moo, alg_nReps -> the task's `repeats`).
PAPER_DEFAULT = {"population": 128, "generations": 2048, "cull": 0.2, "elite": 0.2, "tournament": 8,
                 "init_density": 0.5, "prob_moo": 0.8}
PAPER_REPEATS_DEFAULT = 4  # alg_nReps of default_wan.json, for control tasks
PAPER_BY_TASK = {
    "swingup": ({"population": 192, "generations": 1024, "elite": 0.2, "tournament": 8}, {"repeats": 3}),
    # mnist256.json: the paper's MNIST run; netevo's digits (8x8) and mnist tasks follow it
    "digits": ({"population": 960, "generations": 4096, "tournament": 32, "init_density": 0.05}, {}),
    "mnist": ({"population": 960, "generations": 4096, "tournament": 32, "init_density": 0.05}, {}),
}
CONTROL_TASKS = ("swingup", "cartpole")


def paper_settings(task: str | None) -> tuple[dict, dict]:
    """(settings, task params) of `--preset paper` for `task`: the authors' per-task file over their
    defaults; tasks they published no file for get the defaults alone."""
    own, params = PAPER_BY_TASK.get(task, ({}, {}))
    params = dict(params)
    if task in CONTROL_TASKS:
        params.setdefault("repeats", PAPER_REPEATS_DEFAULT)
    return {**PAPER_DEFAULT, **own}, params


def apply_preset(merged: dict, preset: str) -> None:
    """Update `merged` settings with a named preset (task parameters merged, not replaced)."""
    if preset != "paper":
        merged.update(PRESETS[preset])
        return
    values, params = paper_settings(merged.get("task"))
    merged.update(values)
    if params:
        merged["task_params"] = {**merged.get("task_params", {}), **params}


@attrs.frozen
class Objective:
    direction: str  # maximize | minimize
    metric: str  # reward, connections, test_accuracy, ...
    aggregate: str | None = None  # mean | max | min over shared weights; None for per-individual values

    @property
    def label(self) -> str:
        return f"{self.aggregate}({self.metric})" if self.aggregate else self.metric


WANN_OBJECTIVES = (Objective("maximize", "reward", "mean"), Objective("maximize", "reward", "max"),
                   Objective("minimize", "connections"))


@attrs.frozen
class Settings:
    target: str
    task: str
    task_params: dict = attrs.field(factory=dict, hash=False)
    population: int = 64
    generations: int = 20
    selection: str = "wann"
    objectives: tuple = WANN_OBJECTIVES
    seed: int = 0
    weights: tuple | None = None  # shared weights; None: the genome's own setting
    cull: float = 0.2
    elite: float = 0.2
    tournament: int = 8
    init_density: float = 0.5
    init: str = "wann"  # wann: WANN's initial population (WANN genomes); seed: the spec's genome and its mutants
    prob_moo: float = 0.8
    device: str = "auto"
    backend: str = "local"
    address: str | None = None
    chunk: int = 0  # individuals per Ray task; 0: split evenly over the cluster's CPUs

    def to_dict(self) -> dict:
        d = attrs.asdict(self, recurse=False)
        d["objectives"] = [[o.direction, o.metric, o.aggregate] for o in self.objectives]
        d["weights"] = list(self.weights) if self.weights is not None else None
        return d

    @staticmethod
    def from_dict(d: dict) -> "Settings":
        d = dict(d)
        d["objectives"] = tuple(Objective(*o) for o in d.get("objectives", []))
        if d.get("weights") is not None:
            d["weights"] = tuple(float(w) for w in d["weights"])
        return Settings(**d)


def _literal(e):
    if isinstance(e, ir.Num):
        return e.value
    if isinstance(e, ir.Neg) and isinstance(e.operand, ir.Num):
        return -e.operand.value
    if isinstance(e, (ir.Str, ir.Bool)):
        return e.value
    if isinstance(e, ir.Name):
        return e.id
    if isinstance(e, ir.SetExpr):
        return tuple(_literal(i) for i in e.items)
    raise EvolveError("expected a literal value", getattr(e, "span", None))


def from_evolve_block(block: ir.EvolveBlock) -> dict:
    out: dict = {"target": block.target}
    objectives = []
    for s in block.settings:
        if isinstance(s, ir.Objective):
            m = s.metric
            if isinstance(m, ir.Call):
                objectives.append([s.direction, m.args[0].id, m.func])
            else:
                objectives.append([s.direction, m.id, None])
        elif s.key == "task":
            if isinstance(s.value, ir.Call):
                out["task"] = s.value.func
                out["task_params"] = {k.name: _literal(k.value) for k in s.value.kwargs}
            else:
                out["task"] = s.value.id
        elif s.key == "weights":
            out["weights"] = [float(v) for v in _literal(s.value)]
        else:
            out[s.key] = _literal(s.value)
    if objectives:
        out["objectives"] = objectives
    return out


FIELDS = {f.name for f in attrs.fields(Settings)}


def resolve_settings(spec: ir.Spec, target: str | None = None, config: str | Path | None = None,
                     preset: str | None = None, overrides: dict | None = None) -> Settings:
    blocks = spec.of_kind(ir.EvolveBlock)
    if target is not None:
        blocks = [b for b in blocks if b.target == target]
    if not blocks:
        raise EvolveError("the spec has no `evolve` block" + (f" for `{target}`" if target else ""), None,
                          "add one, as in specs/wann_xor.net or specs/wann_digits.net (genomes) or "
                          "specs/digits_cnn.net (networks, with a `train` part); see docs/evolve.md")
    if len(blocks) > 1:
        raise EvolveError("the spec has several `evolve` blocks", blocks[1].span, "pick one with --target NAME")
    merged = from_evolve_block(blocks[0])
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset `{preset}`", hint=did_you_mean(preset, PRESETS) or
                             "presets: " + ", ".join(PRESETS))
        apply_preset(merged, preset)
    if config is not None:
        config_values = _read_config(config)
        config_preset = config_values.pop("preset", None)
        if config_preset is not None:
            apply_preset(merged, config_preset)
        merged.update(config_values)
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return validate(merged)


def _read_config(path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"cannot read config {path}: {e.strerror}", hint="check the path") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not valid YAML ({e})", hint="settings are `key: value` lines") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of settings", hint="e.g. population: 64")
    preset = data.get("preset")
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"{path}: unknown preset `{preset}`", hint="presets: " + ", ".join(PRESETS))
    return data


def validate(d: dict) -> Settings:
    for k in d:
        if k not in FIELDS:
            raise UsageError(f"unknown setting `{k}`", hint=did_you_mean(k, FIELDS) or "settings: " + ", ".join(sorted(FIELDS)))
    if "task" not in d:
        raise EvolveError("no task given", None, "add `task NAME` to the evolve block or `task:` to the config")

    def need(cond, msg, hint=None):
        if not cond:
            raise UsageError(msg, hint=hint, code="E118")

    def whole(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    for k in ("population", "generations", "tournament", "seed", "chunk"):
        if k in d:
            need(whole(d[k]) and d[k] >= 0, f"`{k}` must be a non-negative integer, got {d[k]!r}")
    need(d.get("population", 64) >= 2, "`population` must be at least 2")
    need(d.get("generations", 20) >= 1, "`generations` must be at least 1", "a run evaluates at least one generation")
    need(d.get("tournament", 8) >= 1, "`tournament` must be at least 1", "WANN's tournament size is 8")
    for k in ("cull", "elite", "init_density", "prob_moo"):
        if k in d:
            need(number(d[k]) and 0.0 <= d[k] <= 1.0, f"`{k}` must be in [0, 1], got {d[k]!r}")
    need(d.get("cull", 0.2) < 1.0, "`cull` must be below 1: culling everyone leaves no parent")
    for k in ("task", "target"):
        need(isinstance(d.get(k, "x"), str) and d.get(k, "x"), f"`{k}` must be a name, got {d.get(k)!r}")
    need(isinstance(d.get("task_params", {}), dict) and all(isinstance(k, str) for k in d.get("task_params", {})),
         f"`task_params` must be a mapping of parameter names to values, got {d.get('task_params')!r}",
         "e.g. task_params: {batch_size: 100}")
    need(d.get("address") is None or isinstance(d["address"], str), "`address` must be HOST:PORT")
    need(d.get("selection", "wann") in ("wann", "nsga2"), f"selection is `wann` or `nsga2`, not `{d.get('selection')}`")
    need(d.get("init", "wann") in ("wann", "seed"), f"init is `seed` or `wann`, not `{d.get('init')}`",
         "seed: the spec's genome and its mutants; wann: WANN's initial population")
    need(d.get("device", "auto") in ("auto", "cpu", "cuda"), "device is auto, cpu or cuda")
    need(d.get("backend", "local") in ("local", "ray"), "backend is local or ray")
    if "objectives" in d:
        objectives = d["objectives"]
        example = "objectives: [[maximize, reward, mean], [minimize, connections, null]]"
        need(isinstance(objectives, (list, tuple)) and all(
            isinstance(o, Objective) or (isinstance(o, (list, tuple)) and len(o) in (2, 3)
                                         and all(isinstance(x, str) or x is None for x in o)) for o in objectives),
             f"`objectives` must be a list of [direction, metric, aggregate], got {objectives!r}", example)
        d = {**d, "objectives": tuple(o if isinstance(o, Objective) else Objective(*o) for o in objectives)}
        for o in d["objectives"]:
            need(o.direction in ("maximize", "minimize"), f"objective direction `{o.direction}`")
            need(isinstance(o.metric, str) and o.metric, f"objective metric `{o.metric}`")
            need(o.aggregate in (None, "mean", "max", "min"), f"objective aggregate `{o.aggregate}`")
    if d.get("weights") is not None:
        w = d["weights"]
        need(isinstance(w, (list, tuple)) and len(w) > 0 and all(number(x) for x in w),
             f"`weights` must be a non-empty list of numbers, got {w!r}", "e.g. weights: [-2, -1, -0.5, 0.5, 1, 2]")
        d = {**d, "weights": tuple(float(x) for x in w)}
    if d.get("selection", "wann") == "nsga2":
        need(len(d.get("objectives", WANN_OBJECTIVES)) >= 1, "nsga2 needs at least one objective")
    return Settings(**d)


def save_settings(settings: Settings, path: Path) -> None:
    from .checkpoint import write_atomic

    write_atomic(path, yaml.safe_dump(settings.to_dict(), sort_keys=True))


def load_settings(path: Path) -> Settings:
    """A run folder's config.yaml, validated like any settings; errors name the file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UsageError(f"{path}: cannot read the run's settings ({type(e).__name__})",
                         hint="is this a netevo run folder?", code="E113") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: cannot read the run's settings (not a mapping)",
                         hint="is this a netevo run folder?", code="E113")
    try:
        return validate(data)
    except NetevoError as e:
        raise UsageError(f"{path}: {e.message}", hint=e.hint, code=e.code) from None
