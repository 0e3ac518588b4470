from pathlib import Path

from netevo_dsl.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_analyze_writes_plots_and_summary(tmp_path, capsys):
    code = main(["analyze", str(ROOT / "specs" / "wann_xor.net"), "--task", "xor(outputs=1)", "--out", str(tmp_path),
                 "--device", "cpu"])
    assert code == 0
    for name in ("sensitivity.png", "ensemble.png", "ablation.png"):
        assert (tmp_path / name).stat().st_size > 1000
    summary = (tmp_path / "summary.md").read_text()
    assert "ensemble" in summary and "drop" in summary
    assert "mean reward" in capsys.readouterr().out


def test_analyze_bad_task_is_a_user_error(tmp_path, capsys):
    code = main(["analyze", str(ROOT / "specs" / "wann_xor.net"), "--task", "xorr", "--out", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "xorr" in err and "Traceback" not in err


def test_analyze_takes_the_task_of_the_evolve_block_by_default(tmp_path, capsys):
    # specs/wann_xor.net evolves `xor` on `task xor(outputs=1)`: the genome's single output fits only that
    code = main(["analyze", str(ROOT / "specs" / "wann_xor.net"), "--out", str(tmp_path), "--device", "cpu"])
    assert code == 0
    assert (tmp_path / "summary.md").exists()
    assert "mean reward" in capsys.readouterr().out


def test_analyze_without_task_or_evolve_block_asks_for_one(tmp_path, capsys):
    spec = tmp_path / "g.net"
    spec.write_text("version 1\n\ngenome g: wann {\n  inputs a, b, bias\n  outputs y: tanh\n  edge a -> y\n}\n")
    code = main(["analyze", str(spec), "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "no --task given" in err and "--task" in err and "Traceback" not in err


def test_analyze_on_a_network_spec_says_there_is_no_genome(tmp_path, capsys):
    code = main(["analyze", str(ROOT / "specs" / "mlp.net"), "--out", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "no genome to analyze" in err and "Traceback" not in err
