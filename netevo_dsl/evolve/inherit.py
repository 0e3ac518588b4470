"""Weight inheritance: a child network starts from its parent's trained weights and optimizer state.

`inherit(parent, parent_state, parent_opt_state, child, network, seed=...)` finds how the child differs
from the parent and maps the weights across:

* **the same network** (the same elaborated graph): everything is kept.
* **widths** (the two graphs differ only in the widths of dependency groups, and in masks): each group
  that grew is widened by Net2Wider (`transforms.widen`, replicated units chosen from `seed`), each group
  that shrank loses its units of smallest weight norm (`transforms.prune_units`). The transforms' unit maps
  move the optimizer state (momentum, Adam moments) with the units. Masks are the child's (its spec says
  them); a connection a grown mask enables starts at weight 0.
* **inserted layers** (the child's nodes are the parent's with some nodes added, found by aligning the two
  node sequences): an inserted linear or convolution that keeps its channel count starts as the identity
  (Net2Deeper: weight I, a centred unit kernel, bias 0), an inserted activation or dropout needs no weights.
* **anything else** (kernel sizes, activations, removed layers): every tensor whose node survives (aligned
  by position and op, so renamed nodes count) with the same shape is kept, with its optimizer state; the
  rest is initialised as the compiler does (`torch.manual_seed(seed)` then compile).

`exact` says the child computes the parent's function before training. It is claimed only for the
function-preserving cases above (widening, mask growth, identity insertions; never for shrinking, removed
layers or changed ops) and then confirmed on a probe batch in float64 (atol 1e-9): an inserted `tanh`,
say, is an identity insertion that does not preserve the function, and the probe says so.
"""
from __future__ import annotations

import difflib

import attrs
import numpy as np
import torch

from ..errors import NetevoError, TransformError
from ..ir import nodes as ir
from ..ops.registry import get_op

PROBE_SAMPLES = 32
PROBE_ATOL = 1e-9


class InheritError(NetevoError):
    code = "E134"


@attrs.frozen
class Inherited:
    state: dict
    opt_state: dict | None
    exact: bool  # function-preserving
    how: str


def inherit(parent: ir.Spec, parent_state: dict, parent_opt_state: dict | None, child: ir.Spec,
            network: str, *, seed: int = 0) -> Inherited:
    from ..passes.elaborate import elaborate
    from ..runtime.network_groups import skeleton_key

    try:
        pg, cg = elaborate(parent, network), elaborate(child, network)
    except NetevoError as e:
        raise InheritError(f"cannot inherit weights for `{network}`: {e.message}", None, e.hint) from None
    if pg == cg:
        return Inherited(dict(parent_state), _copy_opt(parent_opt_state), True, "same network")
    result = None
    if skeleton_key(pg) == skeleton_key(cg):
        result = _by_widths(parent, parent_state, parent_opt_state, child, network, pg, cg, seed)
    if result is None:
        result = _widths_then_alignment(parent, parent_state, parent_opt_state, child, network, cg, seed)
    if result is None:
        result = _by_alignment(parent, parent_state, parent_opt_state, child, network, pg, cg, seed)
    if result.exact:
        result = attrs.evolve(result, exact=same_function(parent, parent_state, child, result.state, network,
                                                           seed=seed))
    return result


# --- widths and masks ------------------------------------------------------------------------------------


def _resize_groups(parent, state, network, target: dict, seed):
    """Widen (Net2Wider) or prune the parent's groups to the sizes in `target` ({group name: size}).
    Returns (spec, weights, results, actions, exact) or None when a transform refuses."""
    from ..passes.elaborate import elaborate
    from .groups import dependency_groups
    from .transforms import prune_units, widen

    rng = np.random.default_rng(seed)
    spec, weights, results, actions, exact = parent, dict(state), [], [], True
    for _ in range(64):  # each transform settles at least one group
        groups = dependency_groups(elaborate(spec, network))
        todo = [g for g in groups if g.name in target and target[g.name] != g.size]
        if not todo:
            return spec, weights, results, actions, exact
        g = todo[0]
        try:
            if target[g.name] > g.size:
                r = widen(spec, weights, g.name, target[g.name], rng=rng, network=network)
                actions.append(f"Net2Wider `{g.name}` {g.size} -> {target[g.name]}")
            else:
                drop = _weakest_units(g, weights, g.size - target[g.name])
                r = prune_units(spec, weights, g.name, drop, network=network)
                actions.append(f"pruned {len(drop)} unit(s) of `{g.name}` (smallest weight norm)")
                exact = False
        except TransformError:
            return None
        spec, weights = r.spec, r.weights
        results.append(r)
    return None


