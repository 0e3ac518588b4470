"""Training candidate networks: batched group training equals training each candidate alone.

Outside definitions: a plain PyTorch training loop (torch.optim on one compiled module, minibatches
from torch.randperm with the candidate's seed) is the oracle for one candidate; the batched path
(stacked parameters, vmap, one optimizer on the stack) must reproduce it in float64.
"""
import os

import pytest
import torch
import torch.nn.functional as F

import netevo_dsl as ne
from netevo_dsl.errors import NetevoError
from netevo_dsl.runtime.datasets import load_training_data
from netevo_dsl.runtime.train_networks import (Candidate, TrainConfig, plan_training_groups, build_model,
                                               score_candidates, train_candidates)
from netevo_dsl.runtime.weights_io import load_weights, save_weights

SPECS = os.path.join(os.path.dirname(__file__), "..", "..", "specs")
CNN = """version 1
network cnn {
  input img: [B, 1, 8, 8]
  c1 = img |> conv2d(out=4, k=3, pad="same") |> batchnorm2d() |> relu() |> maxpool2d(k=2)
  flat = flatten(c1)
  output logits = linear(flat, out=10)
}
"""


@pytest.fixture(scope="module")
def mlp():
    return ne.load(os.path.join(SPECS, "digits_mlp.net"))


@pytest.fixture(scope="module")
def digits():
    return load_training_data("digits", {}, (64,), seed=0, dtype=torch.float64)


def _reference(spec, network, seed, data, cfg, state=None):
    """Plain PyTorch: one module, one optimizer, the candidate's own minibatch order."""
    torch.manual_seed(seed)
    model = ne.compile_module(spec, network, dtype=torch.float64)
    if state is not None:
        model.load_state_dict(state)
    opt = getattr(torch.optim, cfg.optimizer)(model.parameters(), **dict(cfg.optimizer_args))
    sched = getattr(torch.optim.lr_scheduler, cfg.scheduler)(opt, **dict(cfg.scheduler_args)) if cfg.scheduler else None
    gen = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    batches = []
    while len(batches) < cfg.total_steps(n):
        batches += list(torch.randperm(n, generator=gen).split(cfg.batch_size))
    model.train()
    for idx in batches[:cfg.total_steps(n)]:
        opt.zero_grad()
        F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        opt.step()
        if sched:
            sched.step()
    return model, opt


CONFIGS = [
    TrainConfig(epochs=0.5, batch_size=100, optimizer="SGD", optimizer_args=(("lr", 0.05), ("momentum", 0.9),
                                                                             ("nesterov", True))),
    TrainConfig(steps=15, batch_size=64, optimizer="Adam", optimizer_args=(("lr", 0.01),), scheduler="StepLR",
                scheduler_args=(("step_size", 4), ("gamma", 0.5))),
    TrainConfig(steps=12, batch_size=128, optimizer="AdamW", optimizer_args=(("lr", 0.01), ("weight_decay", 0.1)),
                scheduler="CosineAnnealingLR", scheduler_args=(("T_max", 12),)),
    TrainConfig(steps=10, batch_size=64, optimizer="RMSprop", optimizer_args=(("lr", 0.001), ("centered", True))),
    TrainConfig(steps=10, batch_size=64, optimizer="Adagrad", optimizer_args=(("lr", 0.05),)),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.optimizer for c in CONFIGS])
def test_batched_group_equals_each_candidate_alone(cfg, mlp, digits):
    cands = [Candidate(mlp, "digits_mlp", seed=s) for s in (0, 1, 5)]
    models = [build_model(c, torch.float64) for c in cands]
    assert plan_training_groups(cands, models, cfg) == [[0, 1, 2]]  # one stacked group
    batched = train_candidates(cands, digits, cfg, dtype=torch.float64)
    for c, got in zip(cands, batched):
        model, opt = _reference(mlp, "digits_mlp", c.seed, digits, cfg)
        for k, v in model.state_dict().items():
            torch.testing.assert_close(got.state[k], v, rtol=0, atol=1e-12)
        ref_state = opt.state_dict()["state"]
        assert set(got.opt_state["state"]) == set(ref_state)
        for i, entry in ref_state.items():
            for key, value in entry.items():
                torch.testing.assert_close(got.opt_state["state"][i][key], value, rtol=0, atol=1e-12)
        acc, loss = score_candidates([Candidate(mlp, "digits_mlp", state=got.state)], digits.x_val, digits.y_val,
                                     dtype=torch.float64)[0]
        with torch.no_grad():
            ref_loss = F.cross_entropy(model.eval()(digits.x_val), digits.y_val).item()
            ref_acc = (model(digits.x_val).argmax(-1) == digits.y_val).double().mean().item()
        assert got.val_accuracy == acc == ref_acc and got.val_loss == pytest.approx(ref_loss, abs=1e-12)
        assert got.steps == cfg.total_steps(len(digits.y_train))


