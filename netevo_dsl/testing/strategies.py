"""Hypothesis strategies over the spec IR, for property tests of the language layer.

* `expressions()`: any printable expression (numbers are non-negative; `-` is `Neg`).
* `specs()`: random, printable, parseable specs: every kind of item, with doc comments. They need not
  make sense (`check` may reject them); `format` then `parse` must give them back.
* `networks()`: specs of one MLP or conv network that also pass `check` (conv nets: concatenated stems,
  residual blocks with shared or separate width parameters, channel splits).
* `op_call_networks()`: networks of random op calls with random arguments (mostly invalid).
* `genomes()`: valid WANN genomes, from `netevo_dsl.testing.wann_strategies` when it exists.

Names are identifiers that are neither grammar keywords nor Python keywords, never start with `__`
and avoid the names emitted code uses itself (see `passes.elaborate.check_identifier`).
"""
from __future__ import annotations

import keyword
import math
import string

from hypothesis import strategies as st

from ..ir import nodes as ir

GRAMMAR_KEYWORDS = frozenset(
    "version import param block mask network input output return repeat as genome inputs outputs node edge "
    "layer mutate evolve objective train true false".split()
)
_RESERVED = frozenset({"self", "torch", "nn", "F", "math", "super"})
BINARY_OPS = ("+", "-", "*", "/", "%")  # `//` has no spelling: it starts a comment


def is_name(text: str) -> bool:
    return (
        text.isidentifier()
        and text.isascii()
        and text not in GRAMMAR_KEYWORDS
        and not keyword.iskeyword(text)
        and not keyword.issoftkeyword(text)
        and not text.startswith("__")
        and text not in _RESERVED
    )


_FIRST = string.ascii_letters + "_"
_REST = _FIRST + string.digits


def names() -> st.SearchStrategy[str]:
    return st.builds(lambda a, b: a + b, st.sampled_from(_FIRST), st.text(_REST, max_size=7)).filter(is_name)


def numbers() -> st.SearchStrategy[ir.Num]:
    floats = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False).filter(
        lambda x: math.copysign(1.0, x) > 0)
    return st.builds(ir.Num, st.one_of(st.integers(0, 10**12), floats))


def strings() -> st.SearchStrategy[str]:
    """What a STRING token can hold: no double quote, backslash or newline."""
    return st.text(st.characters(exclude_characters='"\\\n', exclude_categories=("Cs",)), max_size=12)


def _atoms():
    return st.one_of(
        numbers(),
        st.builds(ir.Str, strings()),
        st.builds(ir.Bool, st.booleans()),
        st.builds(ir.Name, names()),
    )


def _calls(children):
    return st.builds(
        ir.Call,
        names(),
        st.lists(children, max_size=3),
        st.lists(st.builds(ir.KwArg, names(), children), max_size=3),
    )


def expressions(max_leaves: int = 12) -> st.SearchStrategy:
    def extend(children):
        return st.one_of(
            st.builds(ir.Neg, children),
            st.builds(ir.BinOp, st.sampled_from(BINARY_OPS), children, children),
            _calls(children),
            st.builds(ir.Pipe, children, _calls(children)),
            st.builds(ir.ListExpr, st.lists(children, max_size=3)),
            st.builds(ir.SetExpr, st.lists(children, max_size=3)),
        )

    return st.recursive(_atoms(), extend, max_leaves=max_leaves)


def calls(max_leaves: int = 8) -> st.SearchStrategy[ir.Call]:
    return _calls(expressions(max_leaves))


def tensor_types() -> st.SearchStrategy[ir.TensorType]:
    return st.builds(ir.TensorType, st.lists(expressions(4), max_size=4))


def scalar_types() -> st.SearchStrategy[ir.ScalarType]:
    return st.builds(ir.ScalarType, st.one_of(st.sampled_from(["int", "float", "bool"]), names()))


def statements() -> st.SearchStrategy:
    simple = st.one_of(
        st.builds(ir.Input, names(), tensor_types()),
        st.builds(ir.Assign, st.lists(names(), min_size=1, max_size=3), expressions()),
        st.builds(ir.Output, names(), expressions()),
        st.builds(ir.Return, expressions()),
    )
    return st.recursive(
        simple, lambda body: st.builds(ir.Repeat, expressions(4), names(), st.lists(body, max_size=3)), max_leaves=6
    )