def _widths_then_alignment(parent, state, opt_state, child, network, cg, seed):
    """Several kinds of change at once (a width and an inserted layer): resize the groups the two share by
    name first, then align the resized parent with the child."""
    from ..passes.elaborate import elaborate
    from .apply import Applied
    from .groups import dependency_groups

    staged = _resize_groups(parent, state, network, {g.name: g.size for g in dependency_groups(cg)}, seed)
    if staged is None or not staged[2]:
        return None
    spec, weights, results, actions, exact = staged
    applied = Applied(spec, weights, tuple(actions), (), tuple(results), parent, network)
    opt = _move_opt_state(opt_state, parent, spec, network, applied.old_key, applied.move_state)
    rest = _by_alignment(spec, weights, opt, child, network, elaborate(spec, network), cg, seed)
    return Inherited(rest.state, rest.opt_state, exact and rest.exact, "; ".join(actions) + "; " + rest.how)


def _by_widths(parent, state, opt_state, child, network, pg, cg, seed):
    from .apply import Applied
    from .groups import dependency_groups

    staged = _resize_groups(parent, state, network, {g.name: g.size for g in dependency_groups(cg)}, seed)
    if staged is None:
        return None
    spec, weights, results, actions, exact = staged
    reference = _meta_state(child, network)
    if set(reference) != set(weights) or any(tuple(reference[k].shape) != tuple(weights[k].shape) for k in weights):
        return None
    applied = Applied(spec, weights, tuple(actions), (), tuple(results), parent, network)
    grown = _take_child_masks(child, network, weights)
    if grown:
        actions.append(f"masks of the child ({grown} connection(s) enabled at weight 0)")
    if _mask_pruned_live(state, weights, applied):
        exact = False
    opt = _move_opt_state(opt_state, parent, child, network, applied.old_key,
                          lambda new_key, old: applied.move_state(new_key, old))
    return Inherited(weights, opt, exact, "; ".join(actions) or "masks only")


def _weakest_units(group, weights, n: int) -> list[int]:
    """The group's n units whose produced rows have the smallest L2 norm (ties: lowest index)."""
    norms = torch.zeros(group.size, dtype=torch.float64)
    for s in group.sites:
        if s.role == "produce" and s.tensor is not None and s.key in weights:
            t = weights[s.key].detach().double()
            t = t.movedim(s.axis, 0).reshape(t.shape[s.axis], -1)
            if t.shape[0] == group.size:
                norms += (t ** 2).sum(1)
    return sorted(np.argsort(norms.numpy(), kind="stable")[:n].tolist())


def _take_child_masks(child, network, weights) -> int:
    """Replace mask buffers by the child's; zero the weights of newly enabled connections. Returns how many."""
    from ..compiler.build import mask_tensor
    from ..passes.elaborate import elaborate

    cg = elaborate(child, network)
    grown = 0
    for node in cg.nodes:
        key = f"{node.name}.mask"
        if key not in weights:
            continue
        new = mask_tensor(node, cg.shape_of(node.inputs[0]))
        if new is None:
            continue
        old = weights[key].to(torch.bool)
        enabled = new & ~old
        w = weights[f"{node.name}.weight"].clone()
        view = enabled.view(*enabled.shape, *([1] * (w.dim() - 2)))
        weights[f"{node.name}.weight"] = torch.where(view.expand_as(w), torch.zeros((), dtype=w.dtype), w)
        weights[key] = new.to(weights[key].dtype)
        grown += int(enabled.sum())
    return grown


def _mask_pruned_live(parent_state, weights, applied) -> bool:
    """Whether a connection live in the parent is masked out in the child while its weight is not 0."""
    for key, mask in weights.items():
        if not key.endswith(".mask"):
            continue
        old_key = applied.old_key(key)
        if old_key not in parent_state or parent_state[old_key].shape != mask.shape:
            return True  # resized masks: the probe decides nothing here, be conservative
        w = weights[key[:-len("mask")] + "weight"]
        disabled = parent_state[old_key].to(torch.bool) & ~mask.to(torch.bool)
        view = disabled.view(*disabled.shape, *([1] * (w.dim() - 2))).expand_as(w)
        if bool((w[view] != 0).any()):
            return True
    return False


# --- aligned nodes: inserted, removed or changed layers ----------------------------------------------


def _signature(graph, node) -> tuple:
    from ..runtime.network_groups import _hashable

    return node.op, tuple((k, _hashable(v)) for k, v in node.params), _hashable(node.shape)