def test_mixed_population_groups_and_carries_optimizer_state(mlp, digits):
    """Two widths, two groups; a second round continues from the weights and Adam moments exactly."""
    wide = ne.parse(ne.format(mlp).replace("param hidden: int = 128", "param hidden: int = 32"))
    cfg = TrainConfig(steps=6, batch_size=64, optimizer="Adam", optimizer_args=(("lr", 0.01),))
    cands = [Candidate(mlp, "digits_mlp", seed=0), Candidate(wide, "digits_mlp", seed=1),
             Candidate(mlp, "digits_mlp", seed=2), Candidate(wide, "digits_mlp", seed=3)]
    first = train_candidates(cands, digits, cfg, dtype=torch.float64)
    second = [Candidate(c.spec, c.network, t.state, t.opt_state, seed=c.seed + 10) for c, t in zip(cands, first)]
    models = [build_model(c, torch.float64) for c in second]
    assert sorted(plan_training_groups(second, models, cfg)) == [[0, 2], [1, 3]]
    batched = train_candidates(second, digits, cfg, dtype=torch.float64)
    alone = train_candidates(second, digits, cfg, dtype=torch.float64, batched=False)
    # alone, with torch's own optimizer.load_state_dict: Adam's step count continues at 6
    assert all(float(a.opt_state["state"][0]["step"]) == 12 for a in alone)
    for b, a in zip(batched, alone):
        for k in a.state:
            torch.testing.assert_close(b.state[k], a.state[k], rtol=0, atol=1e-12)
        assert b.val_accuracy == a.val_accuracy and b.train_loss == pytest.approx(a.train_loss, abs=1e-12)
    # a fresh optimizer instead of the carried state gives other weights: the state mattered
    fresh = train_candidates([attrs_evolve(second[0], opt_state=None)], digits, cfg, dtype=torch.float64)[0]
    assert not torch.allclose(fresh.state["h1.0.weight" if "h1.0.weight" in fresh.state else next(iter(fresh.state))],
                              batched[0].state[next(iter(fresh.state))])


def attrs_evolve(c, **kw):
    import attrs

    return attrs.evolve(c, **kw)


def test_cnn_with_batchnorm_and_masks_train_batched_exactly():
    data = load_training_data("digits", {}, (1, 8, 8), seed=1, dtype=torch.float64)
    spec = ne.parse(CNN)
    cfg = TrainConfig(steps=8, batch_size=32, optimizer="SGD", optimizer_args=(("lr", 0.1), ("momentum", 0.5)))
    cands = [Candidate(spec, "cnn", seed=s) for s in range(3)]
    batched = train_candidates(cands, data, cfg, dtype=torch.float64)
    alone = train_candidates(cands, data, cfg, dtype=torch.float64, batched=False)
    for b, a in zip(batched, alone):
        assert any("running_mean" in k for k in b.state)
        for k in a.state:
            torch.testing.assert_close(b.state[k], a.state[k], rtol=0, atol=1e-12)
    sparse = ne.load(os.path.join(SPECS, "sparse_mlp.net"))
    digits = load_training_data("digits", {}, (64,), seed=0, dtype=torch.float64)
    cands = [Candidate(sparse, "sparse_mlp", seed=s) for s in range(2)]
    batched = train_candidates(cands, digits, cfg, dtype=torch.float64)
    alone = train_candidates(cands, digits, cfg, dtype=torch.float64, batched=False)
    for b, a in zip(batched, alone):
        for k in a.state:
            torch.testing.assert_close(b.state[k], a.state[k], rtol=0, atol=1e-12)


