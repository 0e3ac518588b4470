"""resolve + infer_shapes: expand one network into a `Graph` with every shape inferred.

Blocks are inlined under their instance's module path, `repeat` bodies are
copied with stable names, params and `-D` overrides are substituted, every op
call is checked against the registry and every shape rule is run. Errors are
collected per statement, so one run reports as many as it can.

Naming (see docs/language.md, "Names"): a statement `t = ...` whose
expression holds one module op names it `t`; several are named `t.0`, `t.1`, ...
in evaluation order. A repeat `repeat N as r` prefixes its copies with `r.i.`,
and a one-statement body names its module `r.i` itself. Reassigning a target
gives `t_1`, `t_2`, ...
"""
from __future__ import annotations

import keyword
import re
import weakref
from typing import Any

import attrs

from ..errors import (
    ErrorGroup,
    NameError_,
    NetevoError,
    ShapeError,
    Span,
    TypeError_,
    did_you_mean,
    flatten,
    raise_all,
)
from ..ir import nodes as ir
from ..ir.dims import Dim, shape_str
from ..ir.graph import Graph, GraphInput, Node
from ..ops.masks import MASK_KINDS, MaskSpec, check_mask
from ..limits import BLOCK_CALL_DEPTH_COST, MAX_ELABORATION_DEPTH, MAX_REPEAT, LimitError
from ..ops.registry import OpDef, ShapeFailure, get_op, op_names
from .guards import Budget, check_module_name, check_shape, check_value, too_deep

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names the emitted Python uses itself; a spec may not shadow them.
RESERVED = frozenset({"self", "torch", "nn", "F", "math", "super", "x", "w"}) - {"x", "w"}


def check_identifier(name: str, span: Span | None, what: str = "name") -> None:
    """Names reach emitted Python: allow a strict pattern only, no keywords, no dunders."""
    if not IDENTIFIER.match(name) or keyword.iskeyword(name) or name in RESERVED or name.startswith("__"):
        raise NameError_(
            f"`{name}` cannot be used as a {what}",
            span,
            "names match [A-Za-z_][A-Za-z0-9_]*, are not Python keywords, do not start with __, "
            "and are not one of self, torch, nn, F, math, super",
            code="E021",
        )


# A quoted value name (`block1-0`, `0`): a module name that is not an identifier. Only these characters,
# so it can reach emitted Python inside a string literal and nothing else (compiler/pynames.py).
QUOTED_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


def check_value_name(name: str, span: Span | None) -> None:
    """An assignment target: an identifier as `check_identifier` allows, or a quoted module name."""
    if IDENTIFIER.match(name) or not QUOTED_NAME.match(name) or name.startswith("__"):
        check_identifier(name, span, "value name")


@attrs.frozen
class TensorVal:
    ref: str
    shape: tuple
    origin: str  # op or input that produced it, for messages
    span: Span | None = attrs.field(default=None, eq=False)


class _Poison:
    """The value of a failed statement: absorbs later uses so one mistake gives one error."""


POISON = _Poison()


def parse_override(text: str) -> tuple[str, Any]:
    """`name=value` from the CLI's -D into a Python value (int, float or bool)."""
    from ..errors import UsageError

    if "=" not in text:
        raise UsageError(f"bad -D `{text}`", hint="write -D name=value, e.g. -D width=32")
    key, _, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    for conv in (int, float):
        try:
            return key, conv(raw)
        except ValueError:
            pass
    if raw in ("true", "false"):
        return key, raw == "true"
    raise UsageError(f"bad value `{raw}` for -D {key}", hint="values are integers, floats, true or false")


