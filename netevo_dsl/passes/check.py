"""check: every semantic rule of a spec, with all errors reported in one run.

Elaborates every network (names, params, blocks, repeats, op params, shapes,
masks), validates genomes (acyclic, known names and activations), mutation
rules against the rule table, and evolve blocks against the task registry.
Pure Python: never imports torch.
"""
from __future__ import annotations

import attrs

from ..errors import EvolveError, NameError_, NetevoError, RuleError, TypeError_, did_you_mean, flatten, raise_all
from ..ir import nodes as ir
from ..ir.graph import Graph
from ..ops.activations import NETWORK_BY_NAME, WANN_BY_NAME
from ..ops.registry import get_op
from ..ops.rules import RULES
from .elaborate import check_identifier, elaborate

EVOLVE_KEYS = {"task", "population", "generations", "selection", "seed", "weights", "elite", "cull", "tournament",
               "init_density", "chunk", "prob_moo", "init"}
TRANSFORMER_KEYS = {"vocab", "context", "embed", "weights", "masks"}
LAYER_KEYS = {"heads", "ffn", "activation", "attention", "mlp"}
GENOME_METRICS = {"connections", "nodes"}


@attrs.frozen
class CheckResult:
    graphs: dict  # network name -> Graph


def check(spec: ir.Spec, overrides: dict | None = None) -> CheckResult:
    errors: list[NetevoError] = []
    graphs: dict[str, Graph] = {}
    _duplicates(spec, errors)
    for net in spec.networks:
        try:
            graphs[net.name] = elaborate(spec, net.name, overrides)
        except NetevoError as e:
            errors += flatten(e)
    if not spec.networks:
        try:
            # Params and masks are still bound, so bad -D values and bad masks are reported.
            from .elaborate import Elaborator

            errors += Elaborator(spec, overrides).errors
        except NetevoError as e:
            errors += flatten(e)
    for g in spec.of_kind(ir.WannGenome):
        errors += _check_wann(g)
    for g in spec.of_kind(ir.TransformerGenome):
        errors += check_transformer_genome(g)
    for m in spec.of_kind(ir.MutateBlock):
        errors += _check_mutate(spec, m, graphs)
    for e in spec.of_kind(ir.EvolveBlock):
        errors += _check_evolve(spec, e, graphs)
    raise_all(errors)
    return CheckResult(graphs)


def _duplicates(spec, errors):
    seen: dict[str, object] = {}
    for item in spec.all_items():
        name = getattr(item, "name", None)
        if name is None:
            continue
        try:
            check_identifier(name, item.span, "name")
        except NetevoError as e:
            errors.append(e)
        if name in seen:
            errors.append(NameError_(f"`{name}` is defined twice", item.span, "rename one of them", code="E023",
                                     notes=[(seen[name].span, "first defined here")]))
        else:
            seen[name] = item


def _check_wann(g: ir.WannGenome) -> list[NetevoError]:
    from ..ir.wann import validate_genome

    errors: list[NetevoError] = list(validate_genome(g))
    declared = [(name, g.span) for name in g.inputs] + [(n.name, n.span or g.span) for n in (*g.nodes, *g.outputs)]
    for name, span in declared:  # keywords are E050 in validate_genome; dunders would reach emitted code
        if name.startswith("__"):
            errors.append(NameError_(f"`{name}` cannot name a genome node", span, "names do not start with __",
                                     code="E021"))
    for s in g.settings:
        if s.key != "weights":
            errors.append(TypeError_(f"unknown genome setting `{s.key}`", s.span, "a wann genome takes `weights {...}`"))
    return errors


def _number(e):
    if isinstance(e, ir.Num):
        return e.value
    if isinstance(e, ir.Neg) and isinstance(e.operand, ir.Num):
        return -e.operand.value
    return None


