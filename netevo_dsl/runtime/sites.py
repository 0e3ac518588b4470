"""Which values of a model are neurons: sites, call sites, and the fx graph that finds them.

A *site* is one value in a forward pass whose entries along one axis are
neurons: the output of one call of an activation (a module such as
`nn.ReLU`, or a function such as `F.relu(x)`, `torch.tanh(x)`, `x.relu()`),
or of a Linear / Conv / attention call whose output reaches no activation.
A module called k times in one forward pass gives k sites, `name#0` ..
`name#{k-1}`: each call sees different values.

Two ways to find sites:
* `trace_sites` traces the model once with torch.fx and walks the graph in
  execution order, so functional activations are found and each call is a
  node of its own. `instrument` adds an observer call after each site node.
* `infer_layers` (the fallback for models fx cannot trace) picks activation
  modules and unfollowed producers from `named_modules()` order; the tracker
  hooks them and splits reused modules into call sites at the first pass.
  Functional activations are invisible there; `functional_activation_owners`
  names the modules whose forward source calls one, for the report.
"""
from __future__ import annotations

import inspect
import re
from collections import Counter
from typing import Callable, Mapping

import attrs
import torch
import torch.nn.functional as F
from torch import fx, nn

from netevo_dsl.errors import UsageError, did_you_mean
from netevo_dsl.ops.activations import NETWORK_BY_NAME, WANN_BY_NAME
from netevo_dsl.ops.registry import get_op
from netevo_dsl.runtime.stats import StreamingStats

# torch activation modules that have a netevo activation of the same meaning
# (so the op registry's `bounded` range applies).
_NAMED_ACTIVATIONS: dict[type, str] = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.SiLU: "silu",
}
# Bounded torch activations netevo has no name for, with their range.
_BOUNDED_ACTIVATIONS: dict[type, tuple[float, float]] = {nn.Hardsigmoid: (0.0, 1.0), nn.Softsign: (-1.0, 1.0)}
_OTHER_ACTIVATIONS: tuple[type, ...] = (
    nn.GELU, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Softplus, nn.Mish, nn.Hardswish, nn.Hardtanh,
    nn.PReLU, nn.RReLU, nn.LogSigmoid, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Threshold, nn.GLU,
)  # fmt: skip
# Activation functions as fx records them (F.tanh and F.sigmoid call the tensor methods).
_FUNCTIONS: dict[Callable, str] = {
    F.relu: "relu", F.relu_: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu6: "relu6",
    F.hardtanh: "hardtanh", F.hardtanh_: "hardtanh", F.gelu: "gelu", F.silu: "silu", F.mish: "mish",
    F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid", torch.sigmoid: "sigmoid", torch.tanh: "tanh",
    F.elu: "elu", F.selu: "selu", F.celu: "celu", F.leaky_relu: "leakyrelu", F.softplus: "softplus",
    F.softsign: "softsign", F.logsigmoid: "logsigmoid", F.glu: "glu", F.prelu: "prelu", F.rrelu: "rrelu",
    F.tanhshrink: "tanhshrink", F.softshrink: "softshrink", F.hardshrink: "hardshrink", F.threshold: "threshold",
    F.elu_: "elu", F.leaky_relu_: "leakyrelu", F.rrelu_: "rrelu", F.threshold_: "threshold",
}  # fmt: skip
# Tensor methods of the same names (x.relu(), x.tanh_(), x.sigmoid(), ...).
_METHODS = {
    method: name
    for function, name in _FUNCTIONS.items()
    for method in (function.__name__.rstrip("_"), function.__name__.rstrip("_") + "_")
    if hasattr(torch.Tensor, method)
}
_FIXED_BOUNDS = {"relu6": (0.0, 6.0), "hardsigmoid": (0.0, 1.0), "softsign": (-1.0, 1.0)}
# Activations whose output goes flat (to 0, or a constant) for negative inputs:
# a unit that never fires sits there and passes no signal or gradient, so it is
# dead. A tanh or linear unit that is never positive still carries information.
GATED_ACTIVATIONS = frozenset({
    "relu", "relu6", "step", "gelu", "gelu_tanh", "silu", "elu", "celu", "selu", "softplus", "mish",
    "hardswish", "hardsigmoid", "sigmoid", "threshold",
})  # fmt: skip
# Activations whose outputs are never negative (lets statistics count in one pass fewer).
NONNEGATIVE_ACTIVATIONS = frozenset(
    {"relu", "relu6", "step", "sigmoid", "softplus", "gauss", "abs", "square", "hardsigmoid"}
)
_CHANNEL_PRODUCERS = (nn.modules.conv._ConvNd,)  # neurons on axis 1
_FEATURE_PRODUCERS = (nn.Linear, nn.Bilinear, nn.MultiheadAttention)  # neurons on the last axis