class Elaborator:
    def __init__(self, spec: ir.Spec, overrides: dict | None = None):
        self.spec = spec
        self.errors: list[NetevoError] = []
        self.symbols: set[str] = set()  # symbolic dims declared so far (B, H, ...)
        self.blocks = dict(_kinds(spec)[ir.Block])
        self.globals: dict[str, Any] = {}
        self._stmt, self._ncalls = ("", ()), 0  # provenance: statement being run, calls evaluated in it
        self.budget, self._depth = Budget(), 0  # limits: graph size, blocks being inlined, nesting (guards.py)
        self._bind_params(overrides or {})
        for _, m in _kinds(spec)[ir.MaskDef]:
            try:
                self.globals[m.name] = self.mask_value(m.value, self.globals, name=m.name)
            except NetevoError as e:
                self.errors.append(e)

    # --- globals -------------------------------------------------------------
    def _bind_params(self, overrides: dict):
        params = dict(_kinds(self.spec)[ir.Param])
        for key in overrides:
            if key not in params:
                self.errors.append(NameError_(f"-D {key}: no param named `{key}`", None,
                                              did_you_mean(key, params) or "declare it with `param`"))
        for p in params.values():
            try:
                if p.name in overrides:
                    value = overrides[p.name]
                elif p.default is not None:
                    value = self.eval(p.default, self.globals)
                    if value is POISON:  # it uses a param that failed: that one is already reported
                        self.globals[p.name] = POISON
                        continue
                else:
                    raise NameError_(f"param `{p.name}` has no default and no -D value", p.span,
                                     f"give it one on the command line: -D {p.name}=...")
                if p.name in overrides:  # the value came from the command line: point at the flag
                    self.globals[p.name] = _coerce_scalar(value, p.type.name, None,
                                                          f"-D {p.name}={_flag_text(value)}: param `{p.name}`")
                else:
                    self.globals[p.name] = _coerce_scalar(value, p.type.name, p.span, f"param `{p.name}`")
            except NetevoError as e:
                if p.name in overrides and e.span is None and e.hint is None:
                    e.hint = f"`{p.name}` is declared `{p.type.name}`" + (
                        f" at {p.span}" if p.span else "") + f"; give -D {p.name} {'an' if p.type.name == 'int' else 'a'} {p.type.name} value"

                self.errors.append(e)
                self.globals[p.name] = POISON  # its uses are not reported again
    # --- expressions -----------------------------------------------------------
    def eval(self, e, env: dict, dims: bool | str = False):
        """Evaluate an expression.

        dims=True (shapes being declared): an unknown name becomes a new symbolic dim.
        dims="known" (op arguments): a name may be a symbolic dim declared earlier, nothing new,
        so a misspelled param is an error rather than a fresh symbol.
        """
        if isinstance(e, ir.Num):
            return check_value(e.value, e.span)
        if isinstance(e, (ir.Str, ir.Bool)):
            return e.value
        if isinstance(e, ir.Name):
            if e.id in env:
                return env[e.id]
            if e.id in self.globals:
                return self.globals[e.id]
            if dims is True or (dims == "known" and e.id in self.symbols):
                self.symbols.add(e.id)
                return Dim.sym(e.id)
            known = list(env) + list(self.globals) + sorted(self.symbols)
            raise NameError_(f"unknown name `{e.id}`", e.span, did_you_mean(e.id, known) or "define it before use")
        self._depth += 1  # counted here, not in a wrapper: a wrapper would add a Python frame per level
        try:
            if self._depth > MAX_ELABORATION_DEPTH:
                raise too_deep(getattr(e, "span", None))
            if isinstance(e, ir.Neg):
                v = self.eval(e.operand, env, dims)
                if isinstance(v, TensorVal):
                    raise TypeError_("cannot negate a tensor", e.span, "use inverse() for -x")
                return _scalar(v, e.span, "-") * -1
            if isinstance(e, ir.BinOp):
                a, b = self.eval(e.left, env, dims), self.eval(e.right, env, dims)
                if a is POISON or b is POISON:
                    return POISON
                if isinstance(a, TensorVal) or isinstance(b, TensorVal):
                    return self._tensor_binop(e, a, b)
                return check_value(_arith(e.op, _scalar(a, e.left.span, e.op), _scalar(b, e.right.span, e.op),
                                          e.span), e.span)
            if isinstance(e, (ir.ListExpr, ir.SetExpr)):
                return tuple(self.eval(i, env, dims) for i in e.items)
            if isinstance(e, ir.Pipe):
                c = e.call
                return self.call(ir.Call(c.func, (e.value,) + c.args, c.kwargs, span=c.span), env)
            if isinstance(e, ir.Call):
                return self.call(e, env)
        finally:
            self._depth -= 1
        raise TypeError_(f"unexpected expression {e!r}", getattr(e, "span", None))

    def _tensor_binop(self, e: ir.BinOp, a, b):
        op = {"+": "add", "*": "mul"}.get(e.op)
        if op is None or not (isinstance(a, TensorVal) and isinstance(b, TensorVal)):
            raise TypeError_(f"`{e.op}` between a tensor and a {'tensor' if op is None else 'number'}", e.span,
                             "tensors combine with + (add) and * (mul); use an op call for anything else")
        self.sink.call_origin = None
        return self.apply_op(get_op(op), [a, b], {}, e.span)

    # --- calls -----------------------------------------------------------------
    def call(self, c: ir.Call, env: dict):
        origin = (*self._stmt, self._ncalls)
        self._ncalls += 1
        if c.func in self.blocks:
            return self.call_block(self.blocks[c.func], c, env, origin)
        op = get_op(c.func)
        if op is None:
            hint = did_you_mean(c.func, list(op_names()) + list(self.blocks)) or "see `netevo ops` for the list"
            raise NameError_(f"unknown op `{c.func}`", c.span, hint, code="E022")
        args = [self.eval(a, env) for a in c.args]
        kwargs = {}
        for kw in c.kwargs:
            if kw.name in kwargs:
                raise TypeError_(f"`{kw.name}` given twice", kw.span)
            if kw.name == "mask":
                kwargs[kw.name] = self.mask_value(kw.value, env)
            else:
                kwargs[kw.name] = self.eval(kw.value, env, dims="known")
        if any(a is POISON for a in args) or any(v is POISON for v in kwargs.values()):
            return POISON
        self.sink.call_origin = origin
        return self.apply_op(op, args, kwargs, c.span)

    def mask_value(self, e, env, name=None):
        if isinstance(e, ir.Bool) and not e.value or isinstance(e, ir.Name) and e.id == "none":
            return None
        if isinstance(e, ir.Name):
            v = self.eval(e, env)
            if not isinstance(v, MaskSpec):
                raise TypeError_(f"`{e.id}` is not a mask", e.span, "declare it with `mask NAME = random(...)`")
            return v
        if not isinstance(e, ir.Call) or e.func not in MASK_KINDS:
            hint = did_you_mean(e.func, MASK_KINDS) if isinstance(e, ir.Call) else None
            raise TypeError_("a mask is a mask name or one of " + ", ".join(f"{k}(...)" for k in MASK_KINDS),
                             getattr(e, "span", None), hint)
        kind = MASK_KINDS[e.func]
        values = {k.name: self.eval(k.value, env) for k in e.kwargs}
        params = _bind_params_to_defs(kind.params, [self.eval(a, env) for a in e.args], values, e.span,
                                      f"mask {e.func}")
        return MaskSpec(e.func, tuple(sorted(params.items())), name=name)

    def apply_op(self, op: OpDef, args: list, kwargs: dict, span: Span | None):
        self.budget.charge(span)
        tensors = []
        rest = list(args)
        while rest and isinstance(rest[0], TensorVal):
            tensors.append(rest.pop(0))
        if any(isinstance(a, TensorVal) for a in rest):
            raise TypeError_(f"{op.name}: tensor arguments come first", span)
        if len(tensors) < op.min_inputs or (op.max_inputs is not None and len(tensors) > op.max_inputs):
            want = op.min_inputs if op.max_inputs == op.min_inputs else f"at least {op.min_inputs}"
            raise TypeError_(f"{op.name} takes {want} tensor input(s), got {len(tensors)}", span,
                             "in a pipeline `x |> op(...)`, x is the first input")
        params = _bind_params_to_defs(op.params, rest, kwargs, span, op.name)
        shapes = [t.shape for t in tensors]
        try:
            out = op.infer(shapes, params)
        except (ShapeFailure, ValueError, TypeError, ZeroDivisionError) as f:
            # Besides ShapeFailure, shape rules fail on symbolic values where they need concrete ones
            # (`flatten(x, end=B)`): still the user's error, reported with its span, never a traceback.
            notes = [(t.span, f"input {i} `{t.origin}` has shape {shape_str(t.shape)}") for i, t in enumerate(tensors)]
            message, hint = (f.message, f.hint) if isinstance(f, ShapeFailure) else (
                str(f) or type(f).__name__, "this value must be a concrete integer here")
            raise ShapeError(f"{op.name}: {message}", span, hint, notes=notes, code=getattr(f, "code", None)) from None
        for shape in (out if op.n_outputs is not None else (out,)):
            check_shape(shape, span, op.name)
        if op.weight_bearing and params.get("mask") is not None:
            fan_in = Dim.of(shapes[0][1] if op.name.startswith("conv") else shapes[0][-1]) / Dim.of(
                params.get("groups", 1))
            out_f = Dim.of(params["out"])
            if fan_in.is_int() and out_f.is_int():
                problem = check_mask(params["mask"], int(out_f), int(fan_in))
                if problem:
                    raise ShapeError(f"{op.name}: mask `{params['mask'].name or params['mask'].kind}`: {problem}",
                                     span, "masks are (out, in) for linear, (out, in/groups) for conv")
        return self.sink.add_op(op, tensors, params, out, span)

    def call_block(self, block: ir.Block, c: ir.Call, env: dict, origin=None):
        args = [self.eval(a, env) for a in c.args]
        kw = {k.name: self.eval(k.value, env) for k in c.kwargs}
        if any(a is POISON for a in args) or any(v is POISON for v in kw.values()):
            return POISON
        saved, self.sink.call_origin = (self._stmt, self._ncalls), origin
        self.budget.enter_block(block.name, c.span)  # E120 (a block calling itself), E122
        self._depth += BLOCK_CALL_DEPTH_COST
        try:
            if self._depth > MAX_ELABORATION_DEPTH:
                raise too_deep(c.span)
            return self.sink.add_block(self, block, args, kw, c.span)
        finally:
            self._depth -= BLOCK_CALL_DEPTH_COST
            self.budget.exit_block()
            self._stmt, self._ncalls = saved

    def bind_block(self, block: ir.Block, args: list, kwargs: dict, span) -> dict:
        """Bind call arguments to block params and unify tensor shapes; returns the block's env."""
        names = [p.name for p in block.params]
        if len(args) > len(names):
            raise TypeError_(f"block `{block.name}` takes {len(names)} arguments, got {len(args)}", span)
        for k in kwargs:
            if k not in names:
                raise TypeError_(f"block `{block.name}` has no parameter `{k}`", span, did_you_mean(k, names))
        bound = dict(zip(names, args))
        for k, v in kwargs.items():
            if k in bound:
                raise TypeError_(f"`{k}` given twice", span)
            bound[k] = v
        env: dict[str, Any] = {}
        for p in block.params:  # scalars first: tensor shapes may use them
            if isinstance(p.type, ir.ScalarType):
                if p.name not in bound:
                    if p.default is None:
                        raise TypeError_(f"block `{block.name}` needs `{p.name}`", span,
                                         f"pass {p.name}=... at the call")
                    bound[p.name] = self.eval(p.default, env)
                env[p.name] = _coerce_scalar(bound[p.name], p.type.name, span, f"`{p.name}` of `{block.name}`")
        for p in block.params:
            if isinstance(p.type, ir.TensorType):
                if p.name not in bound:
                    raise TypeError_(f"block `{block.name}` needs tensor `{p.name}`", span)
                v = bound[p.name]
                if not isinstance(v, TensorVal):
                    raise TypeError_(f"`{p.name}` of `{block.name}` must be a tensor", span)
                self.unify(p.type, v, env, f"`{p.name}` of block `{block.name}`", span)
                env[p.name] = v
        return env

    def unify(self, declared: ir.TensorType, value: TensorVal, env: dict, what: str, span) -> None:
        if len(declared.dims) != len(value.shape):
            raise ShapeError(f"{what} expects rank {len(declared.dims)}, got {shape_str(value.shape)}", span,
                             notes=[(value.span, f"`{value.origin}` produced it")])
        for d_expr, actual in zip(declared.dims, value.shape):
            if isinstance(d_expr, ir.Name) and d_expr.id not in env and d_expr.id not in self.globals:
                env[d_expr.id] = Dim.of(actual)
                continue
            want = _size(self.eval(d_expr, env, dims=True), d_expr, what)
            if want != Dim.of(actual):
                expected = "[" + ", ".join(str(self.eval(d, env, dims=True)) for d in declared.dims) + "]"
                raise ShapeError(f"{what} expects shape {expected}, got {shape_str(value.shape)}", span,
                                 "the declared shape and the actual one must agree",
                                 notes=[(value.span, f"`{value.origin}` produced {shape_str(value.shape)}")])

    # --- statements --------------------------------------------------------------
    def run_body(self, body, env: dict, prefix: str, is_block: bool = False, where: tuple | None = None):
        """Run statements; returns the value of `return` (blocks) or None. `where`: (item, index path) of body."""
        result = None
        for i, s in enumerate(body):
            if where is not None:
                self._stmt, self._ncalls = (where[0], (*where[1], i)), 0
            try:
                if isinstance(s, ir.Input):
                    if is_block:
                        raise TypeError_("`input` belongs in a network; blocks take parameters", s.span)
                    check_identifier(s.name, s.span, "input name")
                    shape = tuple(_size(self.eval(d, env, dims=True), d, f"input `{s.name}`") for d in s.type.dims)
                    check_shape(shape, s.span, f"input `{s.name}`")
                    if not shape:  # every layer reads a batch axis; a 0-d input reaches forward and fails there
                        raise ShapeError(f"input `{s.name}` has no dimensions", s.span,
                                         "a network takes batches: declare at least the batch axis, e.g. [B, 3]")
                    env[s.name] = self.sink.add_input(s.name, shape, s.span)
                elif isinstance(s, ir.Assign):
                    for t in s.targets:
                        check_value_name(t, s.span)
                        check_module_name(t, s.span, "value name")
                    value = self.statement_value(s.value, env, prefix, s.targets[0], s.span)
                    self._assign(s, value, env)
                elif isinstance(s, ir.Output):
                    if is_block:
                        raise TypeError_("`output` belongs in a network; blocks `return`", s.span)
                    check_identifier(s.name, s.span, "output name")
                    check_module_name(s.name, s.span, "output name")
                    value = self.statement_value(s.value, env, prefix, s.name, s.span)
                    if value is not POISON:
                        if not isinstance(value, TensorVal):
                            raise TypeError_(f"output `{s.name}` is not a tensor", s.span)
                        self.sink.add_output(s.name, value, s.span)
                    env[s.name] = value
                elif isinstance(s, ir.Return):
                    if not is_block:
                        raise TypeError_("`return` belongs in a block; networks declare `output`s", s.span)
                    result = self.statement_value(s.value, env, prefix, "out", s.span)
                elif isinstance(s, ir.Repeat):
                    self.run_repeat(s, env, prefix)
            except LimitError:
                raise  # going on would repeat the cost: elaboration stops (see elaborate())
            except NetevoError as e:
                for err in flatten(e):
                    if err.span is None:  # raised below the spans (a Dim limit in a shape rule): the statement's
                        err.span = s.span
                self.errors.extend(flatten(e))
                for t in getattr(s, "targets", ()) or ((s.name,) if isinstance(s, ir.Input) else ()):
                    env[t] = POISON
                if isinstance(s, ir.Return):
                    result = POISON
        return result

    def _assign(self, s: ir.Assign, value, env):
        if len(s.targets) == 1:
            env[s.targets[0]] = value
            return
        if value is POISON:
            for t in s.targets:
                env[t] = POISON
            return
        if not isinstance(value, tuple) or len(value) != len(s.targets):
            n = len(value) if isinstance(value, tuple) else 1
            raise TypeError_(f"{len(s.targets)} names but the value has {n} part(s)", s.span)
        for t, v in zip(s.targets, value):
            env[t] = v

    def run_repeat(self, s: ir.Repeat, env, prefix):
        check_identifier(s.name, s.span, "repeat name")
        check_module_name(s.name, s.span, "repeat name")
        n = self.eval(s.count, env)
        if isinstance(n, Dim) and n.is_int():
            n = int(n)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise TypeError_(f"repeat count must be a non-negative integer, got {n}", s.count.span)
        if n > MAX_REPEAT:
            raise NetevoError(f"repeat count {n} is above the limit of {MAX_REPEAT}", s.count.span,
                              f"a repeat makes at most {MAX_REPEAT} copies", code="E123")
        single = len(s.body) == 1 and isinstance(s.body[0], ir.Assign) and \
            self.count_modules(s.body[0].value) == 1
        where = self._stmt
        for i in range(n):
            self.budget.charge(s.span)
            if single:
                self.sink.name_override = f"{prefix}{s.name}.{i}"
            self.run_body(s.body, env, f"{prefix}{s.name}.{i}.", where=where)
            self.sink.name_override = None

    def statement_value(self, e, env, prefix, target, span):
        self.sink.begin_statement(prefix, target, self.count_modules(e))
        return self.eval(e, env)

    def count_modules(self, e) -> int:
        if isinstance(e, ir.Call):
            own = 1 if e.func in self.blocks or (get_op(e.func) is not None and get_op(e.func).module) else 0
            return own + sum(self.count_modules(a) for a in e.args) + sum(self.count_modules(k.value) for k in e.kwargs)
        if isinstance(e, ir.Pipe):
            return self.count_modules(e.value) + self.count_modules(e.call)
        if isinstance(e, ir.BinOp):
            return self.count_modules(e.left) + self.count_modules(e.right)
        if isinstance(e, ir.Neg):
            return self.count_modules(e.operand)
        return 0


