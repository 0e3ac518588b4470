"""torch.fx graph -> `.net` text: trace, run once for shapes, match every call against the op registry.

Naming and structure are `naming.py`'s; this module finds which op each call is.
"""
from __future__ import annotations

import importlib
import keyword
import re

import attrs

from ..errors import NetevoError
from ..ops.registry import Unimportable, all_ops, get_op
from .errors import fresh, identifier, import_error
from .batch_size import expand_to_batch
from .multi_output import first_of_tuple, narrow_pieces
from ..ir.printer import value_name
from .naming import SpecWriter
from .training_branches import with_training_branches

RUNTIME = object()  # an argument computed in forward (`x.size(0)`): only rules that ignore it can import the call


@attrs.frozen
class Call:
    """One traced call as an op's `TorchImport.params` rule sees it (shapes are concrete, batch first)."""

    module: object  # the nn.Module for call_module, else None
    args: tuple  # constants; None where a tensor of the network goes, RUNTIME where forward computed a value
    kwargs: dict
    in_shapes: tuple
    out_shape: tuple
    same_tensor: bool = False  # several tensor arguments, all one tensor (attention's query, key and value)
    attribute: object = None  # a get_attr node's tensor (the module's own parameter, `self.layer_scale`)
    batched: tuple = ()  # per tensor argument: does it carry the batch (computed from a network input)?

    def arg(self, index: int, name: str, default):
        value = self.args[index] if index < len(self.args) else self.kwargs.get(name, default)
        if value is RUNTIME:
            raise Unimportable(f"`{name}` is computed in forward; the importer needs a constant")
        return value


def _module_path(node) -> str:
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack)[-1] if stack else ""


def _where(node) -> str:
    path = _module_path(node)
    return f"in module `{path}`" if path else "in the top-level module"


def _resolve(dotted: str):
    """The object a dotted name in a `torch_import` rule names, or None where it does not exist here."""
    if dotted.startswith("torch.ops."):  # ATen overloads (the torch.export path): attributes, not modules
        import torch

        target = torch
        for part in dotted.split(".")[1:]:
            target = getattr(target, part, None)
            if target is None:
                return None
        return target
    module, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None  # an optional package (transformers) or an older torch without it


def _tables():
    """PyTorch class / function / method -> [(op name, TorchImport)], from the op registry."""
    modules, functions, methods, attributes = {}, {}, {}, []
    for op in all_ops():
        for rule in op.torch_import:
            if rule.attributes:
                attributes.append((op.name, rule))
            for dotted in rule.modules:
                if (cls := _resolve(dotted)) is not None:
                    modules.setdefault(cls, []).append((op.name, rule))
            for dotted in rule.functions:
                if (fn := _resolve(dotted)) is not None:
                    functions.setdefault(fn, []).append((op.name, rule))
            for name in rule.methods:
                methods.setdefault(name, []).append((op.name, rule))
    return modules, functions, methods, attributes


def _describe(node, root) -> str:
    if node.op == "call_module":
        cls = type(root.get_submodule(node.target))
        where = "torch.nn" if cls.__module__.startswith("torch.nn.modules") else cls.__module__
        return f"{where}.{cls.__qualname__}"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "get_attr":
        return f"the tensor {node.target}"
    target = node.target
    return f"{getattr(target, '__module__', None) or 'torch'}.{getattr(target, '__name__', target)}"


