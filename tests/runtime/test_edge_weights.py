"""Per-edge weights (`edge a -> b w=0.3`): parse/print, validation, compile, emit and evaluate.

The judge is a forward written out by hand below in float64 from the semantics in docs/language.md
(a node is act(sum of w_e * source), w_e the edge's own weight or the shared w) and the activation
formulas documented in ops/activations.py (after Gaier & Ha 2019): sin(x) = sin(pi x),
gauss(x) = exp(-x^2 / 2), tanh, linear = identity.
"""
import math
import subprocess
import sys

import attrs
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netevo_dsl as ne
from netevo_dsl.compiler.wann import CompiledWann, emit_wann_source
from netevo_dsl.errors import NetevoError
from netevo_dsl.ir import nodes as ir
from netevo_dsl.evolve.mutations.engine import mutate_genome
from netevo_dsl.ir.wann import validate_genome
from netevo_dsl.runtime.evaluate import evaluate
from netevo_dsl.runtime.reference import reference_evaluate, reference_forward
from netevo_dsl.runtime.tasks import make_task
from netevo_dsl.testing.wann_strategies import wann_genomes

F64 = torch.float64

HAND = """genome hand: wann {
  inputs x1, x2, bias
  outputs y: tanh, z: linear
  weights {-1.5, 0.5, 2}
  node h: sin
  node k: gauss
  edge x1 -> h w=0.3
  edge bias -> h
  edge h -> k w=-1.25
  edge x2 -> k
  edge k -> y
  edge h -> y w=2e-1
  edge x1 -> y w=7 [disabled]
  edge x2 -> z w=-0.5
  edge bias -> z w=1
}
"""


def hand_forward(x: torch.Tensor, w: float) -> torch.Tensor:
    """HAND written out: [B, 2] observations -> [B, 2] outputs (y, z) at shared weight w."""
    x1, x2 = x[:, 0], x[:, 1]
    h = torch.sin(math.pi * (0.3 * x1 + w * 1.0))
    u = -1.25 * h + w * x2
    k = torch.exp(-u * u / 2.0)
    y = torch.tanh(w * k + 0.2 * h)  # the disabled x1 -> y (w=7) is left out
    z = -0.5 * x2 + 1.0 * 1.0
    return torch.stack([y, z], -1)


def hand_genome():
    return ne.parse(HAND).items[0]


def observations(n=64, seed=0):
    return torch.randn(n, 2, dtype=F64, generator=torch.Generator().manual_seed(seed)) * 2


def test_parse_gives_the_weights_and_the_printer_writes_them_back():
    g = hand_genome()
    assert [e.weight for e in g.edges] == [0.3, None, -1.25, None, None, 0.2, 7.0, -0.5, 1.0]
    assert not g.edges[6].enabled and g.edges[6].weight == 7.0
    text = ne.format(ne.parse(HAND))
    assert "edge x1 -> h w=0.3\n" in text and "edge x1 -> y w=7.0 [disabled]\n" in text
    assert "edge h -> y w=0.2\n" in text and "edge bias -> h\n" in text
    assert ne.parse(text) == ne.parse(HAND) and ne.format(ne.parse(text)) == text  # fmt is stable


def test_w_stays_a_name_and_spaces_around_the_equals_sign_are_allowed():
    text = ("genome g: wann {\n  inputs w, bias\n  outputs y: tanh\n  node v: relu\n  edge w -> v w = -1.5e-3\n"
            "  edge w -> y\n  edge v -> y w=.5\n  w 3\n}\n")
    g = ne.parse(text).items[0]
    assert [(e.src, e.dst, e.weight) for e in g.edges] == [("w", "v", -0.0015), ("w", "y", None), ("v", "y", 0.5)]
    assert g.settings[0].key == "w" and validate_genome(g) == []
    assert ne.parse(ne.format(ne.parse(text))) == ne.parse(text)


