"""torch.fx graph -> `.net` text, with module paths kept so that `state_dict` keys match the original.

Naming (docs/language.md, "Names"): a top-level child `conv1` becomes the statement `conv1 = ...`; the
children of a top-level `nn.Sequential` called in order become one pipeline `features = x |> ... |> ...`
(`features.0`, `features.1`, ...). Other paths (`layer1.0.conv1`) are refused (E161), never renamed.
"""
from __future__ import annotations

import importlib
import keyword
import linecache
import os
import re

import attrs

from ..errors import NetevoError, Span
from ..ops.registry import REQUIRED, Unimportable, all_ops, get_op
from ..ir.dims import Dim

RUNTIME = object()  # an argument computed in forward (`x.size(0)`): only rules that ignore it can import the call
_KEYWORDS = {"version", "import", "param", "block", "mask", "network", "genome", "mutate", "evolve", "input",
             "output", "repeat", "as", "return", "true", "false", "none"}


@attrs.frozen
class Call:
    """One traced call as an op's `TorchImport.params` rule sees it (shapes are concrete, batch first)."""

    module: object  # the nn.Module for call_module, else None
    args: tuple  # constants; None where a tensor of the network goes, RUNTIME where forward computed a value
    kwargs: dict
    in_shapes: tuple
    out_shape: tuple

    def arg(self, index: int, name: str, default):
        value = self.args[index] if index < len(self.args) else self.kwargs.get(name, default)
        if value is RUNTIME:
            raise Unimportable(f"`{name}` is computed in forward; the importer needs a constant")
        return value


@attrs.frozen
class _Stmt:
    name: str | None  # None: a Sequential child, merged into its parent's pipeline
    op: str
    params: dict
    inputs: tuple  # spec value names
    node: object
    seq: tuple | None = None  # (parent, index) for a child of a top-level nn.Sequential


def import_error(code: str, message: str, node=None, hint: str | None = None) -> NetevoError:
    return NetevoError(message, span=_user_span(node), hint=hint, code=code)


def _user_span(node) -> Span | None:
    """The user's source line of an fx node: the innermost frame of its stack trace outside torch."""
    trace = getattr(node, "stack_trace", None) or ""
    import torch

    torch_dir = os.path.dirname(torch.__file__)
    frames = [(f, int(n)) for f, n in re.findall(r'File "([^"]+)", line (\d+)', trace)
              if not os.path.abspath(f).startswith(torch_dir)]
    if not frames:
        return None
    file, line = frames[-1]
    text = linecache.getline(file, line).rstrip()
    start = len(text) - len(text.lstrip()) + 1
    return Span(file, line, start, line, max(start, len(text) + 1))


def _module_path(node) -> str:
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack)[-1] if stack else ""


def _where(node) -> str:
    path = _module_path(node)
    return f"in module `{path}`" if path else "in the top-level module"


def _resolve(dotted: str):
    module, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None  # an older torch without it


def _tables():
    """PyTorch class / function / method -> [(op name, TorchImport)], from the op registry."""
    modules, functions, methods = {}, {}, {}
    for op in all_ops():
        for rule in op.torch_import:
            for dotted in rule.modules:
                if (cls := _resolve(dotted)) is not None:
                    modules.setdefault(cls, []).append((op.name, rule))
            for dotted in rule.functions:
                if (fn := _resolve(dotted)) is not None:
                    functions.setdefault(fn, []).append((op.name, rule))
            for name in rule.methods:
                methods.setdefault(name, []).append((op.name, rule))
    return modules, functions, methods


def _describe(node, root) -> str:
    if node.op == "call_module":
        cls = type(root.get_submodule(node.target))
        where = "torch.nn" if cls.__module__.startswith("torch.nn.modules") else cls.__module__
        return f"{where}.{cls.__qualname__}"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    return f"{getattr(target, '__module__', None) or 'torch'}.{getattr(target, '__name__', target)}"


def _trace(module):
    import torch.fx as fx

    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    try:
        graph = tracer.trace(module)
    except Exception as e:  # fx raises anything from the user's forward: data-dependent control flow, ...
        raise import_error("E163", f"torch.fx cannot trace {type(module).__name__}: {type(e).__name__}: {e}",
                           hint="the importer needs a forward without data-dependent control flow") from None
    return fx.GraphModule(tracer.root, graph)


def _shapes(gm, inputs):
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(*inputs)
    except Exception as e:  # the user's forward failed on the example inputs
        raise import_error("E163", f"the model fails on the example inputs: {type(e).__name__}: {e}",
                           hint="give example inputs of the shapes the model expects") from None