def _trace(module, leaves=()):
    """fx's graph of `module`; layers of `leaves` (classes some op imports whole, like torchvision's Permute) stay
    one call each instead of being traced through."""
    import torch.fx as fx

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return type(m) in leaves or super().is_leaf_module(m, qualname)

    keyword_named = next((p for p, _ in module.named_modules() if any(map(keyword.iskeyword, p.split(".")))), None)
    if keyword_named is not None:  # neither fx nor a spec can write `self.class(x)`
        raise import_error("E161", f"module path `{keyword_named}` cannot be named in a spec: a part of it is a "
                           "Python keyword", hint="keys are never renamed after the import; rename the module")
    tracer = Tracer()
    tracer.record_stack_traces = True
    try:
        graph = tracer.trace(module)
        return fx.GraphModule(tracer.root, graph)  # fails for a module named like a Python keyword (`class`)
    except Exception as e:  # fx raises anything from the user's forward: data-dependent control flow, ...
        raise import_error("E163", f"torch.fx cannot trace {type(module).__name__}: {type(e).__name__}: {e}",
                           hint="the importer needs a forward without data-dependent control flow") from None


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

    tables = _tables()
    try:
        gm = _trace(module, leaves=set(tables[0]))
    except NetevoError as e:
        if e.code != "E163":
            raise
        from .export_import import import_text as exported  # torch.export where fx cannot trace (GPT-2)

        return exported(module, example_inputs, name, fx_error=e)
    gm = with_training_branches(module, gm, lambda: _trace(module, leaves=set(tables[0])))  # auxiliary classifiers
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    inputs = _order_inputs(example_inputs, placeholders)
    _shapes(gm, inputs)
    narrow_pieces(gm, _tensor_shape)  # `a, b = x.chunk(2, dim=1)`: one narrow per piece
    first_of_tuple(gm, _tensor_shape)  # `y, _ = self.attn(x, x, x)`
    expand_to_batch(gm, _tensor_shape)  # `self.class_token.expand(x.shape[0], -1, -1)`
    batch = inputs[0].shape[0] if inputs and inputs[0].dim() else None
    batched = _batched(gm)
    matched, inputs_of, calls = {}, {}, {}
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "get_attr" and not _is_parameter(_attribute(gm, str(node.target))):
            raise import_error("E164", f"forward reads the buffer `{node.target}` directly", node,
                               "parameters read in forward import as `parameter`; buffers only inside layers")
        out_shape = _tensor_shape(node)
        if out_shape is None:
            if not _feeds_only_reshapes(node):
                raise import_error("E160", f"`{_describe(node, gm)}` gives a value that is not one tensor, "
                                   f"{_where(node)}", node, "the importer covers the ops listed in docs/import.md")
            continue
        matched[node] = _match(node, gm, tables, out_shape, batched)
        ins = [a for a in _flat(node.args) + _flat(list(node.kwargs.values()))
               if isinstance(a, fx.Node) and _tensor_shape(a) is not None]
        if len(ins) > 1 and len(set(ins)) == 1 and get_op(matched[node][0]).max_inputs == 1:
            ins = ins[:1]  # one tensor in several argument slots: self-attention's query, key and value
        inputs_of[node] = ins
        if node.op == "call_module":
            count_layer_call(calls, node, gm)

    def shape_of(node):
        return batch_shape_text(_tensor_shape(node), batch, node)

    writer = SpecWriter(module, matched, inputs_of, shape_of)
    used = top_level_names(module)
    local, lines = {}, []
    for node in placeholders:
        if _tensor_shape(node) is None or not _tensor_shape(node) or _tensor_shape(node)[0] != batch:
            raise import_error("E163", f"input `{node.target}` is not a tensor with the batch axis first",
                               hint="every input is a tensor [batch, ...] of the same batch size")
        local[node] = fresh(str(node.target), used)
        lines.append(f"  input {local[node]}: {shape_of(node)}")
    lines = writer.finish(lines + writer.body("", writer.units("", list(matched)), local, used))
    outs = _flat([n for n in gm.graph.nodes if n.op == "output"][0].args)
    if not outs or any(not isinstance(a, fx.Node) or a not in local for a in outs):
        raise import_error("E163", "forward must return a tensor or a tuple of tensors")
    for i, node in enumerate(outs):
        lines.append(f"  output {fresh('out' if len(outs) == 1 else f'out{i}', used)} = {value_name(local[node])}")
    _check_weights_reached(module, set(calls) | {str(n.target) for n in matched if n.op == "get_attr"})
    text = spec_text(module, name, writer, lines)
    return symbolic_sizes(text, module, inputs[0]) if len(inputs) == 1 else text


def count_layer_call(calls: dict, node, gm) -> None:
    """Count a `call_module` node's call of its layer; a layer with state called twice is refused (E165)."""
    calls[node.target] = calls.get(node.target, 0) + 1
    layer = gm.get_submodule(node.target)
    has_state = any(True for _ in layer.parameters()) or any(True for _ in layer.buffers())
    if calls[node.target] > 1 and has_state:
        raise import_error("E165", f"module `{node.target}` is called more than once", node,
                           "a spec layer is called once; shared layers are not imported")


def batch_shape_text(shape, batch: int, node) -> str:
    """A value's shape as spec text `[B, ...]`; its first axis must be the batch (else E161)."""
    if not shape or shape[0] != batch:
        raise import_error("E161", f"`{node}` is not a tensor with the batch axis first", node)
    return "[B" + "".join(f", {d}" for d in shape[1:]) + "]"


def top_level_names(module) -> set:
    """The names the model's own children, parameters and buffers take (a fresh name must avoid them)."""
    return {n for n, _ in module.named_children()} | {n for n, _ in module.named_parameters(recurse=False)} \
        | {n for n, _ in module.named_buffers(recurse=False)}


def spec_text(module, name: str | None, writer: SpecWriter, lines: list) -> str:
    """The spec: its blocks, then the network `name` (default: the model's class, lower case) of `lines`."""
    net = name or type(module).__name__.lower()
    if not identifier(net):
        net = "imported"
    if net in writer.blocks.values():  # a block of the same class (a bare nn.Sequential holding a Sequential)
        net = fresh(f"{net}_net", set(writer.blocks.values()))
    blocks = "".join("\n" + text for text in writer.block_text)
    return "version 1\n" + blocks + "\nnetwork " + net + " {\n" + "\n".join(lines) + "\n}\n"


# The sizes after batch and channels of an input of each rank, as `netevo import` writes them when the
# model allows any size there (a sequence's length, an image's height and width).
_SYMBOLIC = {3: ("L",), 4: ("H", "W"), 5: ("D", "H", "W")}
_INPUT_LINE = re.compile(r"^  input (\S+): \[B, (\d+)((?:, \d+)+)\]$", re.M)