def _by_alignment(parent, state, opt_state, child, network, pg, cg, seed):
    from ..compiler.build import CompiledNetwork

    a = [_signature(pg, n) for n in pg.nodes]
    b = [_signature(cg, n) for n in cg.nodes]
    pairs = {cg.nodes[j].name: pg.nodes[i].name for i, j in _align(a, b)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = CompiledNetwork(cg)
    dtype = next((t.dtype for t in state.values() if t.is_floating_point()), torch.float32)
    weights = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in fresh.state_dict().items()}
    renames, kept, changed = {}, 0, []
    for key in list(weights):
        owner = _owner(cg, key)
        old_node = pairs.get(owner)
        old_key = None if old_node is None else old_node + key[len(owner):]
        if key.endswith(".mask") and old_node is not None and \
                _signature(cg, cg.node(owner)) != _signature(pg, pg.node(old_node)):
            changed.append(key)  # the child's spec says its mask
            continue
        if old_key in state and tuple(state[old_key].shape) == tuple(weights[key].shape):
            weights[key] = state[old_key].clone()
            renames[key] = old_key
            kept += 1
        else:
            changed.append(key)
    removed = [n.name for n in pg.nodes if n.name not in set(pairs.values())]
    inserted = [n for n in cg.nodes if n.name not in pairs]
    differing = [c for c, p in pairs.items() if _signature(cg, cg.node(c)) != _signature(pg, pg.node(p))]
    exact = not removed and not differing
    notes = []
    for node in inserted:
        op = get_op(node.op)
        if op.weight_bearing and _identity_init(cg, node, weights):
            notes.append(f"identity {node.op} `{node.name}` (Net2Deeper)")
        elif node.op == "dropout" or (op.activation and not op.channels.mixes_channels):
            notes.append(f"{'inserted' if exact else 'new'} {node.op} `{node.name}`")
        else:
            exact = False
            notes.append(f"new {node.op} `{node.name}`")
    if exact and any(k not in renames and not _identity_key(k, inserted) for k in weights):
        exact = False
    how = ", ".join(notes) if exact and notes else \
        f"kept {kept} of {len(weights)} tensors by node and shape" + (f" ({', '.join(notes)})" if notes else "")
    opt = _move_opt_state(opt_state, parent, child, network, lambda k: renames.get(k),
                          lambda new_key, old: old.clone())
    return Inherited(weights, opt, exact, how)


def _align(a: list, b: list) -> list[tuple[int, int]]:
    """Index pairs (i, j), in order: equal signatures first, then, in the gaps between them, equal ops
    (so a convolution whose kernel changed still pairs with its old self)."""
    def blocks(x, y):
        m = difflib.SequenceMatcher(a=x, b=y, autojunk=False)
        return [(blk.a + k, blk.b + k) for blk in m.get_matching_blocks() for k in range(blk.size)]

    exact = blocks(a, b)
    out, last = [], (-1, -1)
    for i, j in exact + [(len(a), len(b))]:
        gap_a, gap_b = range(last[0] + 1, i), range(last[1] + 1, j)
        out += [(gap_a[p], gap_b[q]) for p, q in blocks([a[k][0] for k in gap_a], [b[k][0] for k in gap_b])]
        if i < len(a):
            out.append((i, j))
        last = (i, j)
    return out


def _owner(graph, key: str) -> str:
    """The node a state-dict key belongs to (the longest node name that prefixes it)."""
    best = ""
    for n in graph.nodes:
        if key.startswith(n.name + ".") and len(n.name) > len(best):
            best = n.name
    return best


def _identity_key(key: str, inserted) -> bool:
    return any(key.startswith(n.name + ".") for n in inserted)