def _rule_argument_problem(rule, kw) -> str | None:
    """A rule argument of the wrong type, below its minimum, or not among its choices (None: fine)."""
    param = next((p for p in rule.params if p.name == kw.name), None)
    if param is None:
        return None
    if param.type in ("int", "float"):
        value = _number(kw.value)
        if value is None or (param.type == "int" and not float(value).is_integer()):
            return f"`{kw.name}` is {'an integer' if param.type == 'int' else 'a number'}"
        if param.minimum is not None and value < param.minimum:
            return f"`{kw.name}` must be at least {param.minimum:g}, got {value:g}"
    if param.type == "str" and param.choices:
        value = kw.value.value if isinstance(kw.value, ir.Str) else getattr(kw.value, "id", None)
        if value not in param.choices:
            return f"`{kw.name}` is one of " + ", ".join(f'"{c}"' for c in param.choices)
    return None


def check_transformer_genome(g: ir.TransformerGenome) -> list[NetevoError]:
    errors: list[NetevoError] = []
    values = {}
    for s in g.settings:
        if s.key not in TRANSFORMER_KEYS:
            errors.append(TypeError_(f"unknown transformer setting `{s.key}`", s.span,
                                     did_you_mean(s.key, TRANSFORMER_KEYS) or "settings: " + ", ".join(sorted(TRANSFORMER_KEYS))))
        values[s.key] = s
    for key in ("vocab", "context", "embed"):
        s = values.get(key)
        if s is None:
            errors.append(TypeError_(f"transformer genome `{g.name}` needs `{key} N`", g.span))
        elif not (isinstance(s.value, ir.Num) and isinstance(s.value.value, int) and s.value.value > 0):
            errors.append(TypeError_(f"`{key}` must be a positive integer", s.span))
    embed = values.get("embed")
    embed = embed.value.value if embed is not None and isinstance(embed.value, ir.Num) else None
    if not g.layers:
        errors.append(TypeError_(f"transformer genome `{g.name}` has no layers", g.span, "add layer { heads 4 ffn 128 }"))
    for layer in g.layers:
        for s in layer.settings:
            if s.key not in LAYER_KEYS:
                errors.append(TypeError_(f"unknown layer setting `{s.key}`", s.span,
                                         did_you_mean(s.key, LAYER_KEYS) or "layer settings: " + ", ".join(sorted(LAYER_KEYS))))
            elif s.key in ("heads", "ffn"):
                v = s.value.value if isinstance(s.value, ir.Num) else None
                if not isinstance(v, int) or v <= 0:
                    errors.append(TypeError_(f"`{s.key}` must be a positive integer", s.span))
                elif s.key == "heads" and embed and embed % v:
                    errors.append(TypeError_(f"{v} heads do not divide the embedding size {embed}", s.span,
                                             "heads must divide `embed`", code="E041"))
            elif s.key == "activation":
                name = s.value.id if isinstance(s.value, ir.Name) else None
                if name not in NETWORK_BY_NAME:
                    errors.append(TypeError_(f"unknown activation `{name}`", s.span,
                                             did_you_mean(str(name), NETWORK_BY_NAME)))
            elif s.key in ("attention", "mlp"):
                if not (isinstance(s.value, ir.Name) and s.value.id in ("on", "off")):
                    errors.append(TypeError_(f"`{s.key}` is on or off", s.span))
    w = values.get("weights")
    if w is not None and not (isinstance(w.value, ir.SetExpr) and w.value.items and all(
            _number(i) is not None for i in w.value.items)):
        errors.append(TypeError_("weights are a set of numbers, e.g. {-2, -1, -0.5, 0.5, 1, 2}", w.span))
    m = values.get("masks")
    if m is not None:
        from ..ops.masks import MASK_KINDS

        if not (isinstance(m.value, ir.Call) and m.value.func in MASK_KINDS and m.value.func != "bits"):
            errors.append(TypeError_("masks take a mask kind: random(density=..., seed=...), band(...), block(...)",
                                     m.span))
    return errors


def _target_kind(spec, name):
    item = spec.find(name, (ir.Network, ir.WannGenome, ir.TransformerGenome))
    if isinstance(item, ir.Network):
        return "network", item
    if isinstance(item, ir.WannGenome):
        return "wann", item
    if isinstance(item, ir.TransformerGenome):
        return "transformer", item
    return None, None


