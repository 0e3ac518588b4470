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


def test_quick_start_is_three_commands_that_exist():
    """Evolve a genome, search a network's architecture (issue 12), run the tests."""
    quick = re.search(r"^```bash\n(.*?)^```", README, re.S | re.M).group(1).strip().splitlines()
    assert len(quick) == 3
    assert all("netevo evolve specs/" in line for line in quick[:2]) and "pytest" in quick[2]
    for line in quick[:2]:
        spec = line.split("netevo evolve ")[1].split()[0]
        assert (Path(__file__).resolve().parents[1] / spec).exists()
    network_spec = ne.load(Path(__file__).resolve().parents[1] / quick[1].split("netevo evolve ")[1].split()[0])
    from netevo_dsl.ir import nodes as ir

    assert network_spec.networks and network_spec.of_kind(ir.EvolveBlock)
    commands = build_parser()._subparsers._group_actions[0].choices
    for name in re.findall(r"`netevo (\w+)", README):
        assert name in commands, name
