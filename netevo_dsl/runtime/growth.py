"""Training across structural changes.

`rebuild_optimizer` carries optimizer state (SGD momentum, Adam moments, ...)
from an old set of parameters to the new ones after surgery: state of kept
rows / columns moves with them, new units start from zero state, removed
units' state is dropped. Without it, a grown or pruned network restarts its
optimizer from nothing and its first steps after the change differ from
those of the unchanged units.

`GrowthTrainer` trains a plain torch model, measures it on held-out data
(never the training data) with a NeuronTracker watching, records a
TrainingHistory, and after each epoch asks a callback whether the model
should change.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from netevo_dsl.errors import UsageError
from netevo_dsl.runtime.history import TrainingHistory
from netevo_dsl.runtime.tracker import NeuronTracker

FRESH = "fresh"  # an index_maps entry: start this parameter's optimizer state from nothing

IndexMap = Mapping[int, Sequence[int] | torch.Tensor]  # {dim: old index per new position, -1 = new}


def _remap_state(value: torch.Tensor, index_map: IndexMap | None, new: torch.Tensor, position: int) -> torch.Tensor:
    """Move one state tensor shaped like the old parameter to the new parameter's layout."""
    result = value.to(device=new.device)
    for dim, index in sorted((index_map or {}).items()):
        index = torch.as_tensor(index, dtype=torch.long, device=result.device)
        taken = result.index_select(dim, index.clamp(min=0))
        shape = [1] * result.ndim
        shape[dim] = -1
        kept = (index >= 0).view(shape)
        result = torch.where(kept, taken, torch.zeros((), dtype=taken.dtype, device=taken.device))
    if result.shape != new.shape:
        raise UsageError(
            f"optimizer state of parameter {position} has shape {tuple(result.shape)} after remapping, "
            f"but the new parameter has shape {tuple(new.shape)}",
            hint=f"give index_maps[{position}] = {{dim: old indices}} for every dimension that changed",
        )
    return result.clone() if result is value else result


def rebuild_optimizer(
    old_optimizer: torch.optim.Optimizer,
    new_params: Sequence[nn.Parameter | None],
    index_maps: Mapping[int, IndexMap | str | None] | Sequence[IndexMap | str | None] | None = None,
) -> torch.optim.Optimizer:
    """A new optimizer of the same class and hyperparameters over `new_params`, carrying state over.

    new_params[k] replaces the k-th parameter of `old_optimizer` (param groups in
    order); None drops it. Parameters past the old count are new and join the
    last group with fresh state.

    index_maps[k] (a dict keyed by position, or a list) says how the k-th new
    parameter's entries come from the old one's:
      * missing or None: same shape, state copied;
      * FRESH: no state carried;
      * {dim: indices}: along `dim`, new position i takes old position
        indices[i]; -1 marks a new unit, whose state starts at zero.
    Per-parameter scalars (Adam's `step`) are copied unchanged.
    """
    old_params = [param for group in old_optimizer.param_groups for param in group["params"]]
    new_params = list(new_params)
    if len(new_params) < len(old_params):
        raise UsageError(
            f"the old optimizer has {len(old_params)} parameters but {len(new_params)} replacements were given",
            hint="pass None for a parameter that was removed",
        )
    maps = dict(enumerate(index_maps)) if isinstance(index_maps, (list, tuple)) else dict(index_maps or {})
    groups, position = [], 0
    for group in old_optimizer.param_groups:
        count = len(group["params"])
        replacements = [p for p in new_params[position : position + count] if p is not None]
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": replacements})
        position += count
    groups[-1]["params"] = groups[-1]["params"] + [p for p in new_params[len(old_params) :] if p is not None]
    groups = [group for group in groups if group["params"]]  # a group whose parameters were all dropped
    if not groups:
        raise UsageError("every parameter was dropped; the new optimizer would have nothing to optimize")
    new_optimizer = type(old_optimizer)(groups, **old_optimizer.defaults)
    for k, (old, new) in enumerate(zip(old_params, new_params)):
        state = old_optimizer.state.get(old)
        rule = maps.get(k)
        if new is None or not state or rule == FRESH:
            continue
        new_optimizer.state[new] = {
            key: _remap_state(value, rule, new, k)
            if torch.is_tensor(value) and value.ndim and value.shape == old.shape
            else (value.clone() if torch.is_tensor(value) else value)
            for key, value in state.items()
        }
    return new_optimizer


def _batches(data: Iterable, device: torch.device):
    for batch in data:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise UsageError("training and validation data must yield (inputs, targets) pairs")
        yield batch[0].to(device), batch[1].to(device)