def activation_info(module: nn.Module) -> tuple[str, tuple[float, float] | None] | None:
    """(name, bounds) when `module` is an activation module, else None."""
    if isinstance(module, nn.GELU):
        name = "gelu_tanh" if module.approximate == "tanh" else "gelu"
        return name, NETWORK_BY_NAME[name].bounded
    for cls, name in _NAMED_ACTIVATIONS.items():
        if isinstance(module, cls):
            return name, NETWORK_BY_NAME[name].bounded
    if isinstance(module, nn.Hardtanh):  # also ReLU6
        return type(module).__name__.lower(), (float(module.min_val), float(module.max_val))
    for cls, bounds in _BOUNDED_ACTIVATIONS.items():
        if isinstance(module, cls):
            return type(module).__name__.lower(), bounds
    if isinstance(module, _OTHER_ACTIVATIONS):
        return type(module).__name__.lower(), None
    return None


def function_activation_info(node: fx.Node) -> tuple[str, str, tuple[float, float] | None] | None:
    """(function name, activation name, bounds) when an fx node calls an activation function."""
    if node.op == "call_method" and node.target in _METHODS:
        function, name = node.target, _METHODS[node.target]
    elif node.op == "call_function" and node.target in _FUNCTIONS:
        function, name = node.target.__name__, _FUNCTIONS[node.target]
    else:
        return None
    if name == "gelu" and node.kwargs.get("approximate") == "tanh":
        name = "gelu_tanh"
    if name == "hardtanh":
        low = node.kwargs.get("min_val", node.args[1] if len(node.args) > 1 else -1.0)
        high = node.kwargs.get("max_val", node.args[2] if len(node.args) > 2 else 1.0)
        bounds = (float(low), float(high)) if all(isinstance(v, (int, float)) for v in (low, high)) else None
    elif name in NETWORK_BY_NAME:
        bounds = NETWORK_BY_NAME[name].bounded
    else:
        bounds = _FIXED_BOUNDS.get(name)
    return function, name, bounds


def bounds_of_activation(name: str | None) -> tuple[float, float] | None:
    """The output range of a netevo activation name (None when unbounded or None)."""
    if name is None:
        return None
    known = {**WANN_BY_NAME, **NETWORK_BY_NAME}
    if name not in known:
        raise UsageError(f"unknown activation `{name}` in neuron_sites", hint=did_you_mean(name, known))
    return known[name].bounded


def producer_axis_and_width(module: nn.Module) -> tuple[int, int | None] | None:
    """(neuron axis, width) of a Linear / Conv / attention module, else None."""
    if isinstance(module, _CHANNEL_PRODUCERS):
        return 1, module.out_channels
    if isinstance(module, nn.MultiheadAttention):
        return -1, module.embed_dim
    if isinstance(module, _FEATURE_PRODUCERS):
        return -1, getattr(module, "out_features", None)
    return None


@attrs.define(eq=False)
class TrackedLayer:
    """One site (one call of a module, or one functional activation) and its accumulated statistics."""

    name: str
    module: nn.Module | None  # None: a functional activation
    op: str
    axis: int | None  # None: decided from the output's rank at the first batch
    activation: str | None
    bounds: tuple[float, float] | None
    width: int | None  # a static guess until the first batch fixes it
    subset: torch.Tensor | None = None  # local indices tracked, when not all
    stats: StreamingStats | None = None
    module_name: str | None = None  # the module whose call this is (None: a function)
    call: int = 0  # which call of that module in one forward pass

    @property
    def gated(self) -> bool:
        """Whether "never fires" means dead here: the activation has a flat off region."""
        return self.activation in GATED_ACTIVATIONS

    @property
    def samples(self) -> int:
        return self.stats.count if self.stats is not None else 0

    def tracked_indices(self) -> torch.Tensor:
        return self.subset if self.subset is not None else torch.arange(self.width)

    def call_site(self, call: int, name: str) -> "TrackedLayer":
        """A fresh site for another call of the same module."""
        return attrs.evolve(self, name=name, stats=None, call=call)


def module_site(name: str, module: nn.Module, axis=None, width=None, activation=None, bounds=None, op=None):
    return TrackedLayer(name, module, op or type(module).__name__, axis, activation, bounds, width, module_name=name)


# --- declared sites (`neuron_sites`) -----------------------------------------------------


