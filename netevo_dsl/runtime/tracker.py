"""Runtime neuron tracker for any torch module.

`NeuronTracker(model)` finds the model's sites (see `sites.py`: one per call
of an activation, module or function, and per call of a Linear / Conv /
attention whose output reaches no activation), observes them while started,
and streams per-neuron statistics (see `stats.py`) with memory that does not
grow with the number of batches. Its answers (dead, saturated and redundant
neurons, recommendations) are computed from those statistics on demand, each
with the thresholds it is given.

How sites are observed:
* a module with `neuron_sites` (compiled netevo models) names its modules:
  {module name: {"axis": int, "op": str, "activation": str | None}}; by
  default only post-activation ones are tracked (a Linear followed by its
  ReLU is not), and they are hooked;
* otherwise the model is traced once with torch.fx (per train / eval mode)
  and, while started, runs as that graph with an observer after each site:
  functional activations are seen, a reused module gives one site per call;
* a model fx cannot trace falls back to module hooks on `named_modules()`;
  `notes` then says which modules call activation functions that are missed.
With hooks, a module that runs k times in one forward pass becomes k call
sites (`name#0` ...) at the first pass; later passes must call it k times.

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
from netevo_dsl.runtime.sites import (  # noqa: F401  (re-exported: the tracker's public vocabulary)
    GATED_ACTIVATIONS,
    NONNEGATIVE_ACTIVATIONS,
    TrackedLayer,
    activation_info,
    bounds_of_activation,
    declared_sites,
    functional_activation_owners,
    graph_is_current,
    infer_layers,
    instrument,
    module_named,
    module_site,
    post_activation,
    producer_axis_and_width,
    trace_sites,
)
from netevo_dsl.runtime import stats_kernel
from netevo_dsl.runtime.stats import F64, StreamingStats

SCHEMA_VERSION = 1
_NO_FORWARD = object()


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


@attrs.define(eq=False)
class _FastPath:
    """How a site's output goes straight to the statistics kernel, for outputs shaped, typed and
    laid out like one that went the whole way (`_record`'s checks, view and `add_batch`)."""

    stats: StreamingStats
    shape: torch.Size
    dtype: torch.dtype
    layout: tuple[int, int]  # the kernel's (batch, width * inner) array
    inner: int

    @classmethod
    def of(cls, layer: TrackedLayer, value: torch.Tensor, view: torch.Tensor) -> "_FastPath | None":
        stats = layer.stats
        kernel = stats.moments.kernel
        if stats.comoments is not None or kernel is None or not stats.count or kernel.add(view[:0]) is None:
            return None  # add() declines batches like this one: they keep the torch path
        if not value.is_contiguous():
            return None
        inner = 1 if view.ndim == 2 else view.shape[2]
        return cls(stats, value.shape, value.dtype, (view.shape[0], view.shape[1] * inner), inner)

    def takes(self, layer: TrackedLayer, output) -> bool:
        return (
            type(output) is torch.Tensor and layer.stats is self.stats and output.shape == self.shape
            and output.dtype == self.dtype and output.is_cpu and output.is_contiguous() and stats_kernel.ENABLED
        )  # fmt: skip

    def add(self, output: torch.Tensor) -> None:
        moments = self.stats.moments
        moments.count += moments.kernel.add_array(output.detach().numpy().reshape(self.layout), self.inner)


@attrs.define(eq=False)
class _HookedModule:
    """A hooked module and its call sites: sites[k] receives the k-th call of each forward pass."""

    name: str
    module: nn.Module
    sites: list[TrackedLayer]
    per_pass: int | None = None  # calls per forward pass, fixed by the first pass that runs it
    calls: int = 0  # calls so far in this pass


class NeuronTracker:
    """Tracks per-neuron statistics of a model's sites while started.

    Args:
        model: any nn.Module.
        layers: site or module names to track (default: `neuron_sites`' post-activation
            sites, else every site found; module names that are not sites are hooked).
        threshold: a neuron *fires* on a sample when its value is > threshold.
        correlation: also keep streaming co-moments, for redundancy detection.
        corr_max_width: layers wider than this keep block-diagonal co-moments.
        corr_block_size: the block size for those layers (default corr_max_width).
        corr_dtype: dtype of each batch's co-moment product (running sums are float64).
        neurons: {layer: local indices} to track only some neurons of a layer.
        saturation_margin: a bounded activation is saturated within this
            fraction of its range from either bound.
        trace: find sites with torch.fx when the model has no `neuron_sites`
            (False: module hooks only).
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
        trace: bool = True,
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
        self.notes: list[str] = []
        self._graphs: dict[bool, torch.fx.GraphModule] = {}  # fx path: instrumented graph per training mode
        self._groups: list[_HookedModule] = []  # hook path
        self._explicit = layers is not None
        self._layers = self._select_layers(model, layers, trace)
        self._index_sites()
        for name, indices in (neurons or {}).items():
            self._layer(name).subset = torch.as_tensor(list(indices), dtype=torch.long).unique(sorted=True)
        self._handles: list = []
        self._started = False
        self._fast: dict[str, _FastPath | None] = {}  # per site: the kernel's call for outputs shaped like the last
        self._saved_forward = _NO_FORWARD
        self._in_root_forward = False

    def _select_layers(self, model: nn.Module, names: Sequence[str] | None, trace: bool) -> list[TrackedLayer]:
        modules = dict(model.named_modules())
        declared = getattr(model, "neuron_sites", None)
        found = None
        if declared is not None:
            everything = declared_sites(model, declared, modules)
            default = post_activation(everything)
        elif trace:
            try:
                traced, found = trace_sites(model)
            except Exception as error:  # fx raises many kinds (TraceError, TypeError, AttributeError, ...)
                self._note_hooks(model, error)
            everything = default = [site for _, site in found] if found is not None else infer_layers(model)
        else:
            self._note_hooks(model, None)
            everything = default = infer_layers(model)
        chosen = default
        if names is not None:
            by_name = {layer.name: layer for layer in everything}
            if found is not None and all(name in by_name for name in names):
                chosen = [by_name[name] for name in names]
            else:  # module names outside the graph's sites: hook them
                found = None
                chosen = [self._named_site(name, by_name, modules) for name in names]
        self.method = "fx" if found is not None else "neuron_sites" if declared is not None else "hooks"
        if found is not None:
            wanted = {layer.name for layer in chosen}
            self._graphs[model.training] = instrument(
                traced, [(node, site) for node, site in found if site.name in wanted], self._observe_traced
            )
            return chosen
        self._groups = [_HookedModule(layer.name, layer.module, [layer]) for layer in chosen]
        return chosen

    @staticmethod
    def _named_site(name: str, by_name: dict[str, TrackedLayer], modules) -> TrackedLayer:
        site = by_name.get(name)
        if site is not None and site.module_name == name:
            return site
        module = module_named(name, modules)
        info = activation_info(module)
        axis, width = producer_axis_and_width(module) or (None, None)
        act_name, bounds = info if info else (None, None)
        return module_site(name, module, axis, width, act_name, bounds)

    def _note_hooks(self, model: nn.Module, error: Exception | None) -> None:
        note = "sites come from module hooks"
        if error is not None:
            reason = (str(error).strip().splitlines() or [""])[0][:200]
            note = f"torch.fx could not trace {type(model).__name__} ({type(error).__name__}: {reason}); {note}"
        owners = functional_activation_owners(model)
        if owners:
            note += "; activation functions called in the forward of " + ", ".join(owners[:10])
            note += f" (and {len(owners) - 10} more)" if len(owners) > 10 else ""
            note += " are not tracked: those sites may be missing"
        if error is not None or owners:
            self.notes.append(note)

    def _index_sites(self) -> None:
        if self.method != "fx":
            self._layers = [site for group in self._groups for site in group.sites]
        self._by_name = {layer.name: layer for layer in self._layers}

    # --- observing ----------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._started

    def start(self) -> "NeuronTracker":
        """Observe the sites (idempotent). Without start() the model runs untouched."""
        if self._started:
            return self
        self._started = True
        if self._groups:  # call counting for hooked modules; the fx path needs no hook on the model
            self._handles.append(self.model.register_forward_pre_hook(self._enter_root))
            self._handles.append(self.model.register_forward_hook(self._leave_root))
        if self.method == "fx":
            if not all(graph_is_current(graph, self.model) for graph in self._graphs.values()):
                self._graphs.clear()  # a module or parameter was replaced: trace again
            self._saved_forward = self.model.__dict__.get("forward", _NO_FORWARD)
            self.model.forward = self._traced_forward
        for group in self._groups:
            self._handles.append(group.module.register_forward_hook(functools.partial(self._observe_call, group)))
        return self

    def stop(self) -> "NeuronTracker":
        """Stop observing; accumulated statistics stay."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._started = False
        if self.model.__dict__.get("forward") == self._traced_forward:
            del self.model.forward
            if self._saved_forward is not _NO_FORWARD:
                self.model.forward = self._saved_forward
        return self

    def __enter__(self) -> "NeuronTracker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget all statistics (the hooks, if any, stay)."""
        for layer in self._layers:
            layer.stats = None

    def _traced_forward(self, *args, **kwargs):
        """The model's forward while started on the fx path: its graph, with observers."""
        graph = self._graphs.get(self.model.training)
        if graph is None:  # first pass in this mode: fx specialises `self.training`, so trace it apart
            traced, found = trace_sites(self.model)
            if not self._explicit:
                new = [site for _, site in found if site.name not in self._by_name]
                if new:
                    mode = "training" if self.model.training else "eval"
                    self.notes.append(f"{len(new)} site(s) run only in {mode} mode, appended after the others")
                    self._layers += new
                    self._index_sites()
            found = [(node, site) for node, site in found if site.name in self._by_name]
            graph = self._graphs[self.model.training] = instrument(traced, found, self._observe_traced)
        return graph.forward(*args, **kwargs)  # not graph(...): a second module call per pass costs ~1%

    def _observe_traced(self, name: str, value) -> None:
        self._record(self._by_name[name], value)

    def _enter_root(self, module, args) -> None:
        self._in_root_forward = True
        for group in self._groups:
            group.calls = 0

    def _leave_root(self, module, args, output) -> None:
        self._in_root_forward = False
        renamed = False
        for group in self._groups:
            if group.calls and group.per_pass is None:
                group.per_pass = group.calls
                if group.calls > 1:
                    group.sites[0].name = f"{group.name}#0"
                    renamed = True
            elif group.calls and group.calls != group.per_pass:
                raise self._call_count_error(group)
            group.calls = 0
        if renamed:
            self._index_sites()

    def _call_count_error(self, group: _HookedModule) -> UsageError:
        return UsageError(
            f"module `{group.name}` ran {group.calls}{'+' if group.calls > group.per_pass else ''} time(s) in this "
            f"forward pass but {group.per_pass} in the first; its call sites would not line up",
            hint="every forward pass must call a tracked module equally often; "
            "build a new tracker after changing the model's control flow",
            code="E170",
        )

    def _observe_call(self, group: _HookedModule, module: nn.Module, args, output) -> None:
        if not self._in_root_forward:  # the module was called on its own, outside the model's forward
            if len(group.sites) > 1:
                raise UsageError(
                    f"module `{group.name}` has {len(group.sites)} call sites; called outside the model's "
                    "forward pass, its call cannot be told apart",
                    hint="run the whole model while tracking",
                    code="E171",
                )
            self._record(group.sites[0], output)
            return
        call = group.calls
        group.calls += 1
        if call >= len(group.sites):
            if group.per_pass is not None:
                self._in_root_forward = False  # the pass ends here
                raise self._call_count_error(group)
            group.sites.append(group.sites[0].call_site(call, f"{group.name}#{call}"))
            self._index_sites()
        self._record(group.sites[call], output)

    def _record(self, layer: TrackedLayer, output) -> None:
        fast = self._fast.get(layer.name)
        if fast is not None and fast.takes(layer, output):
            fast.add(output)
            return
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
        if value is output and layer.subset is None:
            self._fast[layer.name] = _FastPath.of(layer, value, view)

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
        """Static facts about a tracked site: op, axis, activation, bounds, width, samples, and the
        module it is a call of (None for a functional activation) with the call's index."""
        layer = self._layer(name)
        return {
            "module": layer.module_name,
            "call": layer.call,
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
        notes += self.notes
        return {
            "schema": "netevo.recommendations",
            "schema_version": SCHEMA_VERSION,
            "firing_threshold": self.threshold,
            "thresholds": thresholds,
            "samples": {layer.name: layer.samples for layer in self._observed()},
            "sites": {
                layer.name: {"module": layer.module_name, "call": layer.call, "op": layer.op}
                for layer in self._observed()
            },
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
