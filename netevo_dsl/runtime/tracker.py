"""Runtime neuron tracker for any torch module.

`NeuronTracker(model)` picks the layers whose outputs are neurons, hooks them
while started, and streams per-neuron statistics (see `stats.py`) with memory
that does not grow with the number of batches. Its answers (dead, saturated
and redundant neurons, recommendations) are computed from those statistics
on demand, each with the thresholds it is given.

Which output is a layer's neurons:
* a module with `neuron_sites` (compiled netevo models) says so itself:
  {module name: {"axis": int, "op": str, "activation": str | None}};
* otherwise activation modules are tracked, and a Linear / Conv / attention
  module only when no activation follows it, so statistics are
  post-activation: a dead ReLU unit is one whose post-ReLU value never
  exceeds the threshold. Layer order is `named_modules()` order.

Neurons lie along one axis: (B, F) per feature; (B, C, L) and (B, C, H, W) per
channel; (B, T, H) per hidden unit (reducing over B and T).
"""
from __future__ import annotations

import functools
import math
from typing import Iterable, Mapping, Sequence

import attrs
import torch
from torch import nn

from netevo_dsl.errors import UsageError, did_you_mean
from netevo_dsl.ops.activations import NETWORK_BY_NAME, WANN_BY_NAME
from netevo_dsl.runtime.stats import F64, StreamingStats

SCHEMA_VERSION = 1

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


def bounds_of_activation(name: str | None) -> tuple[float, float] | None:
    """The output range of a netevo activation name (None when unbounded or None)."""
    if name is None:
        return None
    known = {**WANN_BY_NAME, **NETWORK_BY_NAME}
    if name not in known:
        raise UsageError(f"unknown activation `{name}` in neuron_sites", hint=did_you_mean(name, known))
    return known[name].bounded


def _producer_axis_and_width(module: nn.Module) -> tuple[int, int | None] | None:
    if isinstance(module, _CHANNEL_PRODUCERS):
        return 1, module.out_channels
    if isinstance(module, nn.MultiheadAttention):
        return -1, module.embed_dim
    if isinstance(module, _FEATURE_PRODUCERS):
        return -1, getattr(module, "out_features", None)
    return None


@attrs.define(eq=False)
class TrackedLayer:
    """One hooked module and its accumulated statistics."""

    name: str
    module: nn.Module
    op: str
    axis: int | None  # None: decided from the output's rank at the first batch
    activation: str | None
    bounds: tuple[float, float] | None
    width: int | None  # a static guess until the first batch fixes it
    subset: torch.Tensor | None = None  # local indices tracked, when not all
    stats: StreamingStats | None = None
    last_forward: int = -1

    @property
    def gated(self) -> bool:
        """Whether "never fires" means dead here: the activation has a flat off region."""
        return self.activation in GATED_ACTIVATIONS

    @property
    def samples(self) -> int:
        return self.stats.count if self.stats is not None else 0

    def tracked_indices(self) -> torch.Tensor:
        return self.subset if self.subset is not None else torch.arange(self.width)


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
    """Layers to track when the model does not declare `neuron_sites`.

    Activation modules are tracked. A producer (Linear, Conv, attention) is
    tracked only when the next producer-or-activation after it is not an
    activation: then its own output is the post-activation value anyone sees.
    An activation takes its neuron axis and width from the producer before it.
    """
    leaves = _leaves(model)
    kinds = []
    for _, module in leaves:
        is_producer = _producer_axis_and_width(module) is not None
        kinds.append("activation" if activation_info(module) else "producer" if is_producer else None)
    layers, last_producer = [], None
    for k, (name, module) in enumerate(leaves):
        if kinds[k] == "producer":
            last_producer = _producer_axis_and_width(module)
            following = next((kind for kind in kinds[k + 1 :] if kind is not None), None)
            if following != "activation":
                axis, width = last_producer
                layers.append(TrackedLayer(name, module, type(module).__name__, axis, None, None, width))
        elif kinds[k] == "activation":
            act_name, bounds = activation_info(module)
            axis, width = last_producer if last_producer else (None, None)
            layers.append(TrackedLayer(name, module, type(module).__name__, axis, act_name, bounds, width))
    return layers


