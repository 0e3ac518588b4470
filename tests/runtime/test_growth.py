"""Optimizer state across structural changes, and the growth training loop."""
import pytest
import torch
from torch import nn

from netevo_dsl.errors import UsageError
from netevo_dsl.runtime.growth import FRESH, GrowthTrainer, rebuild_optimizer


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: on a busy 2-core machine, OpenMP hand-offs between two
    threads cost 10x the arithmetic, so run single-threaded and restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trained_pair(optimizer_class, seed=0, **options):
    """fc1 -> fc2 with a few optimizer steps taken, so state is non-trivial."""
    torch.manual_seed(seed)
    fc1, fc2 = nn.Linear(3, 5), nn.Linear(5, 2)
    params = [fc1.weight, fc1.bias, fc2.weight, fc2.bias]
    optimizer = optimizer_class(params, **options)
    for _ in range(3):
        optimizer.zero_grad()
        fc2(torch.relu(fc1(torch.randn(7, 3)))).square().sum().backward()
        optimizer.step()
    return params, optimizer


def pruned_params(params, keep):
    w1, b1, w2, b2 = params
    return [nn.Parameter(w1.detach()[keep].clone()), nn.Parameter(b1.detach()[keep].clone()),
            nn.Parameter(w2.detach()[:, keep].clone()), nn.Parameter(b2.detach().clone())]  # fmt: skip


def test_adam_moments_of_kept_units_are_carried_over():
    params, old = trained_pair(torch.optim.Adam, lr=0.01)
    keep = torch.tensor([0, 2, 4])
    new_params = pruned_params(params, keep)
    new = rebuild_optimizer(old, new_params, {0: {0: keep}, 1: {0: keep}, 2: {1: keep}})
    assert type(new) is torch.optim.Adam and new.param_groups[0]["lr"] == 0.01
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(new.state[new_params[0]][key], old.state[params[0]][key][keep], rtol=0, atol=0)
        torch.testing.assert_close(new.state[new_params[2]][key], old.state[params[2]][key][:, keep], rtol=0, atol=0)
        torch.testing.assert_close(new.state[new_params[3]][key], old.state[params[3]][key], rtol=0, atol=0)
    assert float(new.state[new_params[0]]["step"]) == float(old.state[params[0]]["step"]) == 3.0

    # One more step with matching gradients moves the kept entries exactly as before.
    for param in params:
        param.grad = torch.ones_like(param)
    for param in new_params:
        param.grad = torch.ones_like(param)
    old.step()
    new.step()
    torch.testing.assert_close(new_params[0].detach(), params[0].detach()[keep], rtol=0, atol=0)
    torch.testing.assert_close(new_params[2].detach(), params[2].detach()[:, keep], rtol=0, atol=0)


def test_sgd_momentum_for_grown_units_starts_at_zero():
    params, old = trained_pair(torch.optim.SGD, lr=0.1, momentum=0.9)
    grow = torch.tensor([0, 1, 2, 3, 4, -1, -1])  # five kept, two new units
    w1, b1, w2, b2 = params
    new_params = [nn.Parameter(torch.randn(7, 3)), nn.Parameter(torch.randn(7)),
                  nn.Parameter(torch.randn(2, 7)), nn.Parameter(b2.detach().clone())]  # fmt: skip
    new = rebuild_optimizer(old, new_params, [{0: grow}, {0: grow}, {1: grow}, None])
    momentum = new.state[new_params[0]]["momentum_buffer"]
    torch.testing.assert_close(momentum[:5], old.state[w1]["momentum_buffer"], rtol=0, atol=0)
    assert (momentum[5:] == 0).all() and (new.state[new_params[2]]["momentum_buffer"][:, 5:] == 0).all()
    assert new.param_groups[0]["momentum"] == 0.9


