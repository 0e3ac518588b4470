"""An `evolve` block for a network: read and validate it in one pass (pure Python, no torch).

    evolve digits_mlp {
      population 16  generations 10  seed 0
      selection nsga2            // nsga2 | aging | random
      inherit on                 // children start from their parent's trained weights
      objective maximize accuracy
      objective minimize params
      train {
        task digits              // digits | iris | wine | breast_cancer | csv(path, target) | npz(path)
        epochs 2                 // or: steps 200
        batch_size 64
        optimizer Adam(lr=0.001) // a torch.optim class, with keyword arguments
        scheduler CosineAnnealingLR(T_max=2)
      }
    }

`read_network_evolve` returns the resolved values (the run's settings start from
them) and every error found, each with its code and span.
"""
from __future__ import annotations

from ..errors import NetevoError, did_you_mean
from ..ir import nodes as ir
from ..ops.optimizers import OPTIMIZERS, SCHEDULERS, canonical_name
from ..ops.registry import REQUIRED
from ..ops.training_tasks import TRAINING_TASKS

EVOLVE_KEYS = ("population", "generations", "seed", "selection", "inherit", "sample", "walk")
TRAIN_KEYS = ("task", "epochs", "steps", "batch_size", "optimizer", "scheduler")
SELECTIONS = ("nsga2", "aging", "random")
METRICS = {"accuracy": "maximize", "loss": "minimize", "params": "minimize", "flops": "minimize",
           "latency": "minimize", "density": "minimize"}
# Feature count and classes of the built-in datasets (scikit-learn's documentation of load_*).
TASK_SHAPES = {"digits": ((64,), 10), "iris": ((4,), 3), "wine": ((13,), 3), "breast_cancer": ((30,), 2)}
DIGIT_IMAGES = (1, 8, 8)
DEFAULTS = {"population": 8, "generations": 5, "seed": 0, "selection": "nsga2", "inherit": True, "sample": 4,
            "walk": 3, "epochs": 1.0, "steps": None, "batch_size": 64, "optimizer": "Adam",
            "optimizer_args": (("lr", 0.001),), "scheduler": None, "scheduler_args": (),
            "objectives": (("maximize", "accuracy"), ("minimize", "params"))}


def _err(code: str, message: str, span, hint: str | None = None) -> NetevoError:
    return NetevoError(message, span, hint, code=code)


def _value(e):
    """A literal setting value: numbers, strings, names, true/false, lists or sets of them; else raises."""
    if isinstance(e, ir.Num):
        return e.value
    if isinstance(e, ir.Neg) and isinstance(e.operand, ir.Num):
        return -e.operand.value
    if isinstance(e, (ir.Str, ir.Bool)):
        return e.value
    if isinstance(e, ir.Name):
        return e.id
    if isinstance(e, (ir.ListExpr, ir.SetExpr)):
        return tuple(_value(i) for i in e.items)
    raise ValueError


def _call(e):
    """(name, kwargs, positional args) of `name` or `name(k=v, ...)`; None if it is neither."""
    if isinstance(e, ir.Name):
        return e.id, (), ()
    if isinstance(e, ir.Call):
        return e.func, tuple(e.kwargs), tuple(e.args)
    return None