# --- the graph builder ---------------------------------------------------------------


class GraphBuilder:
    """Receives ops from the Elaborator and builds a `Graph` with module-path names."""

    def __init__(self):
        self.inputs: list[GraphInput] = []
        self.nodes: list[Node] = []
        self.outputs: list[tuple[str, str]] = []
        self.used: set[str] = set()
        self._prefixes: set[str] = set()  # every `a`, `a.b` of a used `a.b.c`: a module path's parents
        self._next_suffix: dict[str, int] = {}  # base -> k of the last `base_k` handed out
        self.block_stack: list[tuple[str, str]] = []
        self.origin_stack: list[tuple] = []  # the calls of the enclosing block instances
        self.call_origin: tuple | None = None  # set by the Elaborator before each op or block call
        self.name_override: str | None = None
        self._prefix, self._target, self._count, self._index = "", "t", 0, 0

    def begin_statement(self, prefix, target, n_modules):
        self._prefix, self._target, self._count, self._index = prefix, target, n_modules, 0
        base = prefix + target
        self._base = self._unique(base) if n_modules else base

    def _unique(self, base):
        # Names are never released, so every `base_j` below the last k handed out is still taken:
        # start there. With `_prefixes` this keeps naming O(1) per op instead of O(ops).
        k = self._next_suffix.get(base, 0)
        name = f"{base}_{k}" if k else base
        while name in self.used or name in self._prefixes:
            k += 1
            name = f"{base}_{k}"
        self._next_suffix[base] = k
        return name

    def _use(self, name):
        self.used.add(name)
        end = name.rfind(".")
        while end > 0:  # longest parent first; one already known has all of its own parents known too
            parent = name[:end]
            if parent in self._prefixes:
                break
            self._prefixes.add(parent)
            end = name.rfind(".", 0, end)

    def _module_name(self):
        if self.name_override is not None:
            base = self.name_override
        else:
            base = self._base
        name = base if self._count == 1 else f"{base}.{self._index}"
        self._index += 1
        self._use(name)
        return name

    def add_input(self, name, shape, span):
        self.inputs.append(GraphInput(name, shape, span=span))
        self._use(name)
        return TensorVal(name, shape, f"input {name}", span)

    def add_op(self, op: OpDef, tensors, params, out, span):
        if op.module:
            name = self._module_name()
            if op.parameter and name.rpartition(".")[2].isdigit():  # `p.0` would sit in a list of modules
                raise TypeError_(f"`{op.name}` needs a statement of its own, `name = {op.name}(...)`", span,
                                 "its state-dict key is the statement's name; a statement making several modules "
                                 "(or a one-statement repeat) numbers them", code="E200")
        else:
            name = self._unique(f"{self._prefix}{self._target}_{op.name}")
            self._use(name)
        multi = op.n_outputs is not None
        shape = tuple(tuple(Dim.of(d) for d in s) for s in out) if multi else tuple(Dim.of(d) for d in out)
        self.nodes.append(Node(name, op.name, tuple(t.ref for t in tensors), tuple(params.items()), shape,
                               module=op.module, block_path=tuple(self.block_stack), span=span,
                               origin=(*self.origin_stack, self.call_origin)))
        if multi:
            return tuple(TensorVal(f"{name}:{i}", s, f"{op.name} `{name}`", span) for i, s in enumerate(shape))
        return TensorVal(name, shape, f"{op.name} `{name}`", span)

    def add_block(self, el: Elaborator, block: ir.Block, args, kwargs, span):
        path = self._module_name()
        env = el.bind_block(block, args, kwargs, span)
        saved = (self._prefix, self._target, self._count, self._index, self._base, self.name_override)
        self.name_override = None
        self.block_stack.append((path, block.name))
        self.origin_stack.append(self.call_origin)
        try:
            result = el.run_body(block.body, env, path + ".", is_block=True, where=(block.name, ()))
        finally:
            self.block_stack.pop()
            self.origin_stack.pop()
            self._prefix, self._target, self._count, self._index, self._base, self.name_override = saved
        if result is None:
            raise TypeError_(f"block `{block.name}` has no `return`", block.span)
        if result is not POISON and block.returns is not None:
            if not isinstance(result, TensorVal):
                raise TypeError_(f"block `{block.name}` must return a tensor", block.span)
            el.unify(block.returns, result, env, f"the return of block `{block.name}`", block.returns.span or span)
        return result

    def add_output(self, name, value, span):
        self.outputs.append((name, value.ref))