def _check_mutate(spec, m: ir.MutateBlock, graphs: dict | None = None) -> list[NetevoError]:
    kind, _ = _target_kind(spec, m.target)
    if kind is None:
        names = [i.name for i in spec.networks + spec.genomes]
        return [NameError_(f"mutate: no network or genome named `{m.target}`", m.span, did_you_mean(m.target, names))]
    errors: list[NetevoError] = []
    for r in m.rules:
        rule = RULES.get(r.func)
        if rule is None:
            errors.append(RuleError(f"unknown mutation operator `{r.func}`", r.span,
                                    did_you_mean(r.func, RULES) or "operators: " + ", ".join(sorted(RULES))))
            continue
        if kind not in rule.applies_to:
            errors.append(RuleError(f"`{r.func}` does not apply to a {kind} (only {', '.join(rule.applies_to)})", r.span))
        allowed = {"p", "choices", "op"} | {p.name for p in rule.params}
        for kw in r.kwargs:
            if kw.name not in allowed:
                errors.append(RuleError(f"`{r.func}` has no argument `{kw.name}`", kw.span,
                                        did_you_mean(kw.name, allowed) or "arguments: " + ", ".join(sorted(allowed))))
            elif kw.name == "p":
                p = _number(kw.value)
                if p is None or not 0.0 <= p <= 1.0:
                    errors.append(RuleError("`p` is a probability in [0, 1]", kw.span))
            elif kw.name == "choices" and not isinstance(kw.value, (ir.SetExpr, ir.ListExpr)):
                errors.append(RuleError("`choices` is a set, e.g. choices={32, 64}", kw.span))
            elif kw.name == "op":
                if not (isinstance(kw.value, ir.Name) and get_op(kw.value.id)):
                    errors.append(RuleError("`op` names a registered op, e.g. op=conv2d", kw.span))
            else:
                problem = _rule_argument_problem(rule, kw)
                if problem:
                    errors.append(RuleError(f"`{r.func}`: {problem}", kw.span))
        if r.args and not rule.takes_targets:
            errors.append(RuleError(f"`{r.func}` takes no targets", r.span))
        for a in r.args:
            if not isinstance(a, (ir.Name, ir.Str)):
                errors.append(RuleError("a rule target is a name or a glob string like \"conv*\"", a.span))
        if kind == "network":  # a target that names no node would make the rule do nothing (E061)
            from .rule_targets import unknown_targets

            errors += unknown_targets(r, (graphs or {}).get(m.target))
        choices = r.kwarg("choices")
        if choices is not None and r.func in ("change_activation", "activation"):
            table = WANN_BY_NAME if kind == "wann" else NETWORK_BY_NAME
            for c in choices.items:
                if not (isinstance(c, ir.Name) and c.id in table):
                    errors.append(RuleError(f"unknown activation `{getattr(c, 'id', c)}` for a {kind}", c.span,
                                            did_you_mean(getattr(c, "id", ""), table)))
    return errors