def _tensor_shape(node):
    meta = node.meta.get("tensor_meta") if hasattr(node, "meta") else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def import_text(module, example_inputs, name: str | None = None) -> str:
    """The `.net` text of `module` traced at `example_inputs` (a tensor, a tuple, or a dict by forward name)."""
    import torch.fx as fx

    gm = _trace(module)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    inputs = _order_inputs(example_inputs, placeholders)
    _shapes(gm, inputs)
    batch = inputs[0].shape[0] if inputs and inputs[0].dim() else None
    tables = _tables()
    used = {n for n, _ in module.named_children()} | {n for n, _ in module.named_parameters(recurse=False)} \
        | {n for n, _ in module.named_buffers(recurse=False)}
    values: dict = {}  # fx node -> spec value name
    lines, stmts, called = [], [], set()

    for node in placeholders:
        shape = _tensor_shape(node)
        if shape is None or not shape or shape[0] != batch:
            raise import_error("E163", f"input `{node.target}` is not a tensor with the batch axis first",
                               hint="every input is a tensor [batch, ...] of the same batch size")
        values[node] = _fresh(str(node.target), used)
        lines.append(f"  input {values[node]}: [B{''.join(', ' + str(d) for d in shape[1:])}]")

    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "get_attr":
            raise import_error("E164", f"forward reads the tensor `{node.target}` directly", node,
                               "only parameters held by registered layers can be imported")
        out_shape = _tensor_shape(node)
        if out_shape is None and not _feeds_only_reshapes(node):
            raise import_error("E160", f"`{_describe(node, gm)}` gives a value that is not one tensor, "
                               f"{_where(node)}", node, "the importer covers the ops listed in docs/import.md")
        if out_shape is None:
            continue
        op_name, params = _match(node, gm, tables, out_shape)
        tensor_inputs = [a for a in _flat(node.args) + _flat(list(node.kwargs.values()))
                         if isinstance(a, fx.Node) and _tensor_shape(a) is not None]
        names = tuple(values[a] for a in tensor_inputs)
        seq = None
        if node.op == "call_module":
            path = str(node.target)
            if path in called:
                raise import_error("E165", f"module `{path}` is called more than once", node,
                                   "a spec layer is called once; shared layers are not imported")
            called.add(path)
            parts = path.split(".")
            if len(parts) == 2 and parts[1].isdigit() and _identifier(parts[0]):
                seq = (parts[0], int(parts[1]))
            elif len(parts) != 1 or not _identifier(path):
                raise import_error("E161", f"module path `{path}` cannot be named in a spec yet", node,
                                   "top-level layers and the children of a top-level nn.Sequential are imported; "
                                   "nested blocks are not (docs/import.md)")
        if seq is None:
            stmt_name = str(node.target) if node.op == "call_module" else _fresh(op_name, used)
            if node.op == "call_module":
                used.add(stmt_name)
            values[node] = stmt_name
        else:
            values[node] = f"{seq[0]}#{seq[1]}"  # placeholder until the pipeline is built
        stmts.append(_Stmt(None if seq else values[node], op_name, params, names, node, seq))

    lines += _pipelines(stmts, values)
    outs = [a for a in _flat([n for n in gm.graph.nodes if n.op == "output"][0].args)]
    if not outs or any(not isinstance(a, fx.Node) or a not in values for a in outs):
        raise import_error("E163", "forward must return a tensor or a tuple of tensors")
    for i, node in enumerate(outs):
        lines.append(f"  output {_fresh('out' if len(outs) == 1 else f'out{i}', used)} = {values[node]}")
    _check_weights_reached(module, called)
    net = name or re.sub(r"\W", "_", type(module).__name__).lower()
    if not _identifier(net):
        net = "imported"
    return "version 1\n\nnetwork " + net + " {\n" + "\n".join(lines) + "\n}\n"


def from_module(module, example_inputs, name: str | None = None):
    """A Spec for `module`: compile_module(spec).load_state_dict(module.state_dict(), strict=True) works."""
    from .. import check, parse

    text = import_text(module, example_inputs, name)
    try:
        spec = parse(text)
        check(spec)
    except NetevoError as e:
        raise NetevoError(f"the imported spec does not check: {e}", hint="please report this with the model",
                          code="E167") from None
    return spec


# --- helpers ---------------------------------------------------------------------------------------


def _order_inputs(example_inputs, placeholders):
    import torch

    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if isinstance(example_inputs, dict):
        missing = [str(p.target) for p in placeholders if str(p.target) not in example_inputs]
        if missing:
            raise import_error("E166", f"no example input for {', '.join(missing)}",
                               hint=f"forward takes {', '.join(str(p.target) for p in placeholders)}")
        example_inputs = tuple(example_inputs[str(p.target)] for p in placeholders)
    example_inputs = tuple(example_inputs)
    if len(example_inputs) != len(placeholders) or not all(isinstance(t, torch.Tensor) for t in example_inputs):
        raise import_error("E166", f"forward takes {len(placeholders)} tensors "
                           f"({', '.join(str(p.target) for p in placeholders)}), got {len(example_inputs)} inputs")
    return example_inputs


def _flat(xs):
    out = []
    for x in xs:
        out += _flat(x) if isinstance(x, (list, tuple)) else [x]
    return out


def _identifier(name: str) -> bool:
    return name.isidentifier() and name not in _KEYWORDS and not keyword.iskeyword(name)


