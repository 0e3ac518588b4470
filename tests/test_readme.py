"""The README's examples are real: its specs check and its quick start names commands that exist."""
import re
from pathlib import Path

import netevo_dsl as ne
from netevo_dsl.cli import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_specs_check():
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", README, re.S | re.M)
    specs = [b for lang, b in blocks if lang == "" and ("network" in b or "genome" in b)]
    assert len(specs) >= 2
    for text in specs:
        ne.check(ne.parse(text))


def test_quick_start_is_two_commands_that_exist():
    quick = re.search(r"^```bash\n(.*?)^```", README, re.S | re.M).group(1).strip().splitlines()
    assert len(quick) == 2
    assert "netevo evolve specs/" in quick[0] and "pytest" in quick[1]
    spec = quick[0].split("netevo evolve ")[1].split()[0]
    assert (Path(__file__).resolve().parents[1] / spec).exists()
    commands = build_parser()._subparsers._group_actions[0].choices
    for name in re.findall(r"`netevo (\w+)", README):
        assert name in commands, name