def declared_sites(model: nn.Module, sites: Mapping, modules: dict[str, nn.Module]) -> list[TrackedLayer]:
    if not isinstance(sites, Mapping):
        raise UsageError(
            f"`neuron_sites` of {type(model).__name__} is a {type(sites).__name__}, not a dict",
            hint='expected {module name: {"axis": int, "op": str, "activation": str | None}}',
        )
    layers = []
    for name, site in sites.items():
        module = module_named(name, modules)
        if not isinstance(site, Mapping) or not isinstance(site.get("axis"), int):
            raise UsageError(f"neuron site `{name}` needs an integer `axis`", hint=f"got {site!r}")
        activation = site.get("activation")
        static = producer_axis_and_width(module)
        width = static[1] if static and static[0] == site["axis"] else None
        op = site.get("op") or type(module).__name__
        layers.append(module_site(name, module, site["axis"], width, activation, bounds_of_activation(activation), op))
    return layers


def post_activation(layers: list[TrackedLayer]) -> list[TrackedLayer]:
    """Declared sites that hold post-activation values: activations, and producers (linear, conv, ...)
    whose next producer-or-activation site is not an activation. Norms and pools are left out."""

    def kind(layer: TrackedLayer) -> str | None:
        if layer.activation is not None:
            return "activation"
        op = get_op(layer.op)
        return None if op is not None and op.coupling == "elementwise" else "producer"

    kinds = [kind(layer) for layer in layers]
    kept = []
    for k, layer in enumerate(layers):
        following = next((other for other in kinds[k + 1 :] if other is not None), None)
        if kinds[k] == "activation" or (kinds[k] == "producer" and following != "activation"):
            kept.append(layer)
    return kept


def module_named(name: str, modules: dict[str, nn.Module]) -> nn.Module:
    if name not in modules:
        hint = did_you_mean(name, modules) or "name modules (layers=[...]) or the tracker's own site names"
        raise UsageError(f"the model has no module named `{name}`", hint=hint)
    return modules[name]