def elaborate(spec: ir.Spec, network: str | None = None, overrides: dict | None = None) -> Graph:
    """Expand one network of the spec (the only one, or the one named) into a Graph."""
    nets = [n for _, n in _kinds(spec)[ir.Network]] if network is None else None
    if network is None:
        if len(nets) != 1:
            names = ", ".join(n.name for n in nets) or "none"
            raise NameError_(f"the spec has {len(nets)} networks ({names})", None,
                             "name one with --network NAME" if nets else "declare one with `network NAME { ... }`")
        net = nets[0]
    else:
        net = _kinds(spec)["by name"].get(network)
        if net is None:
            raise NameError_(f"no network named `{network}`", None,
                             did_you_mean(network, [name for name, _ in _kinds(spec)[ir.Network]]) or None)
    el = Elaborator(spec, overrides)
    el.sink = GraphBuilder()
    try:
        check_identifier(net.name, net.span, "network name")
        el.run_body(net.body, {}, "", where=(net.name, ()))
    except NetevoError as e:
        el.errors.extend(flatten(e))
    except RecursionError:  # a backstop: the depth limits above are meant to stop well before Python's
        el.errors.append(too_deep(net.span))
    if not el.errors and not el.sink.outputs:
        el.errors.append(TypeError_(f"network `{net.name}` has no output", net.span,
                                    "declare one: output y = ..."))
    raise_all(_dedupe(el.errors))
    b = el.sink
    return Graph(net.name, tuple(b.inputs), tuple(b.nodes), tuple(b.outputs), span=net.span)