class GrowthTrainer:
    """Train a model epoch by epoch, evaluate on held-out data, and let a callback change it.

    Args:
        model: the nn.Module to train.
        train_data / val_data: re-iterable sources of (inputs, targets) batches,
            e.g. DataLoaders. They must be different objects: accuracy is only
            ever measured on held-out data.
        loss_fn: defaults to cross-entropy.
        optimizer_factory: parameters -> optimizer; defaults to Adam(lr=1e-3).
        on_epoch_end: (epoch, tracker) -> None, a new model (its parameters in
            the same order and shapes, so optimizer state carries over as is),
            or (new_model, index_maps) for surgery (see rebuild_optimizer;
            index_maps=None starts a fresh optimizer), or (new_model, transform) where the
            transform has `apply_to_optimizer` (netevo_dsl.evolve.growth_policy does this).
        tracker_options: keyword arguments for the NeuronTracker built for
            each epoch's held-out pass.
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Iterable,
        val_data: Iterable,
        loss_fn: Callable | None = None,
        optimizer_factory: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
        on_epoch_end: Callable[[int, NeuronTracker], object] | None = None,
        tracker_options: dict | None = None,
        history: TrainingHistory | None = None,
    ):
        if val_data is None or val_data is train_data:
            raise UsageError(
                "GrowthTrainer needs held-out validation data, distinct from the training data",
                hint="split the data set, e.g. torch.utils.data.random_split, and pass the held-out part as val_data",
            )
        self.model = model
        self.train_data = train_data
        self.val_data = val_data
        self.loss_fn = loss_fn or nn.CrossEntropyLoss()
        self.optimizer_factory = optimizer_factory or (lambda params: torch.optim.Adam(params, lr=1e-3))
        self.optimizer = self.optimizer_factory(model.parameters())
        self.on_epoch_end = on_epoch_end
        self.tracker_options = dict(tracker_options or {})
        self.history = history if history is not None else TrainingHistory()
        self.changes = 0

    @property
    def device(self) -> torch.device:
        first = next(self.model.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def train_epoch(self) -> float:
        """One pass over the training data; returns the mean training loss per sample."""
        self.model.train()
        total, samples = 0.0, 0
        for inputs, targets in _batches(self.train_data, self.device):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(inputs), targets)
            loss.backward()
            self.optimizer.step()
            total += loss.detach() * len(inputs)  # a tensor: no sync per batch
            samples += len(inputs)
        return float(total) / max(samples, 1)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float | None]:
        """Mean loss and accuracy on the held-out data (accuracy None for non-class targets)."""
        self.model.eval()
        total, correct, samples, classify = 0.0, 0, 0, True
        for inputs, targets in _batches(self.val_data, self.device):
            outputs = self.model(inputs)
            total += self.loss_fn(outputs, targets) * len(inputs)
            classify = classify and not targets.is_floating_point() and outputs.ndim == 2
            if classify:
                correct += (outputs.argmax(dim=1) == targets).sum()
            samples += len(inputs)
        samples = max(samples, 1)
        return float(total) / samples, (float(correct) / samples if classify else None)

    def fit(self, epochs: int) -> TrainingHistory:
        """Train for `epochs`, recording one history snapshot per epoch."""
        for epoch in range(epochs):
            train_loss = self.train_epoch()
            with NeuronTracker(self.model, **self.tracker_options) as tracker:
                val_loss, val_accuracy = self.evaluate()
            parameters = sum(p.numel() for p in self.model.parameters())
            self.history.record(
                epoch, tracker, loss=train_loss, accuracy=val_accuracy, val_loss=val_loss, parameters=parameters
            )
            if self.on_epoch_end is not None:
                self._apply_change(self.on_epoch_end(epoch, tracker))
        return self.history

    def _apply_change(self, change) -> None:
        if change is None:
            return
        model, index_maps = change if isinstance(change, tuple) else (change, {})
        if not isinstance(model, nn.Module):
            raise UsageError(
                f"on_epoch_end returned {type(model).__name__}",
                hint="return None, a new nn.Module, or (new_model, index_maps)",
            )
        new_params = list(model.parameters())
        if index_maps is None:
            self.optimizer = self.optimizer_factory(new_params)
        elif hasattr(index_maps, "apply_to_optimizer"):  # a transform result from netevo_dsl.evolve
            self.optimizer = index_maps.apply_to_optimizer(self.optimizer, model, old_model=self.model)
        else:
            self.optimizer = rebuild_optimizer(self.optimizer, new_params, index_maps)
        self.model = model
        self.changes += 1


def train_with_growth(
    model: nn.Module, train_data: Iterable, val_data: Iterable, epochs: int, **options
) -> tuple[nn.Module, TrainingHistory]:
    """Train with GrowthTrainer(model, train_data, val_data, **options); return the final model and history."""
    trainer = GrowthTrainer(model, train_data, val_data, **options)
    history = trainer.fit(epochs)
    return trainer.model, history