def docs() -> st.SearchStrategy[str]:
    """Doc comments as the parser returns them: lines without outer whitespace."""
    line = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20).map(str.strip)
    return st.one_of(st.just(""), st.lists(line, min_size=1, max_size=3).map("\n".join))


def settings() -> st.SearchStrategy[ir.Setting]:
    return st.builds(ir.Setting, names(), expressions(6))


def wann_genome_items() -> st.SearchStrategy[ir.WannGenome]:
    """Printable WANN genomes (at least one input and one output; not necessarily valid)."""
    return st.builds(
        ir.WannGenome,
        names(),
        st.lists(names(), min_size=1, max_size=4),
        st.lists(st.builds(ir.WannOutput, names(), names()), min_size=1, max_size=3),
        st.lists(st.builds(ir.WannNode, names(), names()), max_size=3),
        st.lists(st.builds(ir.WannEdge, names(), names(), st.booleans()), max_size=4),
        st.lists(settings(), max_size=2),
        doc=docs(),
    )


def transformer_genome_items() -> st.SearchStrategy[ir.TransformerGenome]:
    return st.builds(
        ir.TransformerGenome,
        names(),
        st.lists(settings(), max_size=4),
        st.lists(st.builds(ir.TransformerLayer, st.lists(settings(), max_size=4)), max_size=3),
        doc=docs(),
    )


def items() -> st.SearchStrategy:
    body = st.lists(statements(), max_size=4)
    return st.one_of(
        st.builds(ir.Version, st.integers(0, 10**6)),
        st.builds(ir.Import, strings()),
        st.builds(ir.Param, names(), scalar_types(), st.none() | expressions(6), doc=docs()),
        st.builds(
            ir.Block,
            names(),
            st.lists(st.builds(ir.BlockParam, names(), tensor_types() | scalar_types(), st.none() | expressions(4)),
                     max_size=3),
            st.none() | tensor_types(),
            body,
            doc=docs(),
        ),
        st.builds(ir.MaskDef, names(), calls(), doc=docs()),
        st.builds(ir.Network, names(), body, doc=docs()),
        wann_genome_items(),
        transformer_genome_items(),
        st.builds(ir.MutateBlock, names(), st.lists(calls(), max_size=3), doc=docs()),
        st.builds(
            ir.EvolveBlock,
            names(),
            st.lists(settings() | st.builds(ir.Objective, names(), expressions(6))
                     | st.builds(ir.TrainSettings, st.lists(settings(), max_size=3)), max_size=4),
            doc=docs(),
        ),
    )


def specs(max_items: int = 5) -> st.SearchStrategy[ir.Spec]:
    """Random printable specs; `parse(format(spec)) == spec` must hold for every one."""
    return st.builds(ir.Spec, st.lists(items(), max_size=max_items))


# --- specs that pass `check` ---------------------------------------------------------------


def _call(func, *args, **kwargs):
    return ir.Call(func, args, tuple(ir.KwArg(k, v) for k, v in kwargs.items()))


def _num(value):
    return ir.Num(value)


_HIDDEN_ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid", "silu", "identity")


def _value_names():
    """Value names: also not `B` (the batch symbol) nor an op name (a block could shadow it)."""
    from ..ops.registry import op_names

    taken = set(op_names()) | {"B"}
    return names().filter(lambda n: n not in taken)


@st.composite
def _mlp(draw, labels):
    """`labels`: unique names to use; the network is `labels[0]`."""
    net_name, param_name, x, out, *hidden = labels[: 4 + draw(st.integers(1, 4))]
    body = [ir.Input(x, ir.TensorType((ir.Name("B"), _num(draw(st.integers(1, 64))))))]
    params = []
    if draw(st.booleans()):  # a width that comes from a param (overridable with -D)
        params.append(ir.Param(param_name, ir.ScalarType("int"), _num(draw(st.integers(1, 64)))))
    prev = x
    for i, h in enumerate(hidden):
        width = ir.Name(param_name) if params and i == 0 else _num(draw(st.integers(1, 64)))
        value = _call("linear", ir.Name(prev), out=width)
        act = draw(st.sampled_from(_HIDDEN_ACTIVATIONS + (None,)))
        if act is not None:
            value = ir.Pipe(value, _call(act))
        body.append(ir.Assign((h,), value))
        prev = h
    body.append(ir.Output(out, _call("linear", ir.Name(prev), out=_num(draw(st.integers(1, 16))))))
    return (*params, ir.Network(net_name, tuple(body)))