_KINDS: dict[int, tuple] = {}  # id(spec) -> (weak reference to the spec, its items by kind)


def _kinds(spec: ir.Spec) -> dict:
    """The spec's blocks, params, masks and networks as (name, item) lists, built once per spec object.

    `check` elaborates every network: looking items up anew each time made a spec of n networks O(n^2).
    """
    entry = _KINDS.get(id(spec))
    if entry is not None and entry[0]() is spec:
        return entry[1]
    kinds: dict = {ir.Block: [], ir.MaskDef: [], ir.Param: [], ir.Network: []}
    for item in spec.all_items():
        if type(item) in kinds:
            kinds[type(item)].append((item.name, item))
    kinds["by name"] = {}
    for name, net in kinds[ir.Network]:
        kinds["by name"].setdefault(name, net)  # the first of a name, as `Spec.find`
    key = id(spec)
    _KINDS[key] = (weakref.ref(spec, lambda _, key=key: _KINDS.pop(key, None)), kinds)
    return kinds


def _dedupe(errors):
    seen, out = set(), []
    for e in errors:
        key = (e.code, e.message, e.span)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


# --- scalar helpers ---------------------------------------------------------------------


def _scalar(v, span, what):
    if isinstance(v, TensorVal):
        raise TypeError_(f"expected a number in `{what}`, got a tensor", span)
    if isinstance(v, (tuple, MaskSpec, str)) or v is None:
        raise TypeError_(f"expected a number in `{what}`, got {v!r}", span)
    if isinstance(v, Dim) and v.is_int():
        return int(v)
    return v


