"""torch.export where torch.fx cannot trace (transformers' GPT-2): the ATen graph made into calls the fx importer
matches and names (docs/import.md, "transformers' GPT-2: the torch.export path").

The graph is rewritten before matching, using the values of one run on the example inputs:
- the nodes of a layer whose class some op imports whole (`OpDef.torch_import` modules: Linear, Conv1D,
  LayerNorm, Embedding, Dropout, NewGELUActivation) become one `call_module` at the layer's path, from the
  `nn_module_stack` that export records on every node;
- ATen's no-op calls go: an alias, a view or `to` giving the same shape and dtype, a copy, a `cat` with empty
  constant tensors (transformers' empty key/value cache);
- the pieces of a `split` become one `torch.narrow` each;
- `x + embedding(arange(T))` (learned positions) becomes one call of that embedding on x (`pos_embedding`);
- an attention mask computed from constants alone that is the lower triangle becomes `is_causal=True` (any other
  mask is refused);
- heads split and merged around SDPA (`view`, `transpose`, SDPA, `transpose`, `reshape`) become one
  `split_heads_attention` call: the `sdpa` op with `heads`;
- what the output does not need is dropped (the mask and position computations).
Every call left is matched against the ops' `torch_import` (ATen spellings as `torch.ops.aten.*` names).
"""
from __future__ import annotations

import inspect
import types

from ..errors import NetevoError
from ..ir.printer import value_name
from .errors import fresh, identifier, import_error
from .naming import SpecWriter

_ROOT = "model"  # the wrapper's attribute holding the user's module: export's paths start `model.`
_NO_OPS = {"aten.alias.default", "aten.to.dtype_layout", "aten.to.dtype", "aten.to.device", "aten._to_copy.default",
           "aten.view.default", "aten.reshape.default", "aten._unsafe_view.default", "aten.expand.default",
           "aten.clone.default", "aten.contiguous.default", "aten.detach.default", "aten.detach_.default",
           "aten.lift_fresh_copy.default"}
_SPLITS = {"aten.split.Tensor", "aten.split_with_sizes.default", "aten.chunk.default"}


def import_text(module, example_inputs, name: str | None = None, fx_error: NetevoError | None = None) -> str:
    """The `.net` text of `module` exported at `example_inputs` (a tensor, a tuple, or a dict by forward name)."""
    import torch

    from .fx_import import (_check_weights_reached, _flat, _tables, batch_shape_text, count_layer_call, spec_text,
                            top_level_names)

    names, tensors = _inputs(module, example_inputs)
    out_names, ep = _export(module, names, tensors, fx_error)
    values, user_inputs, state = _run(ep, tensors)
    graph = ep.graph_module.graph
    tables = _tables()[:3]  # the fx importer's (ATen overloads resolve too); bare parameters are refused here
    _collapse_layers(graph, module, values, state, set(tables[0]))
    _drop_no_ops(graph, values, user_inputs)
    _dead_code(graph)  # shape assertions and casts no longer read: `x + embedding(arange(T))` has one use
    _split_pieces(graph, values)
    _positions(graph, module, values, user_inputs)
    _causal_masks(graph, values, user_inputs)
    _merge_heads(graph, values)
    _dead_code(graph)
    for node in graph.nodes:
        if isinstance(values.get(node), torch.Tensor):
            node.meta["tensor_meta"] = types.SimpleNamespace(shape=tuple(values[node].shape))
    batch = tensors[0].shape[0] if tensors and tensors[0].dim() else None
    matched, inputs_of, calls = {}, {}, {}
    for node in graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if not isinstance(values.get(node), torch.Tensor):
            raise import_error("E160", f"`{node.target}` gives a value that is not one tensor, {_where(node)}", node,
                               "the importer covers the ops listed in docs/import.md")
        if any(a in state for a in _flat(node.args) + _flat(list(node.kwargs.values()))):
            weight = next(state[a] for a in _flat(node.args) + _flat(list(node.kwargs.values())) if a in state)
            raise import_error("E164", f"forward reads the tensor `{weight}` directly ({node.target}, {_where(node)})",
                               node, "only parameters held by layers that an op imports whole can be imported")
        matched[node] = _match(node, module, tables, values)
        ins = [a for a in _flat(node.args) + _flat(list(node.kwargs.values()))
               if isinstance(a, type(node)) and isinstance(values.get(a), torch.Tensor)]
        inputs_of[node] = ins
        if node.op == "call_module":
            count_layer_call(calls, node, module)

    def shape_of(node):
        return batch_shape_text(tuple(values[node].shape), batch, node)

    writer = SpecWriter(module, matched, inputs_of, shape_of)
    used = top_level_names(module)
    local, lines = {}, []
    for node, input_name in zip(user_inputs, names):
        if not values[node].dim() or values[node].shape[0] != batch:
            raise import_error("E163", f"input `{input_name}` is not a tensor with the batch axis first",
                               hint="every input is a tensor [batch, ...] of the same batch size")
        local[node] = fresh(input_name, used)
        lines.append(f"  input {local[node]}: {shape_of(node)}")
    lines = writer.finish(lines + writer.body("", writer.units("", list(matched)), local, used))
    outs = _flat([n for n in graph.nodes if n.op == "output"][0].args)
    if not outs or any(n not in local for n in outs):
        raise import_error("E163", "forward must give tensors computed by the network")
    for node, out_name in zip(outs, out_names):
        lines.append(f"  output {fresh(out_name if identifier(out_name) else 'out', used)} = {value_name(local[node])}")
    _check_weights_reached(module, set(calls))
    return _symbolic_length(spec_text(module, name, writer, lines), module, names, tensors)