def test_non_elementwise_optimizer_and_dropout_train_one_by_one(mlp, digits):
    cfg = TrainConfig(steps=3, batch_size=256, optimizer="LBFGS", optimizer_args=(("lr", 0.5), ("max_iter", 4)))
    cands = [Candidate(mlp, "digits_mlp", seed=s) for s in range(2)]
    models = [build_model(c, torch.float64) for c in cands]
    assert plan_training_groups(cands, models, cfg) == [[0], [1]]
    out = train_candidates(cands, digits, cfg, dtype=torch.float64)
    assert all(t.val_accuracy > 0.5 for t in out)
    drop = ne.parse(ne.format(mlp).replace("|> relu()\n  h2", "|> relu() |> dropout(p=0.2)\n  h2"))
    cands = [Candidate(drop, "digits_mlp", seed=s) for s in range(2)]
    models = [build_model(c, torch.float64) for c in cands]
    assert plan_training_groups(cands, models, CONFIGS[1]) == [[0], [1]]


def test_float32_batched_is_bitwise_training_alone(mlp):
    """Not only close: the same bits, so a search's selections cannot depend on how candidates were grouped
    (observed with torch's default optimizer implementation; fused kernels would break it, see make_optimizer)."""
    data = load_training_data("digits", {}, (64,), seed=0)
    cfg = TrainConfig(steps=12, batch_size=64, optimizer="Adam", optimizer_args=(("lr", 0.01),))
    cands = [Candidate(mlp, "digits_mlp", seed=s) for s in range(3)]
    for b, a in zip(train_candidates(cands, data, cfg), train_candidates(cands, data, cfg, batched=False)):
        assert all(torch.equal(b.state[k], a.state[k]) for k in a.state)
        assert (b.val_accuracy, b.val_loss, b.train_loss) == (a.val_accuracy, a.val_loss, a.train_loss)


def test_seed_alone_decides_the_result(mlp, digits):
    cfg = CONFIGS[1]
    a = train_candidates([Candidate(mlp, "digits_mlp", seed=4)], digits, cfg, dtype=torch.float64)[0]
    torch.manual_seed(123)  # the global RNG does not matter
    b = train_candidates([Candidate(mlp, "digits_mlp", seed=9), Candidate(mlp, "digits_mlp", seed=4)], digits, cfg,
                         dtype=torch.float64)[1]
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)


def test_bad_configs_are_errors(mlp, digits):
    cand = [Candidate(mlp, "digits_mlp")]
    for cfg in (TrainConfig(optimizer="Adamm"), TrainConfig(scheduler="ReduceLROnPlateau"),
                TrainConfig(epochs=None), TrainConfig(steps=0), TrainConfig(epochs=-1.0),
                TrainConfig(optimizer_args=(("lrr", 1),)), TrainConfig(scheduler="StepLR")):
        with pytest.raises(NetevoError) as info:
            train_candidates(cand, digits, cfg)
        assert info.value.code == "E132"
    iris = load_training_data("iris", {}, (4,))
    with pytest.raises(NetevoError) as info:
        train_candidates(cand, iris, TrainConfig())
    assert info.value.code == "E132"


def test_weights_files_round_trip_and_refuse_pickles(mlp, digits, tmp_path):
    t = train_candidates([Candidate(mlp, "digits_mlp")], digits, TrainConfig(steps=2), dtype=torch.float64)[0]
    save_weights(tmp_path / "w.pt", t.state, t.opt_state)
    state, opt_state = load_weights(tmp_path / "w.pt")
    assert all(torch.equal(state[k], t.state[k]) for k in t.state)
    assert opt_state["param_groups"] == t.opt_state["param_groups"]
    assert torch.equal(opt_state["state"][0]["exp_avg"], t.opt_state["state"][0]["exp_avg"])

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"format": "netevo-weights-1", "state": {}, "opt_state": Evil()}, tmp_path / "evil.pt")
    for path in (tmp_path / "evil.pt", tmp_path / "missing.pt"):
        with pytest.raises(NetevoError) as info:
            load_weights(path)
        assert info.value.code == "E133"
    assert not (tmp_path / "pwned").exists()