def _size(v, d_expr, what) -> Dim:
    """A size written in a shape: a fraction (`H / 2` of an odd H) or a bool is a shape error, not a crash."""
    v = _scalar(v, d_expr.span, "shape")
    try:
        return Dim.of(v)
    except TypeError:
        from ..ir.printer import expr

        raise ShapeError(f"{what}: size `{expr(d_expr)}` is {_show(v)}, not a whole number", d_expr.span,
                         "a size written with `/` must divide exactly") from None


def _arith(op, a, b, span):
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
                if b == 0:
                    raise ZeroDivisionError
                return a // b if a % b == 0 else a / b
            if isinstance(a, Dim) or isinstance(b, Dim):
                return Dim.of(a) / Dim.of(b)
            return a / b
        if op == "//":
            if isinstance(a, Dim) or isinstance(b, Dim):
                return Dim.of(a) // Dim.of(b)
            return a // b
        if op == "%":
            return a % b
    except ZeroDivisionError:
        raise TypeError_("division by zero", span) from None
    except TypeError:
        raise TypeError_(f"cannot apply `{op}` to {a!r} and {b!r}", span) from None
    raise TypeError_(f"unknown operator {op}", span)


def _flag_text(value) -> str:
    """A -D value as the user typed it (bools in the language's spelling)."""
    return ("true" if value else "false") if isinstance(value, bool) else f"{value!r}"