def _symbolic_length(text: str, module, names, tensors) -> str:
    """`text` with its one input of token ids `[B, N]` written `[B, T]` when the model takes any length there: the
    named spec checks and compiles, and the model and the compiled spec both run on ids one longer (a spec whose
    reshapes carry N stops there). Else `text` unchanged. The model's modes are restored after the probe."""
    import re

    import torch

    from .. import check, compile_module, parse

    (ids,) = tensors if len(tensors) == 1 else (None,)
    line = re.compile(rf"^  input {re.escape(names[0])}: \[B, \d+\]$", re.M)
    network = text[text.rindex("\nnetwork "):]
    if ids is None or ids.dim() != 2 or ids.is_floating_point() or len(line.findall(text)) != 1 \
            or "T" in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", network):
        return text
    candidate = line.sub(f"  input {names[0]}: [B, T]", text)
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    try:
        spec = parse(candidate)
        check(spec)
        compiled = compile_module(spec, dtype=dtype).to(ids.device).eval()
    except NetevoError:
        return text
    longer = torch.randint(0, int(ids.max()) + 1, (ids.shape[0], ids.shape[1] + 1), dtype=ids.dtype,
                           generator=torch.Generator().manual_seed(0)).to(ids.device)  # the user's RNG untouched
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            module(**{names[0]: longer})
            compiled(longer)
    except Exception:  # the model (or its spec) does not run at another length: keep the example's
        return text
    finally:
        for m, training in modes:
            m.training = training
    return candidate


# --- export and one run -------------------------------------------------------------------------------