def _site_layers(model: nn.Module, sites: Mapping, modules: dict[str, nn.Module]) -> list[TrackedLayer]:
    if not isinstance(sites, Mapping):
        raise UsageError(
            f"`neuron_sites` of {type(model).__name__} is a {type(sites).__name__}, not a dict",
            hint='expected {module name: {"axis": int, "op": str, "activation": str | None}}',
        )
    layers = []
    for name, site in sites.items():
        module = _module_named(name, modules)
        if not isinstance(site, Mapping) or not isinstance(site.get("axis"), int):
            raise UsageError(f"neuron site `{name}` needs an integer `axis`", hint=f"got {site!r}")
        activation = site.get("activation")
        static = _producer_axis_and_width(module)
        width = static[1] if static and static[0] == site["axis"] else None
        op = site.get("op") or type(module).__name__
        layers.append(TrackedLayer(name, module, op, site["axis"], activation, bounds_of_activation(activation), width))
    return layers


def _module_named(name: str, modules: dict[str, nn.Module]) -> nn.Module:
    if name not in modules:
        raise UsageError(f"the model has no module named `{name}`", hint=did_you_mean(name, modules))
    return modules[name]


def _first_tensor(output) -> torch.Tensor | None:
    """A module's output tensor; attention modules return (output, weights)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def _check_rate(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"`{name}` must be between 0 and 1, got {value}")
    return float(value)


class NeuronTracker:
    """Tracks per-neuron statistics of a model's layers while started.

    Args:
        model: any nn.Module.
        layers: module names to track (default: `neuron_sites`, else inferred).
        threshold: a neuron *fires* on a sample when its value is > threshold.
        correlation: also keep streaming co-moments, for redundancy detection.
        corr_max_width: layers wider than this keep block-diagonal co-moments.
        corr_block_size: the block size for those layers (default corr_max_width).
        corr_dtype: dtype of each batch's co-moment product (running sums are float64).
        neurons: {layer: local indices} to track only some neurons of a layer.
        saturation_margin: a bounded activation is saturated within this
            fraction of its range from either bound.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str] | None = None,
        threshold: float = 0.0,
        correlation: bool = False,
        corr_max_width: int = 512,
        corr_block_size: int | None = None,
        corr_dtype: torch.dtype = F64,
        neurons: Mapping[str, Sequence[int]] | None = None,
        saturation_margin: float = 0.02,
    ):
        if not isinstance(model, nn.Module):
            raise UsageError(f"NeuronTracker needs an nn.Module, got {type(model).__name__}")
        if corr_max_width < 1 or (corr_block_size is not None and corr_block_size < 1):
            raise UsageError("corr_max_width and corr_block_size must be positive")
        self.model = model
        self.threshold = float(threshold)
        self.correlation = bool(correlation)
        self.corr_max_width = int(corr_max_width)
        self.corr_block_size = int(corr_block_size or corr_max_width)
        self.corr_dtype = corr_dtype
        self.saturation_margin = _check_rate("saturation_margin", saturation_margin)
        self._layers = self._select_layers(model, layers)
        self._by_name = {layer.name: layer for layer in self._layers}
        for name, indices in (neurons or {}).items():
            self._layer(name).subset = torch.as_tensor(list(indices), dtype=torch.long).unique(sorted=True)
        self._handles: list = []
        self._forward_index = 0
        self._in_root_forward = False

    @staticmethod
    def _select_layers(model: nn.Module, names: Sequence[str] | None) -> list[TrackedLayer]:
        modules = dict(model.named_modules())
        sites = getattr(model, "neuron_sites", None)
        candidates = _site_layers(model, sites, modules) if sites is not None else infer_layers(model)
        if names is None:
            return candidates
        by_name = {layer.name: layer for layer in candidates}
        chosen = []
        for name in names:
            module = _module_named(name, modules)
            if name in by_name:
                chosen.append(by_name[name])
                continue
            info = activation_info(module)
            static = _producer_axis_and_width(module)
            axis, width = static if static else (None, None)
            act_name, bounds = info if info else (None, None)
            chosen.append(TrackedLayer(name, module, type(module).__name__, axis, act_name, bounds, width))
        return chosen

    # --- hooks ----------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def start(self) -> "NeuronTracker":
        """Register the hooks (idempotent). Without start() the model runs untouched."""
        if self._handles:
            return self
        self._handles.append(self.model.register_forward_pre_hook(self._enter_root))
        self._handles.append(self.model.register_forward_hook(self._leave_root))
        for layer in self._layers:
            self._handles.append(layer.module.register_forward_hook(functools.partial(self._observe, layer)))
        return self

    def stop(self) -> "NeuronTracker":
        """Remove every hook; accumulated statistics stay."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        return self

    def __enter__(self) -> "NeuronTracker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget all statistics (the hooks, if any, stay)."""
        for layer in self._layers:
            layer.stats = None

    def _enter_root(self, module, args) -> None:
        self._forward_index += 1
        self._in_root_forward = True

    def _leave_root(self, module, args, output) -> None:
        self._in_root_forward = False

    def _observe(self, layer: TrackedLayer, module: nn.Module, args, output) -> None:
        if self._in_root_forward:
            if layer.last_forward == self._forward_index:
                raise UsageError(
                    f"module `{layer.name}` ran twice in one forward pass; its statistics would mix two sites",
                    hint="give each use its own module, or track the layers before it (layers=[...])",
                )
            layer.last_forward = self._forward_index
        value = _first_tensor(output)
        if value is None or not value.is_floating_point():
            raise UsageError(
                f"tracked layer `{layer.name}` returned {type(output).__name__}, not a floating-point tensor",
                hint="track a module whose output holds neuron values (layers=[...])",
            )
        view = self._neuron_view(layer, value.detach())
        if layer.stats is None:
            with torch.inference_mode(False):  # state must stay usable outside inference mode
                layer.stats = self._new_stats(layer, view.device)
        layer.stats.update(view)

    def _neuron_view(self, layer: TrackedLayer, value: torch.Tensor) -> torch.Tensor:
        """A layer output as (samples, neurons), or (batch, neurons, inner) when the neuron
        axis is not last: a view of the output either way, never a transposed copy."""
        if value.ndim == 0:
            raise UsageError(f"tracked layer `{layer.name}` returned a scalar")
        if value.ndim == 1:
            value = value[None, :]  # one unbatched sample
        axis = layer.axis if layer.axis is not None else (-1 if value.ndim == 3 else 1)
        axis %= value.ndim
        width = value.shape[axis]
        if layer.stats is None:
            layer.width = width  # the first batch is authoritative over the static guess
            if layer.subset is not None and layer.subset.numel() and int(layer.subset.max()) >= width:
                raise UsageError(
                    f"neurons= asks for index {int(layer.subset.max())} of layer `{layer.name}`, "
                    f"which has {width} neurons"
                )
        elif width != layer.width:
            raise UsageError(
                f"layer `{layer.name}` had {layer.width} neurons on axis {axis}, now {width}",
                hint="call tracker.reset() after changing the model, or build a new tracker",
            )
        inner = math.prod(value.shape[axis + 1 :])
        view = value.reshape(-1, width) if inner == 1 else value.reshape(-1, width, inner)
        if layer.subset is not None:
            view = view.index_select(1, layer.subset.to(view.device))
        return view

    def _new_stats(self, layer: TrackedLayer, device: torch.device) -> StreamingStats:
        tracked = layer.subset.numel() if layer.subset is not None else layer.width
        block = self.corr_block_size if tracked > self.corr_max_width else None
        return StreamingStats(
            tracked,
            threshold=self.threshold,
            bounds=layer.bounds,
            saturation_margin=self.saturation_margin,
            correlation=self.correlation,
            corr_block_size=block,
            corr_product_dtype=self.corr_dtype,
            device=device,
            nonnegative=layer.activation in NONNEGATIVE_ACTIVATIONS,
        )

    # --- neurons and their ids ----------------------------------------------------------

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self._layers]

    def layer_info(self, name: str) -> dict:
        """Static facts about a tracked layer: op, axis, activation, bounds, width, samples."""
        layer = self._layer(name)
        return {
            "op": layer.op,
            "axis": layer.axis,
            "activation": layer.activation,
            "bounds": layer.bounds,
            "width": layer.width,
            "samples": layer.samples,
        }

    def _layer(self, name: str) -> TrackedLayer:
        if name not in self._by_name:
            hint = did_you_mean(name, self._by_name) or f"tracked layers: {self.layer_names}"
            raise UsageError(f"`{name}` is not a tracked layer", hint=hint)
        return self._by_name[name]

    def _offsets(self) -> dict[str, int]:
        """First global id of each layer: ids run through layers in order, all neurons of each."""
        offsets, total = {}, 0
        for layer in self._layers:
            if layer.width is None:
                raise UsageError(
                    f"the number of neurons of `{layer.name}` is not known yet",
                    hint="run one forward pass with the tracker started",
                )
            offsets[layer.name] = total
            total += layer.width
        return offsets

    def layer_offsets(self) -> dict[str, int] | None:
        """The first global id of each layer, or None while some layer's width is unknown."""
        if any(layer.width is None for layer in self._layers):
            return None
        return self._offsets()

    @property
    def num_neurons(self) -> int:
        self._offsets()  # raises while some width is unknown
        return sum(layer.width for layer in self._layers)

    def neuron_id(self, layer: str, index: int) -> int:
        """The global id of neuron `index` of `layer`."""
        width = self._layer(layer).width
        offset = self._offsets()[layer]
        if not 0 <= index < width:
            raise UsageError(f"layer `{layer}` has {width} neurons; index {index} is out of range")
        return offset + index

    def lookup(self, global_id: int) -> tuple[str, int]:
        """(layer, local index) of a global neuron id."""
        for name, offset in self._offsets().items():
            if offset <= global_id < offset + self._by_name[name].width:
                return name, global_id - offset
        raise UsageError(f"no neuron has id {global_id}; ids run from 0 to {self.num_neurons - 1}")

    # --- statistics -------------------------------------------------------------------

    def _observed(self) -> Iterable[TrackedLayer]:
        return (layer for layer in self._layers if layer.samples)

    def _stats_of(self, name: str) -> StreamingStats:
        layer = self._layer(name)
        if not layer.samples:
            raise UsageError(
                f"no activations were recorded for layer `{name}`",
                hint="run forward passes inside `with tracker:` (or between start() and stop())",
            )
        return layer.stats

    def layer_stats(self, name: str) -> dict[str, torch.Tensor]:
        """Per-neuron mean, var (ddof 0), min, max, firing_rate, zero_fraction, count,
        saturation (bounded activations only) and index (the local index of each entry), on CPU."""
        stats = self._stats_of(name).moments.summary()
        stats["index"] = self._layer(name).tracked_indices()
        return {key: value.cpu() for key, value in stats.items()}

    def state_nbytes(self) -> int:
        """Bytes held by the accumulated statistics of all layers."""
        return sum(layer.stats.state_nbytes() for layer in self._layers if layer.stats is not None)

    def dead_neurons(self, max_firing_rate: float = 0.0) -> dict[str, list[int]]:
        """Per gated layer (ReLU-like, see GATED_ACTIVATIONS), the neurons whose
        firing rate is <= max_firing_rate (0: never fired).

        Other layers are left out: a logit or tanh unit that is never positive
        is not dead, its sign carries information.
        """
        _check_rate("max_firing_rate", max_firing_rate)
        result = {}
        for layer in self._observed():
            if not layer.gated:
                continue
            rate = layer.stats.moments.summary()["firing_rate"].cpu()
            result[layer.name] = layer.tracked_indices()[rate <= max_firing_rate].tolist()
        return result

    def saturated_neurons(self, threshold: float = 0.9) -> dict[str, list[int]]:
        """Per bounded layer, the neurons near a bound on >= `threshold` of samples."""
        _check_rate("threshold", threshold)
        result = {}
        for layer in self._observed():
            if layer.bounds is not None:
                rate = layer.stats.moments.summary()["saturation"].cpu()
                result[layer.name] = layer.tracked_indices()[rate >= threshold].tolist()
        return result

    def _require_correlation(self) -> None:
        if not self.correlation:
            raise UsageError(
                "correlations were not tracked", hint="build the tracker with NeuronTracker(model, correlation=True)"
            )

    def _pairs(self, layer: TrackedLayer, threshold: float):
        """(i, j, corr) tensors on CPU in local indices, i < j, |corr| >= threshold."""
        i, j, corr = layer.stats.comoments.pairs_above(threshold)
        index = layer.tracked_indices()
        return index[i.cpu()], index[j.cpu()], corr.cpu(), (i, j)

    def redundant_pairs(self, threshold: float = 0.9) -> dict[str, list[tuple[int, int, float]]]:
        """Per layer, neuron pairs (i, j, correlation) with |correlation| >= threshold."""
        _check_rate("threshold", threshold)
        self._require_correlation()
        result = {}
        for layer in self._observed():
            i, j, corr, _ = self._pairs(layer, threshold)
            result[layer.name] = list(zip(i.tolist(), j.tolist(), corr.tolist()))
        return result

    def redundancy_summary(self, threshold: float = 0.9) -> dict[str, dict]:
        """Per layer: neurons, redundant pairs, neurons removable by merging, rate, max |corr|."""
        result = {}
        for name, pairs in self.redundant_pairs(threshold).items():
            width = len(self._layer(name).tracked_indices())
            removable = _removable_count(pairs)
            result[name] = {
                "neurons": width,
                "redundant_pairs": len(pairs),
                "redundant_neurons": removable,
                "redundancy_rate": removable / width if width else 0.0,
                "max_abs_correlation": max((abs(c) for _, _, c in pairs), default=None),
            }
        return result

    # --- recommendations ----------------------------------------------------------------

    def recommendations(
        self,
        dead_rate: float = 0.0,
        low_activity_rate: float = 0.01,
        redundancy_threshold: float = 0.9,
        saturation_threshold: float = 0.9,
        saturated_layer_fraction: float = 0.25,
        growth_fraction: float = 0.25,
    ) -> dict:
        """Prune / merge / expand suggestions as plain data (JSON-ready).

        prune: in gated layers (see dead_neurons), neurons with firing rate <= dead_rate ("dead")
            or < low_activity_rate ("low_activity").
        merge: pairs with |correlation| >= redundancy_threshold, chosen so no neuron is
            removed twice or both kept and removed; `slope`/`intercept` fit removed ~ kept.
        expand: bounded layers where >= saturated_layer_fraction of neurons are
            saturated on >= saturation_threshold of samples; grow by growth_fraction of the width.
        """
        thresholds = {
            "dead_rate": _check_rate("dead_rate", dead_rate),
            "low_activity_rate": _check_rate("low_activity_rate", low_activity_rate),
            "redundancy_threshold": _check_rate("redundancy_threshold", redundancy_threshold),
            "saturation_threshold": _check_rate("saturation_threshold", saturation_threshold),
            "saturated_layer_fraction": _check_rate("saturated_layer_fraction", saturated_layer_fraction),
            "growth_fraction": float(growth_fraction),
        }
        if growth_fraction <= 0:
            raise UsageError(f"`growth_fraction` must be positive, got {growth_fraction}")
        ids = self.layer_offsets()
        prune, merge, expand, notes = [], [], [], []
        for layer in self._observed():
            stats = layer.stats.moments.summary()
            stats = {key: value.cpu() for key, value in stats.items()}
            index = layer.tracked_indices()
            if layer.gated:
                prune += _prune_candidates(layer, stats, index, ids, dead_rate, low_activity_rate, self.threshold)
            if self.correlation:
                merge += self._merge_candidates(layer, redundancy_threshold, ids)
            if layer.bounds is not None:
                expand += _expand_candidate(
                    layer, stats, saturation_threshold, saturated_layer_fraction, growth_fraction
                )
        if not self.correlation:
            notes.append("correlations were not tracked: build NeuronTracker(model, correlation=True) for merges")
        return {
            "schema": "netevo.recommendations",
            "schema_version": SCHEMA_VERSION,
            "firing_threshold": self.threshold,
            "thresholds": thresholds,
            "samples": {layer.name: layer.samples for layer in self._observed()},
            "prune": prune,
            "merge": merge,
            "expand": expand,
            "summary": {"prune": len(prune), "merge": len(merge), "expand": len(expand)},
            "notes": notes,
        }

    def _merge_candidates(self, layer: TrackedLayer, threshold: float, ids) -> list[dict]:
        i, j, corr, (row, col) = self._pairs(layer, threshold)
        slope, intercept = layer.stats.comoments.affine_fit(row, col)
        order = torch.argsort(corr.abs(), descending=True, stable=True).tolist()
        kept, removed, result = set(), set(), []
        for k in order:
            keep, remove = int(i[k]), int(j[k])
            if keep in removed or remove in removed or remove in kept:
                continue
            kept.add(keep)
            removed.add(remove)
            result.append({
                "layer": layer.name,
                "keep": keep,
                "remove": remove,
                "neuron_ids": [ids[layer.name] + keep, ids[layer.name] + remove] if ids else None,
                "correlation": float(corr[k]),
                "slope": float(slope[k]),
                "intercept": float(intercept[k]),
            })  # fmt: skip
        return result