def _fresh(base: str, used: set) -> str:
    base = base if _identifier(base) else f"{base}_"
    name, i = base, 0
    while name in used or not _identifier(name):
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


def _feeds_only_reshapes(node) -> bool:
    """`x.size(0)`, `x.shape[1]`: values that only size a reshape, which takes its shape from the trace."""
    for user in node.users:
        if user.op == "call_method" and user.target in ("view", "reshape"):
            continue
        if _tensor_shape(user) is None and _feeds_only_reshapes(user):
            continue
        return False
    return True


def _constant(a):
    import torch.fx as fx

    if isinstance(a, fx.Node):
        return None if _tensor_shape(a) is not None else RUNTIME
    if isinstance(a, (list, tuple)):
        return type(a)(_constant(x) for x in a)
    return a


def _match(node, gm, tables, out_shape):
    modules, functions, methods = tables
    module = gm.get_submodule(node.target) if node.op == "call_module" else None
    if node.op == "call_module":
        candidates = modules.get(type(module), [])
    elif node.op == "call_function":
        candidates = next((v for k, v in functions.items() if k is node.target), [])
    else:
        candidates = methods.get(node.target, [])
    what = _describe(node, gm)
    if not candidates:
        raise import_error("E160", f"`{what}` has no netevo op ({_where(node)})", node,
                           "the importer covers the ops listed in docs/import.md; others need an op in ops/")
    import torch.fx as fx

    call = Call(module=module, args=tuple(_constant(a) for a in node.args),
                kwargs={k: _constant(v) for k, v in node.kwargs.items()},
                in_shapes=tuple(_tensor_shape(a) for a in _flat(node.args) + _flat(list(node.kwargs.values()))
                                if isinstance(a, fx.Node) and _tensor_shape(a) is not None),
                out_shape=out_shape)
    reasons = []
    for op_name, rule in candidates:
        try:
            return op_name, rule.params(call)
        except Unimportable as e:
            reasons.append(str(e))
    raise import_error("E162", f"`{what}` {_where(node)} cannot be imported: {reasons[0]}", node,
                       "docs/import.md lists what each op keeps")


def _pipelines(stmts, values):
    """Statements as text; the children of one nn.Sequential become one pipeline named after it."""
    lines, i, chains = [], 0, set()
    while i < len(stmts):
        s = stmts[i]
        if s.seq is None:
            lines.append(f"  {s.name} = {_call(s.op, s.inputs, s.params)}")
            i += 1
            continue
        parent, chain = s.seq[0], [s]
        while i + len(chain) < len(stmts):
            nxt = stmts[i + len(chain)]
            prev = chain[-1]
            if not (nxt.seq and nxt.seq[0] == parent and nxt.inputs == (values[prev.node],)
                    and len(prev.node.users) == 1):
                break
            chain.append(nxt)
        stages, position = [], 0
        for c in chain:
            if c.seq[1] != position:
                raise import_error("E161", f"module path `{c.node.target}` cannot be named in a spec yet: the "
                                   f"children of `{parent}` are not called once each, in order, as one chain",
                                   c.node, "call an nn.Sequential as a whole, or give its children names")
            stages.append(_call(c.op, (), c.params, pipe=True))
            if not get_op(c.op).module:  # keep the next children's indices: a module-less stage holds a place
                stages.append("identity()")
            position += 1
        if parent in chains:
            raise import_error("E161", f"module path `{s.node.target}` cannot be named in a spec yet: `{parent}` "
                               "is called as more than one chain", s.node, "call an nn.Sequential as a whole")
        chains.add(parent)
        for c in chain:
            values[c.node] = parent
        if len(chain[0].inputs) != 1:
            raise import_error("E161", f"the first child of `{parent}` takes {len(chain[0].inputs)} tensors", s.node)
        lines.append(f"  {parent} = {chain[0].inputs[0]} |> " + " |> ".join(stages))
        i += len(chain)
    return [_rename_placeholders(line) for line in lines]


def _rename_placeholders(line):
    """`features#3` (a Sequential child, named before its pipeline was built) -> `features`."""
    return re.sub(r"\b(\w+)#\d+", r"\1", line)


_INFIX = {"add": "+", "mul": "*"}


def _call(op_name, inputs, params, pipe=False):
    if op_name in _INFIX and len(inputs) >= 2:
        return f" {_INFIX[op_name]} ".join(inputs)  # the residual `x + y`, as people write it
    op = get_op(op_name)
    parts = list(inputs)
    for p in op.params:
        if p.name in params and (p.default is REQUIRED or params[p.name] != p.default):
            parts.append(f"{p.name}={_value(params[p.name])}")
    return f"{op_name}({', '.join(parts)})"


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Dim):
        return str(v)
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v)


def _check_weights_reached(module, called):
    for key in module.state_dict():
        owner = key.rpartition(".")[0]
        if owner not in called:
            raise import_error("E164", f"`{key}` belongs to `{owner or 'the top-level module'}`, which forward "
                               "does not call as a layer", hint="only the weights of called layers are imported; "
                               "remove unused layers or tensors read directly in forward")
