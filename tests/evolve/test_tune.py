"""`netevo tune`: the paper's weight-tuning step (Gaier & Ha 2019, sec. 4) improves a champion, and the
tuned spec it writes re-evaluates to the numbers it reports.

The expected behaviour comes from outside netevo: on iris, a softmax-linear model (every input wired
to every class) reaches well over 90% accuracy once its weights are fitted (multinomial logistic
regression, sklearn's textbook example), while one shared weight cannot tell the classes apart (every
output receives the same sum, so all logits are equal: 1/3 accuracy).
"""
import json
import subprocess
import sys

import pytest
import torch

import netevo_dsl as ne
from netevo_dsl.errors import NetevoError
from netevo_dsl.evolve.tune import EVAL_DRAW, TuneBudget, tune
from netevo_dsl.runtime.evaluate import evaluate
from netevo_dsl.runtime.tasks import make_task

F64 = torch.float64
IRIS = """genome flower: wann {
  inputs sl, sw, pl, pw, bias
  outputs setosa: linear, versicolor: linear, virginica: linear
%s
}
""" % "\n".join(f"  edge {i} -> {o}" for i in ("sl", "sw", "pl", "pw", "bias")
                for o in ("setosa", "versicolor", "virginica"))

SWINGUP = """genome pole: wann {
  inputs x, x_dot, cos_theta, sin_theta, theta_dot, bias
  outputs force: tanh
  node h: sin
  edge sin_theta -> h
  edge theta_dot -> h
  edge h -> force
  edge x -> force
  edge x_dot -> force
  edge cos_theta -> force
}
"""


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "netevo_dsl.cli", *args], capture_output=True, text=True)


def test_cli_tunes_a_linear_iris_genome_and_the_spec_re_evaluates_to_the_report(tmp_path):
    spec = tmp_path / "flower.net"
    spec.write_text(IRIS)
    done = _cli("tune", str(spec), "--task", "iris", "--iterations", "40", "--lr", "0.1", "-o", str(tmp_path / "t"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "t" / "report.json").read_text())
    before, after = report["before"], report["after"]
    assert before["train_accuracy"] == pytest.approx(1 / 3, abs=0.02)  # equal logits: one class always wins
    assert after["train_accuracy"] > 0.9 and after["test_accuracy"] > 0.85
    assert after["test_reward"] > before["test_reward"] + 0.3
    # the tuned spec: checks, carries w= on every enabled edge, and scores what the report says
    assert _cli("check", str(tmp_path / "t" / "tuned.net")).returncode == 0
    tuned = ne.load(tmp_path / "t" / "tuned.net").items[0]
    assert all(e.weight is not None for e in tuned.edges if e.enabled) and len(tuned.edges) == 15
    scores = evaluate([tuned], "iris", [report["best_shared_weight"]], dtype=F64, device="cpu")
    assert scores.metrics["train_accuracy"][0, 0].item() == pytest.approx(after["train_accuracy"], abs=1e-9)
    assert scores.metrics["test_accuracy"][0, 0].item() == pytest.approx(after["test_accuracy"], abs=1e-9)
    assert "| tuned weights |" in (tmp_path / "t" / "report.md").read_text()


def test_the_evolution_strategy_improves_a_swingup_genome_on_held_out_episodes():
    genome = ne.parse(SWINGUP).items[0]
    params = {"max_steps": 150, "repeats": 2}
    budget = TuneBudget(iterations=12, population=16, episodes=2, lr=0.05)
    result = tune(genome, "swingup", params, budget=budget, seed=3)
    assert result.iterations == 12 and len(result.history) == 12
    assert result.after["mean_reward"] > result.before["mean_reward"]
    # re-evaluating the tuned genome on the held-out draw (100 fresh episodes) gives the reported mean
    held_out = make_task(("swingup", {**params, "repeats": 100}))
    held_out.start_generation(0, EVAL_DRAW)
    scores = evaluate([result.genome], held_out, [result.best_weight], dtype=F64, device="cpu")
    episodes = scores.metrics["episode_reward"][0, 0]
    assert episodes.mean().item() == pytest.approx(result.after["mean_reward"], abs=1e-8)
    assert episodes.std(correction=0).item() == pytest.approx(result.after["std_reward"], abs=1e-8)
    # seeded: the same call gives the same weights
    again = tune(genome, "swingup", params, budget=budget, seed=3)
    assert again.genome == result.genome


def test_the_cpu_seconds_cap_stops_after_the_first_step_that_passes_it():
    genome = ne.parse(IRIS).items[0]
    result = tune(genome, "iris", budget=TuneBudget(iterations=50, cpu_seconds=1e-6))
    assert result.iterations == 1 and len(result.history) == 1


def test_a_run_folder_is_tuned_from_its_champion_and_config(tmp_path):
    run = tmp_path / "run"
    done = _cli("evolve", "specs/wann_xor.net", "--out", str(run), "--generations", "2", "--population", "8",
                "--no-progress")
    assert done.returncode == 0, done.stderr
    done = _cli("tune", str(run), "--iterations", "3")
    assert done.returncode == 0, done.stderr
    report = json.loads((run / "tune" / "report.json").read_text())
    assert report["task"] == "xor" and report["task_params"] == {"outputs": 1}
    assert report["iterations"] == 3 and (run / "tune" / "tuned.net").exists()


@pytest.mark.parametrize("args,code", [
    (["tune", "nowhere_dir_or_file.net"], "E010"),
    (["tune", "specs/wann_swingup.net", "--task", "iris"], "E195"),
    (["tune", "specs/wann_swingup.net", "--population", "3"], "E196"),
    (["tune", "specs/wann_swingup.net", "--iterations", "0"], "E196"),
    (["tune", "specs/resnet18.net"], "E194"),
])
def test_errors_exit_non_zero_with_their_code_and_no_traceback(args, code):
    done = _cli(*args)
    assert done.returncode == 1 and f"error[{code}]" in done.stderr and "Traceback" not in done.stderr


def test_a_folder_that_is_no_run_is_an_error(tmp_path):
    with pytest.raises(NetevoError) as info:
        from netevo_dsl.evolve.tune_cli import load_champion

        load_champion(tmp_path)
    assert info.value.code == "E194"
