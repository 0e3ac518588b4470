"""Analysis of transformer (WANN-GPT) genomes: each number checked against an independent computation."""
import math
from pathlib import Path

import pytest
import torch

from netevo_dsl.cli import main
from netevo_dsl.compiler.transformer import compile_transformer
from netevo_dsl.errors import UsageError
from netevo_dsl.grammar.parser import parse
from netevo_dsl.runtime import analysis_transformer
from netevo_dsl.runtime.analysis_transformer import ablation, compare, ensemble_evaluation, weight_sensitivity
from netevo_dsl.runtime.evaluate_transformer import evaluate_transformers
from netevo_dsl.runtime.tasks import make_task
from netevo_dsl.runtime.tasks.sequence import IGNORE

ROOT = Path(__file__).resolve().parents[2]
F64 = torch.float64
RANDOM = "random(density=0.6, seed=5)"
TWO_LAYERS = ("heads 2 ffn 8 activation tanh", "heads 2 ffn 8 activation gelu attention off")
SMALL_MAJORITY = "majority(length=9, samples=16)"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def task():
    """copy on 3 symbols: vocab 4, six positions of which three are graded, so accuracies vary."""
    return make_task(("copy", {"symbols": 3, "length": 3, "samples": 24}))


def gpt(layers=TWO_LAYERS, mask=RANDOM, vocab=4, name="g"):
    """A small transformer genome, written in the DSL."""
    body = "\n".join(f"  layer {{ {layer} }}" for layer in layers)
    text = (f"genome {name}: transformer {{\n  vocab {vocab}\n  context 8\n  embed 8\n"
            f"  weights {{-1.7, -0.3, 0.45, 2.2}}\n  masks {mask}\n{body}\n}}\n")
    return parse(text).genomes[0]


def by_name(parts):
    return {(a.kind, a.name): a for a in parts}


def mean_reward(model, task, weights):
    """The ablation's summary, computed here from the model's logits and the task's scorer."""
    with torch.no_grad():
        logits = model(task.tokens, torch.tensor(weights, dtype=F64))
    return float(task.score(logits)[1]["reward"].mean())


def test_sensitivity_equals_one_evaluation_per_weight(task):
    genome, sweep = gpt(), [-2.0, -0.6, 0.3, 1.1, 2.4]
    for metric in ("reward", "token_accuracy"):
        data = weight_sensitivity(genome, task, weights=sweep, metric=metric, device="cpu")
        assert data["metric"] == metric and data["weights"] == pytest.approx(sweep)
        one_by_one = [float(evaluate_transformers([genome], task, weights=[w], device="cpu", dtype=F64)
                            .metrics[metric][0, 0]) for w in sweep]
        assert data["values"] == pytest.approx(one_by_one, rel=1e-10, abs=1e-12)
        if metric == "reward":  # a curve, not one value repeated: each entry must be its own weight's
            assert len(set(data["values"])) == len(sweep)