@st.composite
def _convnet(draw, labels):
    """A conv net: a stem (one conv, or two concatenated), a repeated residual block, maybe a split.

    The block has one conv, or two whose widths come from one shared parameter `c` or separate
    parameters `c` and `m`; a concatenated stem feeding it makes the block's last conv write the
    sum of two groups. These are the shapes the resize planner (`evolve.resize`) must get right.
    """
    net_name, img, stem, stage, flat, out, block_name, left, right, part1, part2 = labels[:11]
    channels, size = draw(st.integers(1, 8)), draw(st.integers(4, 16))
    k = draw(st.sampled_from([1, 3, 5]))
    body = [ir.Input(img, ir.TensorType((ir.Name("B"), _num(channels), _num(size), _num(size))))]
    if draw(st.booleans()):  # a concatenated stem: two convs side by side
        wa, wb = draw(st.integers(1, 8)), draw(st.integers(1, 8))
        for name, w, kk in ((left, wa, k), (right, wb, 1)):
            body.append(ir.Assign((name,), _call("conv2d", ir.Name(img), out=_num(w), k=_num(kk), pad=_num(kk // 2))))
        body.append(ir.Assign((stem,), _call("concat", ir.Name(left), ir.Name(right), dim=_num(1))))
        width = wa + wb
    else:
        width = draw(st.integers(1, 16))
        conv = _call("conv2d", ir.Name(img), out=_num(width), k=_num(k), pad=_num(k // 2))
        body.append(ir.Assign((stem,), ir.Pipe(ir.Pipe(conv, _call("batchnorm2d")), _call("relu"))))
    blocks = []
    if draw(st.booleans()):  # a residual block, repeated: module paths `stage.0`, `stage.1`, ...
        shape = ir.TensorType((ir.Name("B"), ir.Name("c"), ir.Name("H"), ir.Name("W")))
        params = [ir.BlockParam("x", shape), ir.BlockParam("c", ir.ScalarType("int"))]
        kind = draw(st.sampled_from(["one conv", "shared", "separate"]))
        if kind == "one conv":
            h = ir.Pipe(_call("conv2d", ir.Name("x"), out=ir.Name("c"), k=_num(3), pad=_num(1)), _call("relu"))
            ret = _call("relu", ir.BinOp("+", ir.Name("x"), ir.Name("h")))
        else:
            inner = ir.Name("c" if kind == "shared" else "m")
            h = ir.Pipe(_call("conv2d", ir.Name("x"), out=inner, k=_num(3), pad=_num(1)), _call("relu"))
            ret = _call("relu", ir.BinOp("+", ir.Name("x"), _call("conv2d", ir.Name("h"), out=ir.Name("c"), k=_num(1))))
        args = {"c": _num(width)}
        if kind == "separate":
            params.append(ir.BlockParam("m", ir.ScalarType("int")))
            args["m"] = _num(draw(st.integers(1, 16)))
        blocks.append(ir.Block(block_name, tuple(params), shape, (ir.Assign(("h",), h), ir.Return(ret))))
        step = ir.Assign((stem,), _call(block_name, ir.Name(stem), **args))
        body.append(ir.Repeat(_num(draw(st.integers(0, 3))), stage, (step,)))
    if width > 1 and draw(st.booleans()):  # a split along the channels, joined again
        first = draw(st.integers(1, width - 1))
        body.append(ir.Assign((part1, part2), _call("split", ir.Name(stem), sizes=ir.ListExpr(
            (_num(first), _num(width - first))), dim=_num(1))))
        body.append(ir.Assign((stem,), _call("concat", _call("relu", ir.Name(part1)), ir.Name(part2), dim=_num(1))))
    body.append(ir.Assign((flat,), ir.Pipe(_call("adaptive_avgpool", ir.Name(stem), _num(1)), _call("flatten"))))
    body.append(ir.Output(out, _call("linear", ir.Name(flat), out=_num(draw(st.integers(1, 16))))))
    return (*blocks, ir.Network(net_name, tuple(body)))


@st.composite
def networks(draw) -> ir.Spec:
    """A spec with one MLP or conv network (widths, params, blocks and repeats all valid): passes `check`."""
    labels = draw(st.lists(_value_names(), min_size=11, max_size=11, unique=True))
    items = draw(st.one_of(_mlp(labels), _convnet(labels)))
    return ir.Spec((ir.Version(1), *items))


def _literal(value) -> st.SearchStrategy:
    """Values an op argument might be given, right or wrong: numbers, bools, strings, lists, names, masks."""
    num = st.integers(-3, 70).map(lambda v: ir.Num(v) if v >= 0 else ir.Neg(ir.Num(-v)))
    mask_calls = st.one_of(
        st.builds(lambda d: _call("random", density=ir.Num(d)), st.floats(0, 2)),
        st.builds(lambda b: _call("block", blocks=_num(b)), st.integers(0, 5)),
        st.builds(lambda b: _call("band", halfwidth=_num(b)), st.integers(0, 5)),
        st.builds(lambda rows: _call("bits", rows=ir.ListExpr(tuple(map(ir.Str, rows)))),
                  st.lists(st.sampled_from(["10", "01", "1", "x1"]), max_size=3)),
    )
    return st.one_of(num, st.floats(0, 3).map(ir.Num), st.booleans().map(ir.Bool),
                     st.sampled_from(["same", "valid", "x"]).map(ir.Str), st.lists(num, max_size=3).map(ir.ListExpr),
                     st.sampled_from(["B", "m"]).map(ir.Name), mask_calls)


@st.composite
def op_call_networks(draw) -> ir.Spec:
    """Networks of random registry op calls with random arguments: mostly invalid, for `check` never to crash on."""
    from ..ops.registry import all_ops

    ops = all_ops()
    dims = draw(st.lists(st.one_of(st.integers(0, 9).map(ir.Num), st.sampled_from(["B", "H"]).map(ir.Name)),
                         max_size=4))
    body, prev = [ir.Input("x", ir.TensorType(tuple(dims)))], "x"
    for i in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(ops))
        kwargs = [ir.KwArg(p.name, draw(_literal(p))) for p in op.params if draw(st.booleans())]
        args = (ir.Name(prev),) * max(1, op.min_inputs)
        body.append(ir.Assign((f"v{i}",), ir.Call(op.name, args, tuple(kwargs))))
        prev = f"v{i}"
    body.append(ir.Output("y", ir.Name(prev)))
    return ir.Spec((ir.MaskDef("m", _call("random", density=ir.Num(0.5))), ir.Network("n", tuple(body))))


def genomes(**kwargs) -> st.SearchStrategy[ir.WannGenome]:
    """Valid WANN genomes (from `wann_strategies`, imported lazily; it may not exist yet)."""
    try:
        from .wann_strategies import wann_genomes
    except ImportError:  # a stand-in: every observation input wired straight to one tanh output
        return st.integers(1, 6).map(lambda n: ir.WannGenome(
            "g", [f"x{i}" for i in range(n)] + ["bias"], [ir.WannOutput("y", "tanh")], [],
            [ir.WannEdge(f"x{i}", "y") for i in range(n)]))
    return wann_genomes(**kwargs)


__all__ = ["expressions", "specs", "networks", "op_call_networks", "genomes", "names", "calls", "statements", "items",
           "is_name"]


# --- populations for the shared-weight network evaluator ------------------------------------

# Activations for populations: several are not 0 at 0 (sigmoid, cos, gauss), so padded units carry values.
_POPULATION_ACTIVATIONS = ("relu", "tanh", "sigmoid", "cos", "gauss", "sin", "abs", "square", "step", "identity")


@st.composite
def _width_slots(draw, n_slots: int, widths) -> dict:
    """One network's widths `w0..` and masks `m0..` (a `, mask=...` argument or nothing)."""
    slots = {f"w{i}": draw(widths) for i in range(n_slots)}
    for i in range(n_slots + 3):
        density = draw(st.sampled_from([None, 0.3, 0.6, 1.0]))
        slots[f"m{i}"] = "" if density is None else f", mask=random(density={density}, seed={draw(st.integers(0, 99))})"
    return slots


@st.composite
def _mlp_skeleton(draw, n_inputs: int, n_outputs: int) -> str:
    """An MLP template over width slots: hidden layers, a residual add or product, a concat branch, a norm."""
    act = lambda: draw(st.sampled_from(_POPULATION_ACTIVATIONS))  # noqa: E731
    lines = [f"  input x: [B, {n_inputs}]", f"  h = x |> linear(out={{w0}}{{m0}}) |> {act()}()"]
    if draw(st.booleans()):
        joiner = draw(st.sampled_from(["+", "*"]))
        lines += [f"  r = h |> linear(out={{w0}}{{m1}}) |> {act()}()", f"  h = h {joiner} r"]
    if draw(st.booleans()):
        lines += [f"  b = x |> linear(out={{w1}}{{m2}}) |> {act()}()", "  h = concat(h, b, dim=1)"]
    norm = draw(st.sampled_from(["", "batchnorm1d()", "dropout(p=0.3)", "layernorm()", "softmax(dim=1)"]))
    if norm:  # layernorm and softmax here normalise over the padded units: padding must be refused
        lines.append(f"  h = h |> {norm}")
    if draw(st.booleans()):
        lines.append(f"  h = h |> linear(out={{w2}}{{m3}}) |> {act()}()")
    lines.append(f"  output y = linear(h, out={n_outputs}{{m4}})")
    return "network n {{\n" + "\n".join(lines) + "\n}}"


@st.composite
def _conv_skeleton(draw, n_inputs: int, n_outputs: int) -> str:
    """A 1-D conv template: conv, optional batchnorm / pooling / norms over length, a residual conv,
    then flatten with channels first or (after a transpose) last."""
    act = lambda: draw(st.sampled_from(_POPULATION_ACTIVATIONS))  # noqa: E731
    k = draw(st.sampled_from([1, 3]))
    conv = f"conv1d(out={{w0}}, k={k}, pad={k // 2}{{m0}})"
    lines = [f"  input x: [B, {n_inputs}]", f"  c = reshape(x, shape=[B, 1, {n_inputs}]) |> {conv} |> {act()}()"]
    for extra in draw(st.lists(st.sampled_from(["batchnorm1d()", "maxpool1d(k=2, stride=1, pad=1)",
                                                "avgpool1d(k=2, stride=1)", "layernorm()", "softmax(dim=2)"]),
                               max_size=2)):
        lines.append(f"  c = c |> {extra}")  # layernorm and softmax(dim=2) act along the length: not padded
    lines.append(f"  c = c |> conv1d(out={{w1}}, k=1{{m1}}) |> {act()}()")
    if draw(st.booleans()):
        lines.append(f"  c = c + (c |> conv1d(out={{w1}}, k=3, pad=1{{m2}}) |> {act()}())")
    flat = "flatten(c)" if draw(st.booleans()) else "c |> transpose(dim0=1, dim1=2) |> flatten()"
    lines += [f"  f = {flat}", f"  output y = linear(f, out={n_outputs}{{m3}})"]
    return "network n {{\n" + "\n".join(lines) + "\n}}"


@st.composite
def shared_weight_populations(draw, n_inputs: int, n_outputs: int, max_size: int = 6,
                              widths=st.integers(1, 5)) -> list:
    """Populations for `evaluate_networks`: networks of one or two architectures (MLPs, 1-D conv nets)
    whose widths and masks differ between members, each with one input [B, n_inputs] and one output
    [B, n_outputs]. Residual adds, concats, flattens (in either channel order), pooling and norms make
    padded layouts non-trivial; some skeletons normalise over padded units, where padding must be refused."""
    from .. import parse

    templates = draw(st.lists(st.one_of(_mlp_skeleton(n_inputs, n_outputs), _conv_skeleton(n_inputs, n_outputs)),
                              min_size=1, max_size=2))
    size = draw(st.integers(1, max_size))
    return [parse(draw(st.sampled_from(templates)).format(**draw(_width_slots(3, widths)))) for _ in range(size)]


__all__ += ["shared_weight_populations"]
