"""A Hypothesis state machine: random mutation sequences on the shipped specs keep every invariant.

After every step: the network or genome is acyclic, `check` passes, the printer round-trips it,
it compiles on the meta device, its emitted source runs forward at a small input with the
declared output shapes, the outputs are the parent's, and the parent spec is untouched.
"""
from __future__ import annotations

from pathlib import Path

import networkx as nx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import netevo_dsl as ne
from netevo_dsl.errors import RuleError
from netevo_dsl.evolve.mutations import mutate, validate_source
from netevo_dsl.evolve.mutations.engine import rules_for, target_item
from netevo_dsl.ir import nodes as ir
from netevo_dsl.ir.hashing import canonical_hash
from netevo_dsl.ir.wann import to_networkx

SPECS = Path(__file__).resolve().parents[2] / "specs"
WITH_RULES = sorted(p.name for p in SPECS.glob("*.net") if ne.load(p).of_kind(ir.MutateBlock))


def interface(spec: ir.Spec, name: str):
    """What a mutation must not change: output shapes (networks), inputs and outputs (genomes)."""
    item = spec.find(name, (ir.Network, ir.WannGenome, ir.TransformerGenome))
    if isinstance(item, ir.Network):
        g = ne.infer_shapes(spec, name)
        return tuple((i.name, str(i.shape)) for i in g.inputs), tuple((n, str(g.shape_of(r))) for n, r in g.outputs)
    if isinstance(item, ir.WannGenome):
        return tuple(item.inputs), tuple(item.outputs)
    return tuple(s for s in item.settings if s.key in ("vocab", "context", "embed"))


def acyclic(spec: ir.Spec, name: str) -> bool:
    item = spec.find(name, (ir.Network, ir.WannGenome, ir.TransformerGenome))
    if isinstance(item, ir.Network):
        return nx.is_directed_acyclic_graph(ne.infer_shapes(spec, name).to_networkx())
    if isinstance(item, ir.WannGenome):
        return nx.is_directed_acyclic_graph(to_networkx(item, include_disabled=True))
    return True  # transformer genomes are a stack of layers


class MutationMachine(RuleBasedStateMachine):
    @initialize(path=st.sampled_from(WITH_RULES))
    def load(self, path):
        self.original = ne.load(SPECS / path)
        self.original_hash = canonical_hash(self.original)
        self.name = target_item(self.original).name
        self.interface = interface(self.original, self.name)
        self.spec = self.original
        self.rules = rules_for(self.original, target_item(self.original))

    @rule(seed=st.integers(0, 2 ** 32 - 1))
    def mutate_with_the_spec_rules(self, seed):
        try:
            self.spec, _ = mutate(self.spec, seed)
        except RuleError:
            pass  # nothing left for the rules to change

    @rule(data=st.data(), seed=st.integers(0, 2 ** 32 - 1))
    def mutate_with_one_rule(self, data, seed):
        chosen = data.draw(st.sampled_from(self.rules))
        try:
            self.spec, _ = mutate(self.spec, seed, rules=[chosen])
        except RuleError:
            pass  # this rule cannot change the current spec

    @invariant()
    def stays_valid(self):
        spec = self.spec
        assert acyclic(spec, self.name)
        ne.check(spec)
        assert ne.parse(ne.format(spec)) == spec
        ne.compile_module(spec, name=self.name, device="meta")
        validate_source(spec, self.name)  # emitted source execs; forward at a small input has the declared shapes
        assert interface(spec, self.name) == self.interface
        assert canonical_hash(self.original) == self.original_hash, "the parent is never modified"


MutationMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=4, deadline=None,
                                             suppress_health_check=[HealthCheck.too_slow])
TestMutationMachine = MutationMachine.TestCase


def test_the_examples_in_docs_testing_run():
    """docs/testing.md shows property tests written with the mutation strategies: they must pass."""
    import re

    text = (SPECS.parent / "docs" / "testing.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    namespace: dict = {}
    exec(compile("\n".join(blocks), "docs/testing.md", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()