def _coerce_scalar(value, type_name, span, what):
    if isinstance(value, Dim) and value.is_int():
        value = int(value)
    if type_name == "int":
        if isinstance(value, bool) or not isinstance(value, (int, Dim)):
            raise TypeError_(f"{what} must be an int, got {_flag_text(value)}", span)
    elif type_name == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError_(f"{what} must be a float, got {_flag_text(value)}", span)
        value = float(value)
    elif type_name == "bool":
        if not isinstance(value, bool):
            raise TypeError_(f"{what} must be true or false, got {_flag_text(value)}", span)
    else:
        raise TypeError_(f"unknown type `{type_name}`", span, "scalar types are int, float and bool")
    return value


def _bind_params_to_defs(defs, positional, kwargs, span, what) -> dict:
    """Bind scalar args to registry ParamDefs, with type and range checks."""
    from ..ops.registry import REQUIRED

    names = [d.name for d in defs]
    if len(positional) > len(defs):
        raise TypeError_(f"{what} takes at most {len(defs)} parameter(s), got {len(positional)} positional", span)
    given = dict(zip(names, positional))
    for k, v in kwargs.items():
        if k not in names:
            raise TypeError_(f"{what} has no parameter `{k}`", span,
                             did_you_mean(k, names) or (f"its parameters: {', '.join(names)}" if names else
                                                        f"{what} takes no parameters"), code="E031")
        if k in given:
            raise TypeError_(f"{what}: `{k}` given twice", span)
        given[k] = v
    out = {}
    for d in defs:
        if d.name not in given:
            if d.default is REQUIRED:
                raise TypeError_(f"{what} needs `{d.name}`", span, f"add {d.name}=... ({d.doc or d.type})", code="E032")
            out[d.name] = d.default
            continue
        out[d.name] = _check_param(d, given[d.name], span, what)
    return out


