"""Training a compiled network on a bundled classification dataset while tracking its neurons.

Used by `netevo track`. The split is the task's fixed, seeded train/test split; the test
split is never trained on. Per-epoch neuron statistics go into a `TrainingHistory`; the
final statistics (for recommendations) come from one pass over the training data in eval
mode with the trained weights, so "dead" means dead for the network as it is.
"""
from __future__ import annotations

import attrs
import torch
import torch.nn as nn

from ..errors import UsageError
from .history import TrainingHistory
from .progress import progress_bar
from .tracker import NeuronTracker


@attrs.frozen
class ClassificationData:
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    name: str


def classification_data(name: str, seed: int = 0, dtype=torch.float32) -> ClassificationData:
    from .tasks import make_task

    task = make_task((name, {"seed": seed}))
    if task.kind != "classification":
        raise UsageError(f"`{name}` is not a classification dataset", hint="use digits, iris, wine or breast_cancer")
    x, y, n = task.features.to(dtype), task.labels, task.n_train
    return ClassificationData(x[:n], y[:n], x[n:], y[n:], task.n_classes, name)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was_training = model.training
    model.eval()
    correct = (model(x).argmax(-1) == y).double().mean().item()
    model.train(was_training)
    return correct


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_tracked(model: nn.Module, data: ClassificationData, epochs: int = 20, batch_size: int = 64,
                  lr: float = 1e-3, seed: int = 0, correlation: bool = True, progress: bool = True,
                  tracker_kwargs: dict | None = None) -> tuple[NeuronTracker, TrainingHistory]:
    if epochs < 1 or batch_size < 1:
        raise UsageError("epochs and batch size must be positive")
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    tracker = NeuronTracker(model, correlation=correlation, **(tracker_kwargs or {}))
    history = TrainingHistory({"dataset": data.name, "epochs": epochs, "batch_size": batch_size, "lr": lr})
    generator = torch.Generator().manual_seed(seed)
    bar = progress_bar(epochs * -(-len(data.train_x) // batch_size), progress, unit="batch", desc="train")
    for epoch in range(epochs):
        model.train()
        tracker.reset()
        total, seen = 0.0, 0
        with tracker:
            for idx in torch.randperm(len(data.train_x), generator=generator).split(batch_size):
                loss = loss_fn(model(data.train_x[idx]), data.train_y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
                seen += len(idx)
                bar.update(1)
        train_acc = accuracy(model, data.train_x, data.train_y)
        test_acc = accuracy(model, data.test_x, data.test_y)
        history.record(epoch, tracker, loss=total / seen, accuracy=train_acc, test_accuracy=test_acc)
        bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} loss {total / seen:.3f} test {test_acc:.3f}")
    bar.close()
    tracker.reset()
    model.eval()
    with tracker, torch.no_grad():
        for idx in torch.arange(len(data.train_x)).split(512):
            model(data.train_x[idx])
    return tracker, history
