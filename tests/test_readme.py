"""The README's examples are real: its specs check and its quick start names commands that exist."""
import re
import subprocess
import sys
from pathlib import Path

import netevo_dsl as ne
from netevo_dsl.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_specs_check():
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", README, re.S | re.M)
    specs = [b for lang, b in blocks if lang == "" and ("network" in b or "genome" in b)]
    assert len(specs) >= 2
    for text in specs:
        ne.check(ne.parse(text))


def test_quick_start_is_two_commands_that_exist():
    """The README opens with two commands (install and run the main job; install and run the tests), each
    pinning the torch version so pip never swaps in a CUDA build; the network search follows in the text."""
    quick = re.search(r"^```bash\n(.*?)^```", README, re.S | re.M).group(1).strip().splitlines()
    assert len(quick) == 2
    assert all(line.startswith("pip install torch==") for line in quick)
    assert "netevo evolve specs/" in quick[0] and "pytest" in quick[1]
    assert README.index("--index-url https://download.pytorch.org/whl/cpu") < README.index("```bash")
    spec = quick[0].split("netevo evolve ")[1].split()[0]
    assert (ROOT / spec).exists()
    from netevo_dsl.ir import nodes as ir

    network_command = re.search(r"`netevo evolve (specs/\S+\.net)`", README[README.index(quick[1]):]).group(1)
    network_spec = ne.load(ROOT / network_command)
    assert network_spec.networks and network_spec.of_kind(ir.EvolveBlock)
    commands = build_parser()._subparsers._group_actions[0].choices
    for name in re.findall(r"`netevo (\w+)", README):
        assert name in commands, name


def test_ci_runs_the_readme_test_command():
    """.ci/run takes the test command from the README itself, so the two cannot drift apart."""
    quick = re.search(r"^```bash\n(.*?)^```", README, re.S | re.M).group(1).strip().splitlines()
    printed = subprocess.run([sys.executable, str(ROOT / ".ci" / "readme_command.py"), "test"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert printed == quick[1]
    assert "readme_command.py test" in (ROOT / ".ci" / "run").read_text()


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    """Every ```python block runs as written, in order, from a folder where `specs/` is the repository's."""
    snippets = re.findall(r"^```python\n(.*?)^```", README, re.S | re.M)
    assert len(snippets) >= 3
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    monkeypatch.chdir(tmp_path)
    for code in snippets:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "runs" / "xor-api" / "report.md").exists()