def _identity_init(graph, node, weights) -> bool:
    """Set an inserted linear / conv to the identity when it keeps channels and shape; False if it cannot."""
    p = node.param_dict
    x = graph.shape_of(node.inputs[0])
    if p.get("mask") is not None or int(p.get("groups", 1) or 1) != 1 or tuple(x) != tuple(node.shape):
        return False
    w = weights.get(f"{node.name}.weight")
    if w is None or w.dim() < 2 or w.shape[0] != w.shape[1]:
        return False
    k, dilation = ((v if isinstance(v, tuple) else (v,)) for v in (p.get("k"), p.get("dilation", 1)))  # `k=[1, 7]`
    if node.op.startswith("conv") and (any(int(v) % 2 == 0 for v in k) or any(int(v) != 1 for v in dilation)):
        return False
    new = torch.zeros_like(w)
    idx = torch.arange(w.shape[0])
    centre = tuple(torch.full_like(idx, s // 2) for s in w.shape[2:])
    new[(idx, idx) + centre] = 1
    weights[f"{node.name}.weight"] = new
    if f"{node.name}.bias" in weights:
        weights[f"{node.name}.bias"] = torch.zeros_like(weights[f"{node.name}.bias"])
    return True


# --- optimizer state and checks ------------------------------------------------------------------------


def _param_names(spec, network) -> list[str]:
    from ..compiler.build import CompiledNetwork
    from ..passes.elaborate import elaborate

    with torch.device("meta"):
        module = CompiledNetwork(elaborate(spec, network))
    return [n for n, _ in module.named_parameters()]


def _meta_state(spec, network) -> dict:
    from ..compiler.build import CompiledNetwork
    from ..passes.elaborate import elaborate

    with torch.device("meta"):
        return CompiledNetwork(elaborate(spec, network)).state_dict()


def _move_opt_state(opt_state, parent, child, network, old_key, move):
    """The child's optimizer state_dict: each parameter's entries moved from its parent parameter."""
    if not opt_state:
        return None
    old_names = _param_names(parent, network)
    old_index = {n: i for i, n in enumerate(old_names)}
    new_names = _param_names(child, network)
    old_state = opt_state.get("state", {})
    state = {}
    for j, name in enumerate(new_names):
        source = old_key(name)
        i = old_index.get(source)
        entry = old_state.get(i) if i is not None else None
        if not entry:
            continue
        shape = _param_shape(old_state, entry)
        state[j] = {k: (move(name, v) if torch.is_tensor(v) and v.dim() > 0 and tuple(v.shape) == shape
                        else (v.clone() if torch.is_tensor(v) else v)) for k, v in entry.items()}
    groups = [dict(g) for g in opt_state.get("param_groups", [{}])]
    if groups:
        groups = [{**groups[0], "params": list(range(len(new_names)))}]
    return {"state": state, "param_groups": groups}


def _param_shape(old_state, entry) -> tuple:
    """A parameter's shape, read from its largest state tensor (moments have the parameter's shape)."""
    tensors = [v for v in entry.values() if torch.is_tensor(v) and v.dim() > 0]
    return tuple(max(tensors, key=lambda t: t.numel()).shape) if tensors else ()


def _copy_opt(opt_state):
    from ..runtime.train_networks import clone_tree

    return clone_tree(opt_state) if opt_state else None


def probe_inputs(graph, n: int = PROBE_SAMPLES, seed: int = 0) -> list[torch.Tensor]:
    """Random float64 inputs at the graph's declared shapes (symbolic sizes 8), integer ids for embeddings."""
    from ..ir.dims import Dim

    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in graph.inputs:
        shape = [n] + [int(Dim.of(d)) if Dim.of(d).is_int() else 8 for d in i.shape[1:]]
        readers = [node for node in graph.nodes if i.name in node.inputs]
        if any(r.op == "embedding" for r in readers):
            vocab = min(int(r.param_dict["vocab"]) for r in readers if r.op == "embedding")
            out.append(torch.randint(0, vocab, shape, generator=gen))
        else:
            out.append(torch.randn(shape, generator=gen, dtype=torch.float64) * 2)
    return out


@torch.no_grad()
def same_function(parent, parent_state, child, child_state, network, *, seed: int = 0,
                  atol: float = PROBE_ATOL, inputs=None) -> bool:
    """Whether the two networks give the same outputs (eval mode, float64) on `inputs` (default: a random
    probe batch at the declared shapes)."""
    from ..compiler.build import CompiledNetwork
    from ..passes.elaborate import elaborate

    outs = []
    graphs = []
    for spec, state in ((parent, parent_state), (child, child_state)):
        graph = elaborate(spec, network)
        graphs.append(graph)
        with torch.device("meta"):
            module = CompiledNetwork(graph)
        module = module.to_empty(device="cpu").to(torch.float64)
        module.load_state_dict({k: (v.double() if v.is_floating_point() else v) for k, v in state.items()})
        xs = probe_inputs(graphs[0], seed=seed) if inputs is None else \
            [t.double() if t.is_floating_point() else t for t in inputs]
        outs.append(module.eval()(*xs))
    a, b = outs
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    return len(a) == len(b) and all(x.shape == y.shape and bool(torch.allclose(x, y, rtol=0, atol=atol))
                                    for x, y in zip(a, b))


__all__ = ["Inherited", "inherit", "same_function", "probe_inputs", "InheritError"]