def _check_evolve(spec, e: ir.EvolveBlock, graphs: dict | None = None) -> list[NetevoError]:
    from ..ops.tasks import get_task_spec

    kind, target = _target_kind(spec, e.target)
    errors: list[NetevoError] = []
    if kind is None:
        names = [i.name for i in spec.networks + spec.genomes]
        return [NameError_(f"evolve: no network or genome named `{e.target}`", e.span, did_you_mean(e.target, names))]
    if kind == "network":
        from .check_network_evolve import read_network_evolve

        return read_network_evolve(e, (graphs or {}).get(e.target))[1]
    for t in e.settings:
        if isinstance(t, ir.TrainSettings):
            errors.append(EvolveError("a `train` part is for evolving a network; a genome is scored by its task",
                                      t.span, "remove the `train { }` part", code="E074"))
    task_spec, task_params, metrics = None, {}, set()
    for s in e.settings:
        if not isinstance(s, ir.Setting):
            continue
        if s.key not in EVOLVE_KEYS:
            errors.append(EvolveError(f"unknown evolve setting `{s.key}`", s.span,
                                      did_you_mean(s.key, EVOLVE_KEYS) or "settings: " + ", ".join(sorted(EVOLVE_KEYS))))
        elif s.key == "task":
            call = s.value if isinstance(s.value, ir.Call) else ir.Call(s.value.id, span=s.value.span) \
                if isinstance(s.value, ir.Name) else None
            if call is None:
                errors.append(EvolveError("task is a name or call, e.g. task digits or task swingup(steps=1000)", s.span))
                continue
            try:
                found = get_task_spec(call.func)
                task_params = found.resolve({k.name: _literal(k.value) for k in call.kwargs})
                # A parameter value the task refuses (`xor(outputs=0)`) is found here, at the setting's span.
                found.n_inputs(task_params), found.n_outputs(task_params)
                task_spec, metrics = found, set(found.metrics)  # only once resolved: no follow-on errors
            except NetevoError as err:
                errors.append(NetevoError(err.message, s.span, err.hint, code="E071"))
        elif s.key == "selection":
            if not (isinstance(s.value, ir.Name) and s.value.id in ("wann", "nsga2")):
                errors.append(EvolveError("selection is `wann` or `nsga2`", s.span))
        elif s.key == "init":
            if not (isinstance(s.value, ir.Name) and s.value.id in ("seed", "wann")):
                errors.append(EvolveError("init is `seed` (the spec's genome and its mutants) or `wann` (WANN's "
                                          "initial population)", s.span, "write `init seed` or `init wann`"))
        elif s.key in ("population", "generations", "seed", "tournament", "chunk"):
            if not (isinstance(s.value, ir.Num) and isinstance(s.value.value, int) and s.value.value >= 0):
                errors.append(EvolveError(f"`{s.key}` must be a non-negative integer", s.span))
    if task_spec is None and not any(isinstance(s, ir.Setting) and s.key == "task" for s in e.settings):
        errors.append(EvolveError(f"evolve `{e.target}` has no task", e.span, "add e.g. `task digits`"))
    for s in e.settings:
        if not isinstance(s, ir.Objective):
            continue
        if s.direction not in ("maximize", "minimize"):
            errors.append(EvolveError(f"objective direction is maximize or minimize, not `{s.direction}`", s.span))
        metric = s.metric
        if isinstance(metric, ir.Call) and metric.func in ("mean", "max", "min") and len(metric.args) == 1 \
                and isinstance(metric.args[0], ir.Name):
            name = metric.args[0].id
        elif isinstance(metric, ir.Name):
            name = metric.id
            if name in GENOME_METRICS:
                continue
        else:
            errors.append(EvolveError("an objective is a metric, an aggregate over weights like mean(reward), "
                                      "or connections", s.span))
            continue
        if metrics and name not in metrics:
            errors.append(EvolveError(f"task `{task_spec.name}` has no metric `{name}`", s.span,
                                      did_you_mean(name, metrics) or "metrics: " + ", ".join(sorted(metrics)),
                                      code="E072"))
    if task_spec is not None and kind == "wann":
        from ..ir.wann import observation_inputs

        n_in, n_out = task_spec.n_inputs(task_params), task_spec.n_outputs(task_params)
        have_in, have_out = len(observation_inputs(target)), len(target.outputs)
        if n_in is not None and n_in != have_in:
            errors.append(EvolveError(f"task `{task_spec.name}` gives {n_in} inputs but genome `{target.name}` takes "
                                      f"{have_in} (besides bias)", target.span, "match the genome's inputs to the task",
                                      code="E073"))
        if n_out is not None and n_out != have_out:
            errors.append(EvolveError(f"task `{task_spec.name}` needs {n_out} outputs but genome `{target.name}` has "
                                      f"{have_out}", target.span, code="E073"))
    return errors


def _literal(e):
    n = _number(e)
    if n is not None:
        return n
    if isinstance(e, (ir.Str, ir.Bool)):
        return e.value
    if isinstance(e, ir.Name):
        return e.id
    raise EvolveError("task arguments are numbers, strings or names", getattr(e, "span", None))