def test_ensemble_is_the_averaged_softmax_scored_by_hand(task, monkeypatch):
    monkeypatch.setattr(analysis_transformer, "SAMPLES_PER_PASS", 5)  # 24 samples in 5 passes, checked whole here
    genome = gpt()
    data = ensemble_evaluation(genome, task, device="cpu")
    weights = torch.tensor(data["weights"], dtype=F64)
    with torch.no_grad():
        logits = compile_transformer(genome, dtype=F64)(task.tokens, weights)  # [W, N, T, V]
    probs = torch.softmax(logits, -1).mean(0)  # [N, T, V]
    graded = task.targets != IGNORE
    right = (probs.argmax(-1) == task.targets) & graded
    assert data["ensemble"] == pytest.approx(float(right.sum().double() / graded.sum()), abs=1e-12)
    assert data["sequence_ensemble"] == pytest.approx(float((right | ~graded).all(-1).double().mean()), abs=1e-12)
    target_p = probs.gather(-1, task.targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    assert data["reward_ensemble"] == pytest.approx(float(target_p.log()[graded].mean()), rel=1e-10)
    per_weight = ((logits.argmax(-1) == task.targets) & graded).sum((-2, -1)).double() / graded.sum()
    assert data["per_weight"] == pytest.approx(per_weight.tolist(), abs=1e-12)
    assert data["best"] == max(data["per_weight"])


def test_ablating_a_head_equals_zeroing_its_output_before_the_projection(task, monkeypatch):
    monkeypatch.setattr(analysis_transformer, "SAMPLES_PER_PASS", 7)
    genome = gpt()
    base, parts = ablation(genome, task, metric="reward", device="cpu")
    parts = by_name(parts)
    model = compile_transformer(genome, dtype=F64)
    weights = [-1.7, -0.3, 0.45, 2.2]
    assert base == pytest.approx(mean_reward(model, task, weights), rel=1e-12)
    width = 8 // 2
    for head in range(2):
        def zero_head(module, args, head=head):
            y = args[0].clone()
            y[..., head * width:(head + 1) * width] = 0
            return (y, *args[1:])

        hook = model.h[0].c_proj.register_forward_pre_hook(zero_head)
        expected = mean_reward(model, task, weights)
        hook.remove()
        assert parts[("head", f"0.{head}")].value == pytest.approx(expected, rel=1e-10)
        assert parts[("head", f"0.{head}")].drop == pytest.approx(base - expected, abs=1e-10)
    assert parts[("head", "0.0")].value != pytest.approx(parts[("head", "0.1")].value)


def test_a_single_head_ablated_is_its_layer_with_attention_off(task):
    """Dense masks do not depend on their seeds, so the genome edited to `attention off` is the
    same network minus the attention sublayer, evaluated by the batched evaluator."""
    genome = gpt(layers=("heads 1 ffn 8 activation tanh", "heads 2 ffn 8 activation sin"), mask="dense()")
    edited = gpt(layers=("heads 1 ffn 8 activation tanh attention off", "heads 2 ffn 8 activation sin"),
                 mask="dense()")
    _, parts = ablation(genome, task, metric="reward", device="cpu")
    parts = by_name(parts)
    off = float(evaluate_transformers([edited], task, device="cpu", dtype=F64).metrics["reward"].mean())
    assert parts[("head", "0.0")].value == pytest.approx(off, rel=1e-9)
    assert parts[("attention", "0")].value == pytest.approx(off, rel=1e-9)


@pytest.mark.parametrize("layer,part", [(0, "attention"), (0, "mlp"), (1, "attention"), (1, "mlp")])
def test_ablating_a_sublayer_equals_the_genome_with_it_off(task, layer, part):
    layers = ["heads 2 ffn 8 activation tanh", "heads 4 ffn 4 activation gelu"]
    genome = gpt(layers=layers, mask="dense()")
    layers[layer] += f" {part} off"
    edited = gpt(layers=layers, mask="dense()")
    base, parts = ablation(genome, task, metric="reward", device="cpu")
    off = float(evaluate_transformers([edited], task, device="cpu", dtype=F64).metrics["reward"].mean())
    cut = by_name(parts)[(part, str(layer))]
    assert cut.value == pytest.approx(off, rel=1e-9)
    assert cut.drop == pytest.approx(base - off, rel=1e-9, abs=1e-12)


def test_a_sublayer_ablated_keeps_the_other_masks(task):
    """With random masks, `attention off` in the genome would re-seed every later matrix; the
    ablation equals the edited genome's model carrying the original model's masks."""
    genome = gpt(layers=("heads 2 ffn 8 activation tanh", "heads 1 ffn 8 activation silu"))
    edited = gpt(layers=("heads 2 ffn 8 activation tanh attention off", "heads 1 ffn 8 activation silu"))
    original, model = compile_transformer(genome, dtype=F64), compile_transformer(edited, dtype=F64)
    masks = original.state_dict()
    model.load_state_dict({k: masks[k] if k.endswith("mask") else v for k, v in model.state_dict().items()})
    _, parts = ablation(genome, task, metric="reward", device="cpu")
    expected = mean_reward(model, task, [-1.7, -0.3, 0.45, 2.2])
    assert by_name(parts)[("attention", "0")].value == pytest.approx(expected, rel=1e-10)


def test_heads_of_a_layer_with_attention_off_drop_nothing(task):
    base, parts = ablation(gpt(), task, metric="reward", device="cpu")
    parts = by_name(parts)
    assert parts[("head", "1.0")].drop == 0.0 and parts[("head", "1.1")].drop == 0.0
    assert parts[("attention", "1")].drop == 0.0
    assert parts[("head", "1.0")].value == base
    assert parts[("mlp", "1")].drop != 0.0 and parts[("attention", "0")].drop != 0.0


def test_compare_rows_and_failures(task):
    good, misfit = gpt(name="good"), gpt(vocab=5, name="misfit")
    rows = compare([good, misfit], task, device="cpu")
    scores = evaluate_transformers([good], task, device="cpu", dtype=F64)
    assert rows[0]["name"] == "good" and rows[0]["failure"] is None
    assert rows[0]["token_accuracy"] == pytest.approx(float(scores.metrics["token_accuracy"].mean()))
    assert rows[0]["mean"] == pytest.approx(float(scores.mean[0]))
    assert rows[0]["heads"] == 2 and rows[0]["layers"] == 2 and rows[0]["connections"] > 0
    assert "vocab" in rows[1]["failure"] and math.isnan(rows[1]["token_accuracy"])


def test_misuse_is_a_user_error_with_a_hint(task):
    with pytest.raises(UsageError, match="vocab") as caught:
        ablation(gpt(vocab=5), task, device="cpu")
    assert caught.value.hint
    with pytest.raises(UsageError, match="sequence tasks"):
        weight_sensitivity(gpt(), "cartpole", device="cpu")
    with pytest.raises(UsageError, match="f1"):
        ablation(gpt(), task, metric="f1", device="cpu")


def test_cli_analyzes_the_wann_gpt_spec(tmp_path, capsys):
    code = main(["analyze", str(ROOT / "specs" / "wann_gpt.net"), "--task", SMALL_MAJORITY, "--out", str(tmp_path),
                 "--device", "cpu"])
    assert code == 0
    for name in ("sensitivity.png", "ensemble.png", "ablation.png"):
        assert (tmp_path / name).stat().st_size > 1000
    summary = (tmp_path / "summary.md").read_text()
    assert "ensemble" in summary and "drop" in summary and "head 0 of layer 0" in summary
    assert "tinygpt: mean token_accuracy" in capsys.readouterr().out


def test_cli_compares_transformer_genomes_of_several_specs(tmp_path, capsys):
    other = tmp_path / "other.net"
    text = (ROOT / "specs" / "wann_gpt.net").read_text().replace("tinygpt", "wide").replace("heads 4", "heads 8")
    other.write_text(text)
    out = tmp_path / "out"
    code = main(["analyze", str(ROOT / "specs" / "wann_gpt.net"), str(other), "--task", SMALL_MAJORITY,
                 "--out", str(out), "--device", "cpu"])
    assert code == 0
    assert (out / "tinygpt" / "summary.md").exists() and (out / "wide" / "summary.md").exists()
    assert (out / "comparison.png").stat().st_size > 1000
    assert "head 7 of layer 0" in (out / "wide" / "summary.md").read_text()


@pytest.mark.parametrize("task_arg,message", [("majorityy", "majorityy"), ("cartpole", "sequence tasks"),
                                               ("copy", "vocab")])
def test_cli_bad_task_is_a_clean_error(tmp_path, capsys, task_arg, message):
    code = main(["analyze", str(ROOT / "specs" / "wann_gpt.net"), "--task", task_arg, "--out", str(tmp_path),
                 "--device", "cpu"])
    assert code == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