def test_fresh_dropped_and_extra_parameters():
    params, old = trained_pair(torch.optim.Adam)
    extra = nn.Parameter(torch.zeros(4))
    replacement = [nn.Parameter(p.detach().clone()) for p in params]
    new = rebuild_optimizer(old, replacement[:3] + [None, extra], {1: FRESH})
    assert replacement[1] not in new.state and replacement[0] in new.state
    assert [len(g["params"]) for g in new.param_groups] == [4]  # 3 kept + 1 extra, one dropped
    assert any(p is extra for p in new.param_groups[0]["params"])


def test_changed_shape_without_index_map_is_a_usage_error():
    params, old = trained_pair(torch.optim.Adam)
    with pytest.raises(UsageError, match="shape") as error:
        rebuild_optimizer(old, pruned_params(params, torch.tensor([0, 1])))
    assert "index_maps[0]" in error.value.hint
    with pytest.raises(UsageError, match="replacements") as error:
        rebuild_optimizer(old, params[:2])
    assert "None" in error.value.hint


def data(seed, rows=256, flip=False):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 4, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return [(x[k : k + 64], (1 - y if flip else y)[k : k + 64]) for k in range(0, rows, 64)]


def accuracy(model, batches):
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches)
    return correct / sum(len(y) for _, y in batches)


def test_trainer_refuses_to_validate_on_training_data():
    train = data(0)
    with pytest.raises(UsageError, match="held-out"):
        GrowthTrainer(nn.Linear(4, 2), train, train)


def test_accuracy_is_measured_on_held_out_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    train, held_out = data(0), data(1, flip=True)  # labels flipped: training accuracy cannot leak in
    trainer = GrowthTrainer(model, train, held_out, optimizer_factory=lambda p: torch.optim.Adam(p, lr=0.05))
    history = trainer.fit(5)
    model.eval()
    assert history.series("accuracy")[-1] == pytest.approx(accuracy(model, held_out))
    assert accuracy(model, train) > 0.8 > history.series("accuracy")[-1]
    assert len(history) == 5 and history.epochs[-1]["layers"]["1"]["summary"]["samples"] == 256


def widen(model, extra):
    """fc1 -> ReLU -> fc2 with `extra` more hidden units; new outgoing weights 0 keep the function."""
    fc1, fc2 = model[0], model[2]
    hidden = fc1.out_features
    grown = nn.Sequential(nn.Linear(fc1.in_features, hidden + extra), nn.ReLU(), nn.Linear(hidden + extra, 2))
    with torch.no_grad():
        grown[0].weight[:hidden] = fc1.weight
        grown[0].bias[:hidden] = fc1.bias
        grown[2].weight.zero_()
        grown[2].weight[:, :hidden] = fc2.weight
        grown[2].bias.copy_(fc2.bias)
    index = torch.cat([torch.arange(hidden), torch.full((extra,), -1)])
    return grown, {0: {0: index}, 1: {0: index}, 2: {1: index}}


def test_callback_grows_the_model_and_carries_optimizer_state():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    seen = {}

    def on_epoch_end(epoch, tracker):
        if epoch == 0:
            seen["old"] = trainer.optimizer.state[trainer.model[0].weight]["exp_avg"].clone()
            seen["dead"] = tracker.dead_neurons()
            return widen(trainer.model, 3)
        return None

    trainer = GrowthTrainer(model, data(0), data(1), on_epoch_end=on_epoch_end)
    trainer.fit(1)
    assert trainer.changes == 1 and trainer.model[0].out_features == 9 and "1" in seen["dead"]
    carried = trainer.optimizer.state[trainer.model[0].weight]["exp_avg"]
    torch.testing.assert_close(carried[:6], seen["old"], rtol=0, atol=0)
    assert (carried[6:] == 0).all()
    trainer.fit(1)  # keeps training the grown model
    widths = [epoch["layers"]["1"]["width"] for epoch in trainer.history.epochs]
    assert widths == [6, 9]
    assert trainer.history.series("parameters") == [4 * 6 + 6 + 6 * 2 + 2, 4 * 9 + 9 + 9 * 2 + 2]