def _check_param(d, v, span, what):
    if isinstance(v, Dim) and v.is_int():
        v = int(v)
    bad = TypeError_(f"{what}: `{d.name}` must be {_type_words(d)}, got {_show(v)}", span, code="E033")
    t = d.type
    if t == "mask":
        if v is not None and not isinstance(v, MaskSpec):
            raise bad
        return v
    if t == "int":
        if isinstance(v, bool) or not isinstance(v, (int, Dim)):
            raise bad
    elif t == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad
        v = float(v)
    elif t == "bool":
        if not isinstance(v, bool):
            raise bad
    elif t == "str":
        if v not in d.choices:
            raise bad
    elif t == "int_or_str":
        if isinstance(v, str):
            if v not in d.choices:
                raise bad
            return v
        if isinstance(v, bool) or not isinstance(v, (int, Dim)):
            raise bad
    elif t == "ints":
        if not isinstance(v, tuple) or any(isinstance(i, bool) or not isinstance(i, (int, Dim)) for i in v):
            raise bad
        return tuple(int(i) if isinstance(i, Dim) and i.is_int() else i for i in v)
    elif t == "size":  # one integer for every spatial axis, or a list of one per axis (its length: the shape rule's)
        if isinstance(v, str):  # a conv's pad="same"
            if v not in d.choices:
                raise bad
            return v
        items = v if isinstance(v, tuple) else (v,)
        if not items or any(isinstance(i, bool) or not isinstance(i, (int, Dim)) for i in items):
            raise bad
        items = tuple(int(i) if isinstance(i, Dim) and i.is_int() else i for i in items)
        if d.minimum is not None and any(isinstance(i, int) and i < d.minimum for i in items):
            raise TypeError_(f"{what}: `{d.name}` must be at least {d.minimum}, got {_show(v)}", span, code="E034")
        return items if isinstance(v, tuple) else items[0]
    elif t == "strs":
        if not isinstance(v, tuple) or any(not isinstance(i, str) for i in v):
            raise bad
        return v
    if d.minimum is not None and isinstance(v, (int, float)) and v < d.minimum:
        raise TypeError_(f"{what}: `{d.name}` must be at least {d.minimum}, got {v}", span, code="E034")
    return v


def _type_words(d) -> str:
    if d.type in ("str",):
        return "one of " + ", ".join(f'"{c}"' for c in d.choices)
    if d.type == "int_or_str":
        return "an integer or one of " + ", ".join(f'"{c}"' for c in d.choices)
    return {"int": "an integer", "float": "a number", "bool": "true or false", "ints": "a list of integers",
            "size": "an integer or a list of integers, one per spatial axis" + (
                " or one of " + ", ".join(f'"{c}"' for c in d.choices) if d.choices else ""),
            "strs": "a list of strings", "mask": "a mask"}.get(d.type, d.type)


def _show(v) -> str:
    if isinstance(v, TensorVal):
        return "a tensor"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return "[" + ", ".join(_show(i) for i in v) + "]"
    return str(v)


__all__ = ["elaborate", "Elaborator", "GraphBuilder", "check_identifier", "parse_override", "ErrorGroup"]