def _prune_candidates(layer, stats, index, ids, dead_rate, low_activity_rate, firing_threshold) -> list[dict]:
    rate = stats["firing_rate"]
    dead = rate <= dead_rate
    low = (rate < low_activity_rate) & ~dead
    result = []
    for k in (dead | low).nonzero().flatten().tolist():
        local = int(index[k])
        is_dead = bool(dead[k])
        reasons = [
            f"fired (> {firing_threshold:g}) on {float(rate[k]):.4%} of {int(stats['count'][k])} samples, "
            + (f"<= dead_rate {dead_rate:g}" if is_dead else f"< low_activity_rate {low_activity_rate:g}")
        ]
        if float(stats["zero_fraction"][k]) == 1.0:
            reasons.append("always exactly zero")
        result.append({
            "layer": layer.name,
            "index": local,
            "neuron_id": ids[layer.name] + local if ids else None,
            "reason": "dead" if is_dead else "low_activity",
            "reasons": reasons,
            "firing_rate": float(rate[k]),
            "mean": float(stats["mean"][k]),
            "zero_fraction": float(stats["zero_fraction"][k]),
        })  # fmt: skip
    return result


def _expand_candidate(layer, stats, saturation_threshold, layer_fraction, growth_fraction) -> list[dict]:
    saturated = stats["saturation"] >= saturation_threshold
    fraction = float(saturated.double().mean()) if saturated.numel() else 0.0
    if not saturated.any() or fraction < layer_fraction:
        return []
    return [{
        "layer": layer.name,
        "width": layer.width,
        "saturated": int(saturated.sum()),
        "saturated_fraction": fraction,
        "suggested_growth": max(1, math.ceil(layer.width * growth_fraction)),
        "reason": f"{fraction:.1%} of neurons are within the saturation margin of {layer.bounds} "
        f"on >= {saturation_threshold:g} of samples (layer limit {layer_fraction:g})",
    }]  # fmt: skip


def _removable_count(pairs: Sequence[tuple[int, int, float]]) -> int:
    """Neurons that merging could remove: in each connected group of redundant neurons, all but one."""
    parent: dict[int, int] = {}

    def root(a: int) -> int:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b, _ in pairs:
        parent[root(a)] = root(b)
    groups = {root(a) for a in parent}
    return len(parent) - len(groups)