def _is_int(v, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def read_network_evolve(block: ir.EvolveBlock, graph=None) -> tuple[dict, list[NetevoError]]:
    """(settings, errors) for an evolve block whose target is a network; `graph` is the elaborated
    network (None if it failed to elaborate), used to match the task's features and classes."""
    out = dict(DEFAULTS)
    errors: list[NetevoError] = []
    seen: dict[str, object] = {}
    objectives, trains = [], [s for s in block.settings if isinstance(s, ir.TrainSettings)]
    for s in block.settings:
        if isinstance(s, ir.Objective):
            objectives.append(s)
        elif isinstance(s, ir.Setting):
            _top_setting(s, out, errors, seen)
    if not trains:
        errors.append(_err("E074", f"evolve `{block.target}` has no `train` part", block.span,
                           "a network is trained before it is scored: add `train { task digits  epochs 1 }`"))
    for t in trains[1:]:
        errors.append(_err("E074", "a `train` part is given twice", t.span, "merge them into one"))
    if trains:
        _train(trains[0], out, errors, graph)
    if objectives:
        out["objectives"] = tuple(o for o in (_objective(s, errors) for s in objectives) if o is not None)
        labels = [m for _, m in out["objectives"]]
        for s in objectives:
            name = getattr(s.metric, "id", None)
            if name is not None and labels.count(name) > 1:
                errors.append(_err("E079", f"objective `{name}` is given twice", s.span))
                break
    return out, errors


def _top_setting(s: ir.Setting, out: dict, errors: list, seen: dict) -> None:
    if s.key not in EVOLVE_KEYS:
        hint = did_you_mean(s.key, EVOLVE_KEYS + TRAIN_KEYS)
        if s.key in TRAIN_KEYS:
            hint = f"`{s.key}` belongs in the `train {{ }}` part"
        errors.append(_err("E074", f"unknown setting `{s.key}` for evolving a network", s.span,
                           hint or "settings: " + ", ".join(EVOLVE_KEYS) + ", objective, train { }"))
        return
    if s.key in seen:
        errors.append(_err("E074", f"`{s.key}` is set twice", s.span, "keep one"))
        return
    seen[s.key] = s
    try:
        v = _value(s.value)
    except ValueError:
        v = None
    if s.key == "selection":
        if v not in SELECTIONS:
            errors.append(_err("E135", f"selection is nsga2, aging or random, not `{v}`", s.span,
                               did_you_mean(str(v), SELECTIONS)))
            return
    elif s.key == "inherit":
        if v not in ("on", "off", True, False):
            errors.append(_err("E135", f"inherit is on or off, not `{v}`", s.span))
            return
        v = v in ("on", True)
    else:
        low = 0 if s.key == "seed" else 2 if s.key in ("population", "sample") else 1
        if not _is_int(v, low):
            errors.append(_err("E135", f"`{s.key}` must be an integer >= {low}, got `{v}`", s.span))
            return
    out[s.key] = v


def _train(t: ir.TrainSettings, out: dict, errors: list, graph) -> None:
    seen: dict[str, ir.Setting] = {}
    for s in t.settings:
        if s.key not in TRAIN_KEYS:
            hint = f"`{s.key}` belongs outside the `train` part" if s.key in EVOLVE_KEYS else \
                did_you_mean(s.key, TRAIN_KEYS) or "train settings: " + ", ".join(TRAIN_KEYS)
            errors.append(_err("E074", f"unknown train setting `{s.key}`", s.span, hint))
        elif s.key in seen:
            errors.append(_err("E074", f"`{s.key}` is set twice", s.span, "keep one"))
        else:
            seen[s.key] = s
    if "task" not in seen:
        errors.append(_err("E075", "the `train` part has no task", t.span,
                           "add e.g. `task digits`; tasks: " + ", ".join(TRAINING_TASKS)))
    else:
        _task(seen["task"], out, errors, graph)
    if "epochs" in seen and "steps" in seen:
        errors.append(_err("E076", "give the budget as epochs or as steps, not both", seen["steps"].span))
    elif "steps" in seen:
        _budget(seen["steps"], "steps", lambda v: _is_int(v, 1), "a positive integer", out, errors)
        out["epochs"] = None
    elif "epochs" in seen:
        _budget(seen["epochs"], "epochs", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
                "a positive number", out, errors)
    if "batch_size" in seen:
        _budget(seen["batch_size"], "batch_size", lambda v: _is_int(v, 1), "a positive integer", out, errors)
    if "optimizer" in seen:
        found = _named_call(seen["optimizer"], "E077", "optimizer", {k: None for k in OPTIMIZERS}, OPTIMIZERS,
                            "torch.optim", errors)
        if found is not None:
            out["optimizer"], out["optimizer_args"] = found
    if "scheduler" in seen:
        found = _named_call(seen["scheduler"], "E078", "scheduler", SCHEDULERS, SCHEDULERS,
                            "torch.optim.lr_scheduler", errors)
        if found is not None:
            out["scheduler"], out["scheduler_args"] = found


def _budget(s, key, ok, what, out, errors) -> None:
    try:
        v = _value(s.value)
    except ValueError:
        v = None
    if not ok(v):
        errors.append(_err("E076", f"`{key}` must be {what}, got `{v}`", s.span))
    else:
        out[key] = float(v) if key == "epochs" else v


def _named_call(s: ir.Setting, code: str, what: str, table: dict, allowed: dict, module: str, errors: list):
    """(canonical name, ((key, value), ...)) of an optimizer or scheduler setting, or None after an error."""
    call = _call(s.value)
    if call is None:
        errors.append(_err(code, f"{what} is a name or a call like Adam(lr=0.001)", s.span))
        return None
    name, kwargs, args = call
    canonical = canonical_name(name, table)
    if canonical is None:
        errors.append(_err(code, f"unknown {what} `{name}`", s.span,
                           did_you_mean(name, table) or f"{module} names: " + ", ".join(table)))
        return None
    if args:
        errors.append(_err(code, f"{what} arguments are keywords, e.g. {canonical}(lr=0.01)", s.span))
        return None
    params = allowed[canonical]
    names = tuple(params)
    values = []
    for k in kwargs:
        if k.name not in names:
            errors.append(_err(code, f"`{canonical}` takes no argument `{k.name}`", k.span or s.span,
                               did_you_mean(k.name, names) or "arguments: " + ", ".join(names)))
            return None
        try:
            v = _value(k.value)
        except ValueError:
            errors.append(_err(code, f"`{k.name}` must be a number, string, true/false or a list", k.span or s.span))
            return None
        if isinstance(v, bool) or isinstance(v, (str, tuple)) or isinstance(v, (int, float)):
            values.append((k.name, v))
    if isinstance(params, dict):
        given = {k for k, _ in values}
        missing = [k for k, d in params.items() if d is REQUIRED and k not in given]
        if missing:
            errors.append(_err(code, f"`{canonical}` needs " + ", ".join(f"`{m}`" for m in missing), s.span,
                               f"e.g. {canonical}({missing[0]}=...)"))
            return None
    return canonical, tuple(values)


def _task(s: ir.Setting, out: dict, errors: list, graph) -> None:
    call = _call(s.value)
    if call is None:
        errors.append(_err("E075", "task is a name or a call, e.g. task digits or task csv(path=\"d.csv\", "
                                   "target=\"label\")", s.span))
        return
    name, kwargs, args = call
    if name not in TRAINING_TASKS:
        errors.append(_err("E075", f"unknown training task `{name}`", s.span,
                           did_you_mean(name, TRAINING_TASKS) or "tasks: " + ", ".join(TRAINING_TASKS)))
        return
    table = TRAINING_TASKS[name]
    params: dict = {}
    for k in kwargs:
        if k.name not in table:
            errors.append(_err("E075", f"task `{name}` takes no argument `{k.name}`", k.span or s.span,
                               did_you_mean(k.name, table) or ("arguments: " + ", ".join(table) if table else
                                                               f"`{name}` takes no arguments")))
            return
        try:
            params[k.name] = _value(k.value)
        except ValueError:
            errors.append(_err("E075", f"`{k.name}` must be a literal value", k.span or s.span))
            return
    positional = [k for k in table if k not in params]
    if len(args) > len(positional):
        errors.append(_err("E075", f"task `{name}` takes {len(table)} argument(s)", s.span))
        return
    for k, a in zip(positional, args):
        try:
            params[k] = _value(a)
        except ValueError:
            errors.append(_err("E075", f"`{k}` must be a literal value", getattr(a, "span", None) or s.span))
            return
    missing = [k for k, d in table.items() if d is REQUIRED and k not in params]
    if missing:
        errors.append(_err("E075", f"task `{name}` needs " + ", ".join(f"`{m}`" for m in missing), s.span,
                           f'e.g. {name}(path="data.{name}")' if name in ("csv", "npz") else None))
        return
    for k in ("path", "target"):
        if k in params and not isinstance(params[k], str):
            errors.append(_err("E075", f"`{k}` is a string in quotes", s.span))
            return
    out["task"], out["task_params"] = name, params
    if graph is not None and name in TASK_SHAPES:
        _fits(graph, name, s.span, errors)


def _fits(graph, task: str, span, errors: list) -> None:
    """The network takes the task's samples and has one output per class (E136)."""
    features, classes = TASK_SHAPES[task]
    if len(graph.inputs) != 1:
        errors.append(_err("E136", f"a network trained on `{task}` takes one input; `{graph.name}` takes "
                                   f"{len(graph.inputs)}", span))
        return
    shape = tuple(getattr(d, "value", None) if getattr(d, "is_concrete", False) else None
                  for d in graph.inputs[0].shape[1:])
    accepted = [features] + ([DIGIT_IMAGES] if task == "digits" else [])
    if shape not in accepted:
        text = " or ".join("[B, " + ", ".join(map(str, a)) + "]" for a in accepted)
        errors.append(_err("E136", f"task `{task}` gives samples {text}; input `{graph.inputs[0].name}` of "
                                   f"`{graph.name}` is [B, " + ", ".join("?" if d is None else str(d) for d in shape)
                                   + "]", graph.inputs[0].span or span, "declare the input with the task's shape"))
    if len(graph.outputs) != 1:
        errors.append(_err("E136", f"a classifier has one output; `{graph.name}` has {len(graph.outputs)}", span))
        return
    out_shape = graph.shape_of(graph.outputs[0][1])
    last = out_shape[-1] if out_shape and not isinstance(out_shape[0], tuple) else None
    if last is not None and getattr(last, "is_concrete", False) and last.value != classes:
        errors.append(_err("E136", f"task `{task}` has {classes} classes; output `{graph.outputs[0][0]}` of "
                                   f"`{graph.name}` has {last.value}", span,
                           f"end the network with linear(..., out={classes})"))


def _objective(s: ir.Objective, errors: list):
    if s.direction not in ("maximize", "minimize"):
        errors.append(_err("E079", f"objective direction is maximize or minimize, not `{s.direction}`", s.span))
        return None
    if not isinstance(s.metric, ir.Name) or s.metric.id not in METRICS:
        name = getattr(s.metric, "id", None) or getattr(s.metric, "func", "?")
        errors.append(_err("E079", f"`{name}` is no objective for a network", s.span,
                           did_you_mean(str(name), METRICS) or "objectives: " + ", ".join(METRICS)))
        return None
    natural = METRICS[s.metric.id]
    if s.direction != natural:
        errors.append(_err("E079", f"`{s.metric.id}` is an objective to {natural}, not to {s.direction}", s.span,
                           f"objective {natural} {s.metric.id}"))
        return None
    return s.direction, s.metric.id