def _inputs(module, example_inputs):
    """Forward's argument names and the example tensors, in forward's order."""
    import torch

    params = [p.name for p in inspect.signature(module.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if isinstance(example_inputs, dict):
        unknown = [k for k in example_inputs if k not in params]
        if unknown:
            raise import_error("E166", f"forward takes no argument {', '.join(unknown)}",
                               hint=f"forward takes {', '.join(params)}")
        names = [p for p in params if p in example_inputs]
        tensors = tuple(example_inputs[p] for p in names)
    else:
        tensors = tuple(example_inputs)
        names = (params + [f"x{i}" for i in range(len(params), len(tensors))])[:len(tensors)]
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise import_error("E166", "the example inputs must be tensors")
    return names, tensors


def _tensor_leaves(out, name="out"):
    """(name, tensor) for each tensor a forward gives: a tensor, a tuple/list, or a dict-like output (transformers'
    ModelOutput: `logits`); other values (a key/value cache) are left out."""
    import torch

    if isinstance(out, torch.Tensor):
        return [(name, out)]
    if hasattr(out, "items"):
        return [(str(k), v) for k, v in out.items() if isinstance(v, torch.Tensor)]
    if isinstance(out, (tuple, list)):
        return [(f"{name}{i}", v) for i, v in enumerate(out) if isinstance(v, torch.Tensor)]
    return []


def _export(module, names, tensors, fx_error):
    import torch

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            setattr(self, _ROOT, module)

        def forward(self, *xs):
            return tuple(t for _, t in _tensor_leaves(getattr(self, _ROOT)(**dict(zip(names, xs)))))

    cls = type(module).__name__
    before = fx_error.message if fx_error else f"{cls}"
    modes = [(m, m.training) for m in module.modules()]
    module.eval()  # dropout as the identity, no attention dropout, as the spec is compared in eval mode
    try:
        with torch.no_grad():
            out_names = [n for n, _ in _tensor_leaves(module(**dict(zip(names, tensors))))]
        ep = torch.export.export(Exported(), tensors, strict=False)
    except Exception as e:  # export raises anything from the user's forward
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise import_error("E163", f"{before}; torch.export cannot either: {type(e).__name__}: {message}",
                           hint="the importer needs a forward that torch.fx or torch.export can trace") from None
    finally:
        for m, training in modes:
            m.training = training
    if not out_names:
        raise import_error("E163", f"{cls}'s forward gives no tensor")
    return out_names, ep


def _run(ep, tensors):
    """Every node's value on the example inputs; the user-input placeholders; weight placeholder -> its key."""
    import torch
    import torch.fx as fx

    flat, user_inputs, state = [], [], {}
    placeholders = [n for n in ep.graph.nodes if n.op == "placeholder"]
    users = iter(tensors)
    for node, spec in zip(placeholders, ep.graph_signature.input_specs):
        kind = spec.kind.name
        if kind == "USER_INPUT":
            flat.append(next(users))
            user_inputs.append(node)
        elif kind in ("PARAMETER", "BUFFER", "CONSTANT_TENSOR"):
            flat.append(ep.state_dict[spec.target] if spec.target in ep.state_dict else ep.constants[spec.target])
            state[node] = spec.target.removeprefix(_ROOT + ".")
        else:
            raise import_error("E163", f"torch.export gives an input of kind {kind}, which the importer cannot take")
    values = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            values[n] = super().run_node(n)
            return values[n]

    with torch.no_grad():
        Recorder(ep.graph_module).run(*flat)
    return values, user_inputs, state


# --- rewrites -----------------------------------------------------------------------------------------


def _paths(node) -> list[str]:
    """The module paths around an exported call, outermost first, without the wrapper's `model.`."""
    stack = node.meta.get("nn_module_stack") or {}
    out = []
    for path, _ in stack.values():
        if path.startswith(_ROOT + "."):
            out.append(path[len(_ROOT) + 1:])
    return out


def _chain(path: str) -> dict:
    """Every enclosing path of `path` (`transformer`, `transformer.h`, `transformer.h.0`), as naming.py reads them."""
    parts = path.split(".") if path else []
    return {".".join(parts[:i]): None for i in range(1, len(parts) + 1)}


def _collapse_layers(graph, module, values, state, leaves):
    """The calls inside one layer of a class an op imports whole become one `call_module` at its path."""
    runs, current = [], None
    for node in list(graph.nodes):
        if node.op != "call_function":
            current = None
            continue
        paths = _paths(node)
        leaf = next((p for p in paths if type(module.get_submodule(p)) in leaves), None)
        if leaf is None:
            node.meta["nn_module_stack"] = _chain(paths[-1] if paths else "")
            current = None
            continue
        if current is not None and current[0] == leaf:
            current[1].append(node)
        else:
            current = (leaf, [node])
            runs.append(current)
    for path, nodes in runs:
        inside = set(nodes)
        ins = []
        for n in nodes:
            for a in list(n.args) + list(n.kwargs.values()):
                for x in (a if isinstance(a, (list, tuple)) else [a]):
                    if isinstance(x, type(n)) and x not in inside and x not in state and x not in ins:
                        ins.append(x)
        outs = [n for n in nodes if any(u not in inside for u in n.users)]
        if len(outs) != 1:
            raise import_error("E161", f"layer `{path}` gives {len(outs)} tensors to the rest of the model", nodes[0])
        with graph.inserting_after(nodes[-1]):
            layer = graph.create_node("call_module", path, tuple(ins), {})
        layer.meta["stack_trace"] = nodes[0].meta.get("stack_trace")
        values[layer] = values[outs[0]]
        outs[0].replace_all_uses_with(layer)
        for n in reversed(nodes):
            graph.erase_node(n)


def _constant(node, user_inputs) -> bool:
    """Computed from no input of the model (only sizes, constants and weights)."""
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n in user_inputs:
            return False
        if n in seen:
            continue
        seen.add(n)
        todo.extend(n.all_input_nodes)
    return True


def _drop_no_ops(graph, values, user_inputs):
    import torch

    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        target = str(node.target)
        if target == "aten.cat.default":
            kept = [t for t in node.args[0] if not (values[t].numel() == 0 and _constant(t, user_inputs))]
            if len(kept) == 1 and values[kept[0]].shape == values[node].shape:
                node.replace_all_uses_with(kept[0])
                graph.erase_node(node)
            continue
        if target not in _NO_OPS or not node.args:
            continue
        source, out = node.args[0], values.get(node)
        if isinstance(out, torch.Tensor) and isinstance(values.get(source), torch.Tensor) \
                and values[source].shape == out.shape and values[source].dtype == out.dtype:
            node.replace_all_uses_with(source)
            graph.erase_node(node)


def _split_pieces(graph, values):
    """`q, k, v = x.split(n, dim)`: each piece used becomes `torch.narrow(x, dim, start, length)`."""
    import operator

    import torch

    for node in list(graph.nodes):
        if node.op != "call_function" or str(node.target) not in _SPLITS:
            continue
        x = node.args[0]
        dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
        dim = dim % values[x].dim()
        lengths = [piece.shape[dim] for piece in values[node]]
        for user in list(node.users):
            if user.op != "call_function" or user.target is not operator.getitem:
                continue
            i = user.args[1]
            with graph.inserting_after(user):
                piece = graph.create_node("call_function", torch.narrow, (x, dim, sum(lengths[:i]), lengths[i]), {})
            piece.meta = dict(user.meta)
            values[piece] = values[user]
            user.replace_all_uses_with(piece)


def _positions(graph, module, values, user_inputs):
    """`x + embedding(arange(T))`: the embedding called on x (imported as `pos_embedding`, keys kept)."""
    import torch

    for node in list(graph.nodes):
        if node.op != "call_module" or not isinstance(module.get_submodule(node.target), torch.nn.Embedding):
            continue
        if len(node.args) != 1 or not _constant(node.args[0], user_inputs) or len(node.users) != 1:
            continue
        ids, add = values[node.args[0]], next(iter(node.users))
        if ids.dim() != 2 or ids.shape[0] != 1 or not torch.equal(ids[0].cpu(), torch.arange(ids.shape[1])):
            continue
        if str(add.target) != "aten.add.Tensor" or len(add.args) != 2 or add.kwargs:
            continue
        x = add.args[1] if add.args[0] is node else add.args[0]
        if not isinstance(x, type(node)) or values[x].dim() != 3 or values[x].shape[1:] != values[node].shape[1:]:
            continue
        with graph.inserting_after(add):
            layer = graph.create_node("call_module", node.target, (x,), {})
        layer.meta["stack_trace"] = node.meta.get("stack_trace")
        values[layer] = values[add]
        add.replace_all_uses_with(layer)
        graph.erase_node(add)
        graph.erase_node(node)


def _causal_masks(graph, values, user_inputs):
    """An attention mask made from constants alone that is the lower triangle (True, or 0 where allowed and -inf
    elsewhere) becomes `is_causal=True`."""
    import torch

    for node in list(graph.nodes):
        if str(node.target) != "aten.scaled_dot_product_attention.default" or len(node.args) < 4:
            continue
        mask = node.args[3]
        if not isinstance(mask, type(node)):
            continue
        if not _constant(mask, user_inputs):
            raise import_error("E162", f"`{node.target}` {_where(node)} cannot be imported: an attention mask "
                               "computed from an input of the model (a padding mask)", node,
                               "the `sdpa` op keeps the causal mask only; import without the mask input")
        q, k, m = values[node.args[0]], values[node.args[1]], values[mask]
        allowed = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        try:
            m = m.cpu().expand(*q.shape[:-2], q.shape[-2], k.shape[-2])
        except RuntimeError:
            m = None
        if m is None:
            causal = False
        elif m.dtype == torch.bool:
            causal = bool((m == allowed).all())
        else:
            causal = bool((m[..., allowed] == 0).all()) and bool(torch.isneginf(m[..., ~allowed]).all())
        if not causal:
            raise import_error("E162", f"`{node.target}` {_where(node)} cannot be imported: an attention mask that is "
                               "not the causal one", node, "the `sdpa` op keeps the causal mask only")
        if causal:
            node.args = (*node.args[:3], None, *node.args[4:])
            if len(node.args) > 5:
                node.args = (*node.args[:5], True, *node.args[6:])
            else:
                node.kwargs = {**node.kwargs, "is_causal": True}


_SDPA = "aten.scaled_dot_product_attention.default"
_VIEWS = {"aten.view.default", "aten.reshape.default", "aten._unsafe_view.default"}


def _merge_heads(graph, values):
    """transformers' heads: q, k and v each `x.view(B, T, H, D).transpose(1, 2)`, SDPA, then `.transpose(1, 2)` and
    a reshape to [B, T, H * D]: one `split_heads_attention(xq, xk, xv, H)` call, the `sdpa` op with `heads`."""
    from ..ops.attention import split_heads_attention

    for node in list(graph.nodes):
        if str(node.target) != _SDPA or any(a is not None for a in node.args[3:4]) \
                or (node.args[4] if len(node.args) > 4 else node.kwargs.get("dropout_p", 0.0)) \
                or node.kwargs.get("enable_gqa"):
            continue
        split = [_split_heads(a, values) for a in node.args[:3]]
        if None in split or len({h for _, h in split}) != 1 or len(node.users) != 1:
            continue
        back = next(iter(node.users))
        if not _swaps_1_2(back, values) or len(back.users) != 1:
            continue
        merged = next(iter(back.users))
        b, t = values[back].shape[:2]
        if str(merged.target) not in _VIEWS or tuple(values[merged].shape) != (b, t, values[back].shape[2:].numel()):
            continue
        causal = node.args[5] if len(node.args) > 5 else node.kwargs.get("is_causal", False)
        with graph.inserting_after(merged):
            call = graph.create_node("call_function", split_heads_attention, tuple(x for x, _ in split),
                                     {"heads": split[0][1], "is_causal": bool(causal),
                                      "scale": node.kwargs.get("scale")})
        call.meta = dict(node.meta)
        values[call] = values[merged]
        merged.replace_all_uses_with(call)


def _swaps_1_2(node, values) -> bool:
    if str(node.target) != "aten.transpose.int":
        return False
    n = values[node].dim()
    return n == 4 and {node.args[1] % n, node.args[2] % n} == {1, 2}


def _split_heads(node, values):
    """(x, H) when `node` is `x.view(B, T, H, D).transpose(1, 2)` of x [B, T, H * D], used once; else None."""
    if not _swaps_1_2(node, values) or len(node.users) != 1:
        return None
    view = node.args[0]
    if str(view.target) not in _VIEWS or len(view.users) != 1:
        return None
    x = view.args[0]
    b, t, h, d = values[view].shape
    if values[x].dim() != 3 or tuple(values[x].shape) != (b, t, h * d):
        return None
    return x, h


def _dead_code(graph):
    """Only what the output needs (the mask and position computations have gone into the calls)."""
    output = next(n for n in graph.nodes if n.op == "output")
    live, todo = set(), [output]
    while todo:
        n = todo.pop()
        if n not in live:
            live.add(n)
            todo.extend(n.all_input_nodes)
    for node in reversed(list(graph.nodes)):
        if node not in live and node.op != "placeholder":
            graph.erase_node(node)


def _match(node, module, tables, values):
    """(op name, params) for one call, from the first op whose `torch_import` rule takes it."""
    import torch

    from ..ops.registry import Unimportable
    from .fx_import import RUNTIME, Call

    modules, functions, _ = tables
    layer = module.get_submodule(node.target) if node.op == "call_module" else None
    candidates = modules.get(type(layer), []) if layer is not None else functions.get(node.target, [])
    what = f"{type(layer).__module__}.{type(layer).__qualname__}" if layer is not None else str(node.target)
    if not candidates:
        raise import_error("E160", f"`{what}` has no netevo op ({_where(node)})", node,
                           "the importer covers the ops listed in docs/import.md; others need an op in ops/")

    def constant(a):
        if isinstance(a, type(node)):
            return None if isinstance(values.get(a), torch.Tensor) else RUNTIME
        if isinstance(a, (list, tuple)):
            return type(a)(constant(x) for x in a)
        return a

    tensors = [a for a in list(node.args) + list(node.kwargs.values())
               if isinstance(a, type(node)) and isinstance(values.get(a), torch.Tensor)]
    call = Call(module=layer, args=tuple(constant(a) for a in node.args),
                kwargs={k: constant(v) for k, v in node.kwargs.items()},
                in_shapes=tuple(tuple(values[a].shape) for a in tensors), out_shape=tuple(values[node].shape),
                same_tensor=len(tensors) > 1 and len(set(tensors)) == 1)
    reasons = []
    for op_name, rule in candidates:
        if rule.tuple_first:
            reasons.append("it gives a tuple of tensors")
            continue
        try:
            return op_name, rule.params(call)
        except Unimportable as e:
            reasons.append(str(e))
    raise import_error("E162", f"`{what}` {_where(node)} cannot be imported: {reasons[0]}", node,
                       "docs/import.md lists what each op keeps")


def _where(node) -> str:
    path = str(node.target) if node.op == "call_module" else next(reversed(node.meta.get("nn_module_stack") or {}), "")
    return f"in module `{path}`" if path else "in the top-level module"