def symbolic_sizes(text: str, module, example) -> str:
    """`text` with its network input's spatial sizes named (`[B, 3, H, W]`) when the model takes any size
    there: the named spec checks and compiles, and the model itself and the compiled spec both run on an
    input 16 larger in each of those sizes (a Linear after a flatten, or a reshape to fixed sizes, stops
    the model there). Else `text` unchanged. The model's train/eval modes are restored after the probe."""
    import torch

    from .. import check, compile_module, parse

    lines = _INPUT_LINE.findall(text)
    if len(lines) != 1 or len(lines[0][2].split(", ")) - 1 + 2 not in _SYMBOLIC:
        return text  # several inputs could differ in size: naming them alike would say they do not
    network = text[text.rindex("\nnetwork "):]  # blocks name their own sizes in their own scope
    if set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", network)) & {n for dims in _SYMBOLIC.values() for n in dims}:
        return text  # a name of the spec already: keep the sizes rather than shadow it

    def named(match):
        rank = len(match.group(3).split(", ")) - 1 + 2
        return f"  input {match.group(1)}: [B, {match.group(2)}, {', '.join(_SYMBOLIC[rank])}]"

    candidate = _INPUT_LINE.sub(named, text)
    try:
        spec = parse(candidate)
        check(spec)
        compiled = compile_module(spec, dtype=example.dtype).to(example.device).eval()
    except NetevoError:
        return text
    larger = torch.randn(*example.shape[:2], *[s + 16 for s in example.shape[2:]], dtype=example.dtype,
                         generator=torch.Generator().manual_seed(0)).to(example.device)  # the user's RNG untouched
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            module(larger)
            compiled(larger)
    except Exception:  # the user's model (or its spec) does not run at another size: keep the example's
        return text
    finally:
        for m, training in modes:
            m.training = training
    return candidate


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


def _feeds_only_reshapes(node) -> bool:
    """`x.size(0)`, `x.shape[1]`: values that only size a reshape, which takes its shape from the trace."""
    for user in node.users:
        if user.op == "call_method" and user.target in ("view", "reshape"):
            continue
        if user.op == "call_function" and getattr(user.target, "__name__", "") == "reshape":  # torch.reshape
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


def _match(node, gm, tables, out_shape, batched=frozenset()):
    modules, functions, methods, attributes = tables
    module = gm.get_submodule(node.target) if node.op == "call_module" else None
    if node.op == "call_module":
        candidates = modules.get(type(module), [])
    elif node.op == "get_attr":
        candidates = attributes
    elif node.op == "call_function":
        candidates = next((v for k, v in functions.items() if k is node.target), [])
    else:
        candidates = methods.get(node.target, [])
    what = _describe(node, gm)
    if not candidates:
        raise import_error("E160", f"`{what}` has no netevo op ({_where(node)})", node,
                           "the importer covers the ops listed in docs/import.md; others need an op in ops/")
    import torch.fx as fx

    tensors = [a for a in _flat(node.args) + _flat(list(node.kwargs.values()))
               if isinstance(a, fx.Node) and _tensor_shape(a) is not None]
    call = Call(module=module, args=tuple(_constant(a) for a in node.args),
                kwargs={k: _constant(v) for k, v in node.kwargs.items()},
                in_shapes=tuple(_tensor_shape(a) for a in tensors), out_shape=out_shape,
                same_tensor=len(tensors) > 1 and len(set(tensors)) == 1,
                attribute=_attribute(gm, node.target) if node.op == "get_attr" else None,
                batched=tuple(t in batched for t in tensors))
    reasons = []
    for op_name, rule in candidates:
        if rule.tuple_first != bool(node.meta.get("netevo_tuple_first")):
            reasons.append("it gives a tuple of tensors" if not rule.tuple_first else "forward uses more than "
                           "element 0 of its result")
            continue
        try:
            return op_name, rule.params(call)
        except Unimportable as e:
            reasons.append(str(e))
    raise import_error("E162", f"`{what}` {_where(node)} cannot be imported: {reasons[0]}", node,
                       "docs/import.md lists what each op keeps")


def _attribute(gm, target: str):
    holder = gm
    for part in target.split("."):
        holder = getattr(holder, part)
    return holder


def _is_parameter(t) -> bool:
    import torch.nn as nn

    return isinstance(t, nn.Parameter)


def _batched(gm) -> set:
    """The nodes computed from a network input (their tensors carry the batch axis)."""
    out = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder" or any(a in out for a in _flat(list(node.args) + list(node.kwargs.values()))):
            out.add(node)
    return out


def _check_weights_reached(module, called):
    for key in module.state_dict():
        if key in called:  # a parameter read in forward (`self.layer_scale`)
            continue
        owner = key.rpartition(".")[0]
        parts = owner.split(".")
        if not any(".".join(parts[:i]) in called for i in range(1, len(parts) + 1)):  # a called layer, or inside one
            raise import_error("E164", f"`{key}` belongs to `{owner or 'the top-level module'}`, which forward "
                               "does not call as a layer", hint="only the weights of called layers are imported; "
                               "remove unused layers or tensors read directly in forward")
