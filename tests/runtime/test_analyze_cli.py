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