# --- module hooks: the fallback ----------------------------------------------------------


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules without children, in `named_modules()` order; attention counts as a leaf."""
    leaves, inside_attention = [], []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in inside_attention):
            continue  # MultiheadAttention calls F.multi_head_attention_forward, not its out_proj
        if isinstance(module, nn.MultiheadAttention):
            inside_attention.append(name)
            leaves.append((name, module))
        elif next(module.children(), None) is None:
            leaves.append((name, module))
    return leaves


def infer_layers(model: nn.Module) -> list[TrackedLayer]:
    """Sites by module order, for models fx cannot trace (one per module; split per call later).

    Activation modules are tracked. A producer (Linear, Conv, attention) is
    tracked only when the next producer-or-activation after it is not an
    activation. An activation takes its neuron axis and width from the producer before it.
    """
    leaves = _leaves(model)
    kinds = []
    for _, module in leaves:
        is_producer = producer_axis_and_width(module) is not None
        kinds.append("activation" if activation_info(module) else "producer" if is_producer else None)
    layers, last_producer = [], None
    for k, (name, module) in enumerate(leaves):
        if kinds[k] == "producer":
            last_producer = producer_axis_and_width(module)
            following = next((kind for kind in kinds[k + 1 :] if kind is not None), None)
            if following != "activation":
                layers.append(module_site(name, module, *last_producer))
        elif kinds[k] == "activation":
            act_name, bounds = activation_info(module)
            axis, width = last_producer if last_producer else (None, None)
            layers.append(module_site(name, module, axis, width, act_name, bounds))
    return layers


_FUNCTION_CALL = re.compile(
    r"\b(?:F|functional|torch)\.(" + "|".join(sorted({f.__name__ for f in _FUNCTIONS})) + r")\s*\("
    r"|\.(relu_?|tanh_?|sigmoid_?)\s*\("
)


def functional_activation_owners(model: nn.Module) -> list[str]:
    """'name (F.relu, ...)' for each module whose own forward source calls an activation function:
    the places where the module-hook fallback misses sites."""
    owners, seen_types = [], {}
    for name, module in model.named_modules():
        cls = type(module)
        if cls.__module__.startswith("torch.nn"):
            continue  # torch's own modules: the activation modules themselves, containers, attention
        if cls not in seen_types:
            try:
                source = inspect.getsource(cls.forward)
            except (OSError, TypeError):
                source = ""
            calls = sorted({m.group(1) or m.group(2) for m in _FUNCTION_CALL.finditer(source)})
            seen_types[cls] = calls
        if seen_types[cls]:
            owners.append(f"`{name or '<model>'}` ({', '.join(seen_types[cls])})")
    return owners


# --- the fx path ---------------------------------------------------------------------------


def trace_sites(model: nn.Module) -> tuple[fx.GraphModule, list[tuple[fx.Node, TrackedLayer]]]:
    """Trace `model` with torch.fx (raises what fx raises) and find its sites in execution order.

    A producer node is a site when its value reaches no activation except through another producer:
    then its own output is the post-activation value the next layer sees."""
    traced = fx.symbolic_trace(model)
    nodes = list(traced.graph.nodes)
    modules = dict(traced.named_modules())
    kinds: dict[fx.Node, str | None] = {}
    for node in nodes:
        module = modules.get(node.target) if node.op == "call_module" else None
        if function_activation_info(node) or (module is not None and activation_info(module)):
            kinds[node] = "activation"
        elif module is not None and producer_axis_and_width(module):
            kinds[node] = "producer"
        else:
            kinds[node] = None
    reaches_activation: dict[fx.Node, bool] = {}
    for node in reversed(nodes):
        reaches_activation[node] = any(
            kinds[user] == "activation" or (kinds[user] is None and reaches_activation[user]) for user in node.users
        )
    module_calls = Counter(node.target for node in nodes if node.op == "call_module")
    calls_so_far: Counter = Counter()
    found = []
    for node in nodes:
        call = 0
        if node.op == "call_module":
            call = calls_so_far[node.target]
            calls_so_far[node.target] += 1
        if kinds[node] == "producer" and not reaches_activation[node]:
            module = modules[node.target]
            site = module_site(_call_name(node.target, call, module_calls[node.target]), module,
                               *producer_axis_and_width(module))
            site.module_name, site.call = node.target, call
            found.append((node, site))
        elif kinds[node] == "activation":
            axis, width = _upstream_producer(node, kinds, modules)
            if node.op == "call_module":
                module = modules[node.target]
                name = _call_name(node.target, call, module_calls[node.target])
                act_name, bounds = activation_info(module)
                site = module_site(name, module, axis, width, act_name, bounds)
                site.module_name, site.call = node.target, call
            else:
                function, act_name, bounds = function_activation_info(node)
                site = TrackedLayer(_owner(node) + function + "()", None, function, axis, act_name, bounds, width)
            found.append((node, site))
    return traced, _number_functional(found)


def _call_name(target: str, call: int, calls: int) -> str:
    return target if calls == 1 else f"{target}#{call}"


def _owner(node: fx.Node) -> str:
    """'path.' of the module whose forward made this call ('' at the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = next(reversed(stack)).split("@")[0]  # fx marks a repeated call of a module with @k
    return path + "." if path else ""


def _number_functional(found):
    """Functional sites with the same owner and function get #0, #1, ... in call order."""
    counts = Counter(site.name for _, site in found if site.module is None)
    seen: Counter = Counter()
    for _, site in found:
        if site.module is None and counts[site.name] > 1:
            base = site.name
            site.name, site.call = f"{base}#{seen[base]}", seen[base]
            seen[base] += 1
    return found


def _upstream_producer(node: fx.Node, kinds, modules) -> tuple[int | None, int | None]:
    """(axis, width) of the Linear / Conv whose output an activation reads, through elementwise nodes."""
    current = node
    for _ in range(64):
        inputs = [arg for arg in current.args if isinstance(arg, fx.Node)]
        if not inputs:
            break
        current = inputs[0]
        if kinds.get(current) == "producer":
            return producer_axis_and_width(modules[current.target])
        if kinds.get(current) == "activation":
            continue
    return None, None


def instrument(traced: fx.GraphModule, found, observe: Callable[[str, object], None]) -> fx.GraphModule:
    """Add `observe(site name, value)` right after every site node, in place, and recompile.

    The GraphModule shares the model's submodules and parameters, so running it is running the model."""
    for node, site in found:
        with traced.graph.inserting_after(node):
            traced.graph.call_function(observe, (site.name, node))
    traced.recompile()
    return traced


def graph_is_current(traced: fx.GraphModule, model: nn.Module) -> bool:
    """Whether every module and attribute the graph reads is still the model's (not replaced since)."""
    for node in traced.graph.nodes:
        if node.op in ("call_module", "get_attr"):
            try:
                if _attribute(traced, node.target) is not _attribute(model, node.target):
                    return False
            except AttributeError:
                return False
    return True


def _attribute(root, target: str):
    for part in target.split("."):
        root = getattr(root, part)
    return root