@pytest.mark.parametrize("w", [-1.5, 0.5, 2.0])
def test_compiled_reference_and_emitted_forward_equal_the_hand_written_one(w):
    g, x = hand_genome(), observations()
    expected = hand_forward(x, w)
    compiled = CompiledWann(g, dtype=F64)(x, [w])[0]
    torch.testing.assert_close(compiled, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(reference_forward(g, x, w), expected, rtol=1e-12, atol=1e-12)
    source = emit_wann_source(g)
    assert "h = sin(0.3 * x1 + w * bias)" in source and "y = tanh(w * k + 0.2 * h)" in source
    assert "z = linear(-0.5 * x2 + 1.0 * bias)" in source and "k = gauss(-1.25 * h + w * x2)" in source
    namespace = {}
    exec(compile(source, "hand.py", "exec"), namespace)  # a fresh namespace: the file stands alone
    emitted = namespace["Hand"]()(x, [w])[0]
    torch.testing.assert_close(emitted, expected, rtol=1e-12, atol=1e-12)


def test_all_shared_weights_at_once_and_the_default_ones():
    g, x = hand_genome(), observations()
    out = CompiledWann(g, dtype=F64)(x)  # the genome's `weights {-1.5, 0.5, 2}`
    assert out.shape == (3, 64, 2)
    for k, w in enumerate((-1.5, 0.5, 2.0)):
        torch.testing.assert_close(out[k], hand_forward(x, w), rtol=1e-12, atol=1e-12)


def test_edge_weight_tensors_are_batched_and_differentiable():
    g, x = hand_genome(), observations(16)
    module = CompiledWann(g, dtype=F64)
    # level by level (h and z depend on inputs only), each node's edges in declaration order
    assert module.edge_keys == [("x1", "h"), ("bias", "h"), ("x2", "z"), ("bias", "z"), ("h", "k"), ("x2", "k"),
                                ("k", "y"), ("h", "y")]
    # edge_weights_at(w) puts w on the edges without a weight: the same outputs as the shared-w call
    at = module.edge_weights_at(0.5)
    assert at.tolist() == [0.3, 0.5, -0.5, 1.0, -1.25, 0.5, 0.5, 0.2]
    torch.testing.assert_close(module(x, edge_weights=at)[0], hand_forward(x, 0.5), rtol=1e-12, atol=1e-12)
    # N vectors at once equal N calls; x may be one batch per vector
    vectors = torch.randn(4, 8, dtype=F64, generator=torch.Generator().manual_seed(1))
    xs = torch.randn(4, 16, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    batched = module(xs, edge_weights=vectors)
    for n in range(4):
        torch.testing.assert_close(batched[n], module(xs[n], edge_weights=vectors[n])[0], rtol=1e-12, atol=1e-12)
    # gradients against finite differences (torch.autograd.gradcheck, float64)
    assert torch.autograd.gradcheck(lambda v: module(x, edge_weights=v), (vectors[:2].clone().requires_grad_(),))
    with pytest.raises(ValueError):
        module(x, edge_weights=torch.zeros(3, dtype=F64))


def test_genomes_without_edge_weights_keep_the_shared_weight_computation_bit_for_bit():
    # f(w * sum): the unweighted path is untouched; an explicit w on every edge agrees within rounding
    g = ne.parse(HAND.replace(" w=0.3", "").replace(" w=-1.25", "").replace(" w=2e-1", "").replace(" w=7", "")
                 .replace(" w=-0.5", "").replace(" w=1", "")).items[0]
    assert all(e.weight is None for e in g.edges)
    x = observations()
    module = CompiledWann(g, dtype=F64)
    shared = module(x, [0.5])
    x1, x2 = x[:, 0], x[:, 1]
    h = torch.sin(math.pi * (0.5 * (x1 + 1.0)))
    u = 0.5 * (h + x2)
    expected = torch.stack([torch.tanh(0.5 * (torch.exp(-u * u / 2.0) + h)), 0.5 * (x2 + 1.0)], -1)
    assert torch.equal(shared[0], expected)  # bitwise: the same operations in the same order
    explicit = attrs.evolve(g, edges=tuple(attrs.evolve(e, weight=0.5) for e in g.edges))
    torch.testing.assert_close(CompiledWann(explicit, dtype=F64)(x, [0.5]), shared, rtol=1e-12, atol=1e-12)


def test_evaluate_scores_a_weighted_genome_as_the_hand_written_forward_does_on_xor():
    g = hand_genome()
    scores = evaluate([g], "xor", [0.5, 2.0], dtype=F64, device="cpu")
    task = make_task("xor")  # a fresh one: the same first minibatch (xor's 400 training rows, all of them)
    mask = task.next_batch_mask()
    for k, w in enumerate((0.5, 2.0)):
        logits = hand_forward(task.features, w)
        logp = torch.log_softmax(logits, -1).gather(1, task.labels[:, None])[:, 0]
        # the reward: minus the mean cross-entropy over the minibatch (docs/tasks.md)
        assert scores.per_weight[0, k].item() == pytest.approx(logp[mask].mean().item(), abs=1e-12)
        correct = (logits.argmax(1) == task.labels).to(F64)
        assert scores.metrics["train_accuracy"][0, k].item() == pytest.approx(correct[: task.n_train].mean().item())
        assert scores.metrics["test_accuracy"][0, k].item() == pytest.approx(correct[task.n_train:].mean().item())


def test_evaluate_control_equals_a_rollout_of_the_hand_written_policy():
    text = ("genome pole: wann {\n  inputs x, v, c, s, dtheta, bias\n  outputs force: tanh\n  node h: relu\n"
            "  edge s -> h w=-2.5\n  edge dtheta -> h\n  edge h -> force w=1.5\n  edge x -> force\n"
            "  edge c -> force w=0.25\n}\n")
    g = ne.parse(text).items[0]
    task = ("swingup", {"repeats": 3, "max_steps": 40})
    scores = evaluate([g, g], task, [-1.0, 0.5], dtype=F64, device="cpu")

    def policy(obs):  # [1, W, R, 5] -> [1, W, R, 1], the genome written out
        w = torch.tensor([-1.0, 0.5], dtype=F64).view(1, 2, 1)
        x, c, s, dtheta = obs[..., 0], obs[..., 2], obs[..., 3], obs[..., 4]
        h = torch.relu(-2.5 * s + w * dtheta)
        return torch.tanh(1.5 * h + w * x + 0.25 * c)[..., None]

    expected = make_task(task).rollout(policy, (1, 2), F64)
    torch.testing.assert_close(scores.per_weight, expected["reward"].expand(2, 2), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(scores.metrics["episode_reward"][0], expected["episode_reward"][0])


def _weighted(genome, data):
    own = data.draw(st.lists(st.one_of(st.none(), st.floats(-3, 3, allow_nan=False)), min_size=len(genome.edges),
                             max_size=len(genome.edges)))
    return attrs.evolve(genome, edges=tuple(attrs.evolve(e, weight=v) for e, v in zip(genome.edges, own)))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a loaded CI machine
@given(data=st.data())
def test_batched_evaluate_with_weighted_genomes_equals_the_reference(data):
    # mixed populations: weighted genomes go their own path, the rest the packed one, rows kept
    population = [_weighted(g, data) if data.draw(st.booleans()) else g
                  for g in data.draw(st.lists(wann_genomes(n_inputs=4, n_outputs=3, max_edges=14), min_size=1,
                                              max_size=4))]
    for task in (("iris", {"batch_size": 50}), ):
        batched = evaluate(population, task, dtype=F64, device="cpu")
        reference = reference_evaluate(population, task, dtype=F64, device="cpu")
        assert batched.failures == reference.failures
        torch.testing.assert_close(batched.per_weight, reference.per_weight, rtol=1e-9, atol=1e-9, equal_nan=True)
        for name, value in batched.metrics.items():
            torch.testing.assert_close(value, reference.metrics[name], rtol=1e-9, atol=1e-9, equal_nan=True)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_batched_control_with_weighted_genomes_equals_the_reference(data):
    population = [_weighted(g, data) for g in data.draw(st.lists(wann_genomes(n_inputs=4, n_outputs=1, max_edges=10),
                                                                 min_size=1, max_size=3))]
    task = ("cartpole", {"repeats": 2, "max_steps": 6})
    batched = evaluate(population, task, dtype=F64, device="cpu")
    reference = reference_evaluate(population, task, dtype=F64, device="cpu")
    assert batched.failures == reference.failures
    torch.testing.assert_close(batched.per_weight, reference.per_weight, rtol=1e-7, atol=1e-7, equal_nan=True)


def test_mutations_keep_the_weights_of_existing_edges_and_new_edges_have_none():
    g = hand_genome()
    own = {(e.src, e.dst): e.weight for e in g.edges}
    for seed in range(40):
        child = mutate_genome(g, seed)
        assert validate_genome(child) == []
        fresh = {n.name for n in child.nodes} - {n.name for n in g.nodes}
        for e in child.edges:
            if (e.src, e.dst) in own:
                assert e.weight == own[(e.src, e.dst)]
            elif e.dst in fresh:  # add_node's edge into the new node may take over the split edge's weight
                (split,) = [d for (s, d) in own if s == e.src and (e.dst, d) in {(x.src, x.dst) for x in child.edges}]
                assert e.weight in (None, own[(e.src, split)])
            else:
                assert e.weight is None  # add_edge's edge, add_node's edge out of the new node
        spec = ir.Spec((child,))
        assert ne.parse(ne.format(spec)) == spec  # still prints and parses back


@pytest.mark.parametrize("edit,where", [
    ("edge x1 -> h w=1e999", (7, 16)),   # not finite: the parser, at `w=`
    ("edge x1 -> h w=-2e6", (7, 3)),     # beyond the limit: validate_genome, located at the edge
])
def test_bad_weights_are_located_errors_with_code_e193(edit, where, tmp_path):
    text = HAND.replace("edge x1 -> h w=0.3", edit)
    with pytest.raises(NetevoError) as info:
        ne.check(ne.parse(text, path="bad.net"))
    error = info.value
    assert error.code == "E193" and (error.span.line, error.span.col) == where
    path = tmp_path / "bad.net"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "netevo_dsl.cli", "check", str(path)], capture_output=True,
                          text=True)
    assert done.returncode != 0 and "E193" in done.stderr + done.stdout and "Traceback" not in done.stderr
