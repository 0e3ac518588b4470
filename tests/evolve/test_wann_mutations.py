"""WANN genome mutations: the published roulette, one mutation per child, feed-forward edges, fresh names."""
from __future__ import annotations

import collections
import keyword
import random
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netevo_dsl as ne
from netevo_dsl.errors import RuleError
from netevo_dsl.evolve.mutations import mutate, mutate_genome
from netevo_dsl.evolve.mutations.wann import PUBLISHED_ROULETTE, addable_edges, descendants
from netevo_dsl.ir import nodes as ir
from netevo_dsl.ir.hashing import canonical_hash
from netevo_dsl.ir.wann import validate_genome
from netevo_dsl.testing.wann_strategies import wann_genomes

SPECS = Path(__file__).resolve().parents[2] / "specs"


def swingup():
    spec = ne.load(SPECS / "wann_swingup.net")
    return spec, spec.genomes[0], spec.of_kind(ir.MutateBlock)[0]


def classify(parent: ir.WannGenome, child: ir.WannGenome) -> str:
    """Which single mutation turned parent into child; fails unless it is exactly one."""
    old_nodes = {n.name: n.activation for n in parent.nodes}
    new_nodes = {n.name: n.activation for n in child.nodes}
    old_edges = {(e.src, e.dst): e.enabled for e in parent.edges}
    new_edges = {(e.src, e.dst): e.enabled for e in child.edges}
    added_nodes = set(new_nodes) - set(old_nodes)
    added_edges = set(new_edges) - set(old_edges)
    changed_edges = {k for k in old_edges if k in new_edges and old_edges[k] != new_edges[k]}
    changed_acts = {k for k in old_nodes if k in new_nodes and old_nodes[k] != new_nodes[k]}
    assert set(old_nodes) <= set(new_nodes) and set(old_edges) <= set(new_edges), "nothing is ever removed"
    assert child.outputs == parent.outputs and child.inputs == parent.inputs
    if added_nodes:
        (new,) = added_nodes
        (src, dst), = [k for k in changed_edges]
        assert old_edges[(src, dst)] and not new_edges[(src, dst)], "the split edge is disabled"
        assert added_edges == {(src, new), (new, dst)} and new_edges[(src, new)] and new_edges[(new, dst)]
        assert not changed_acts
        return "add_node"
    if added_edges:
        assert len(added_edges) == 1 and not changed_edges and not changed_acts
        assert new_edges[next(iter(added_edges))]
        return "add_edge"
    if changed_edges:
        (k,) = changed_edges
        assert not old_edges[k] and new_edges[k] and not changed_acts
        return "enable_edge"
    assert len(changed_acts) == 1, "exactly one mutation per child"
    return "change_activation"


def test_roulette_frequencies_match_the_published_probabilities():
    _, genome, block = swingup()
    rng = np.random.default_rng(0)
    counts = collections.Counter(classify(genome, mutate_genome(genome, rng, block)) for _ in range(4000))
    for name, p in PUBLISHED_ROULETTE:
        assert abs(counts[name] / 4000 - p) < 0.02, (name, counts)


def test_without_a_mutate_block_the_published_roulette_is_used():
    _, genome, _ = swingup()
    rng = random.Random(1)
    counts = collections.Counter(classify(genome, mutate_genome(genome, rng)) for _ in range(3000))
    for name, p in PUBLISHED_ROULETTE:
        assert abs(counts[name] / 3000 - p) < 0.025, (name, counts)


def test_probabilities_are_normalised_over_the_rules_present():
    _, genome, _ = swingup()
    rng = random.Random(2)
    rules = "add_edge(p=0.2) change_activation(p=0.5)"
    counts = collections.Counter(classify(genome, mutate_genome(genome, rng, rules)) for _ in range(2000))
    assert set(counts) == {"add_edge", "change_activation"}
    assert abs(counts["add_edge"] / 2000 - 2 / 7) < 0.03


def test_inapplicable_rules_leave_the_roulette():
    # xor's genome with its disabled edge enabled: enable_edge has nothing to do, so it never "happens".
    spec, _, block = swingup()
    genome = attrs.evolve(spec.genomes[0], edges=tuple(attrs.evolve(e, enabled=True) for e in spec.genomes[0].edges))
    rng = random.Random(3)
    kinds = {classify(genome, mutate_genome(genome, rng, block)) for _ in range(300)}
    assert "enable_edge" not in kinds and kinds == {"add_node", "add_edge", "change_activation"}


def test_a_spec_level_mutation_leaves_the_original_untouched():
    spec, genome, _ = swingup()
    before = canonical_hash(spec)
    child, text = mutate(spec, random.Random(4))
    assert canonical_hash(spec) == before and spec.genomes[0] is genome
    assert canonical_hash(child) != before and text
    assert ne.parse(ne.format(child)) == child
    ne.check(child)


def test_add_node_names_are_fresh_identifiers():
    genome = ir.WannGenome("g", ("h2", "bias"), (ir.WannOutput("y", "tanh"),),
                           (ir.WannNode("h1", "sin"), ir.WannNode("h3", "relu")),
                           (ir.WannEdge("h2", "h1"), ir.WannEdge("h1", "h3"), ir.WannEdge("h3", "y")))
    rng = random.Random(5)
    for _ in range(20):
        child = mutate_genome(genome, rng, "add_node(p=1)")
        taken = {n.name for n in genome.nodes} | set(genome.inputs) | {"y"}
        (new,) = {n.name for n in child.nodes} - taken
        assert new.isidentifier() and not keyword.iskeyword(new) and not new.startswith("__")
        assert not validate_genome(child)
        genome = child


def test_change_activation_touches_hidden_nodes_only_and_picks_a_different_one():
    _, genome, _ = swingup()
    rng = random.Random(6)
    for _ in range(200):
        child = mutate_genome(genome, rng, "change_activation(p=1, choices={sin, relu, tanh})")
        assert child.outputs == genome.outputs
        (changed,) = [(a, b) for a, b in zip(genome.nodes, child.nodes) if a.activation != b.activation]
        assert changed[1].activation in ("sin", "relu", "tanh") and changed[1].activation != changed[0].activation


def test_a_genome_that_nothing_can_change_is_an_error():
    # One input straight to one output: no hidden node to re-activate, nothing disabled, no edge left to add.
    genome = ir.WannGenome("g", ("a",), (ir.WannOutput("y", "tanh"),), (), (ir.WannEdge("a", "y"),))
    with pytest.raises(RuleError):
        mutate_genome(genome, random.Random(0), "add_edge(p=1) enable_edge(p=1) change_activation(p=1)")


def test_numpy_generators_make_runs_reproducible():
    _, genome, block = swingup()
    a = [mutate_genome(genome, np.random.default_rng(9), block) for _ in range(3)]
    b = [mutate_genome(genome, np.random.default_rng(9), block) for _ in range(3)]
    assert a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wann_genomes(max_hidden=5, max_edges=15), st.integers(0, 2 ** 32 - 1))
def test_mutations_keep_genomes_feed_forward_and_valid(genome, seed):
    rng = random.Random(seed)
    inputs, outputs = set(genome.inputs), {o.name for o in genome.outputs}
    for _ in range(6):
        try:
            child = mutate_genome(genome, rng)
        except RuleError:
            return
        classify(genome, child)
        assert not validate_genome(child), "acyclic over all edges, names valid, activations known"
        assert all(e.dst not in inputs and e.src not in outputs for e in child.edges)
        assert len({(e.src, e.dst) for e in child.edges}) == len(child.edges)
        genome = child


@settings(max_examples=40, deadline=None)
@given(wann_genomes(max_hidden=5, max_edges=15))
def test_addable_edges_are_exactly_the_feed_forward_ones(genome):
    below = descendants(genome)
    outputs = {o.name for o in genome.outputs}
    existing = {(e.src, e.dst) for e in genome.edges}
    for src, dst in addable_edges(genome):
        assert src not in below[dst] and src != dst, "no cycle"
        assert dst not in genome.inputs and src not in outputs and (src, dst) not in existing
        grown = attrs.evolve(genome, edges=tuple(genome.edges) + (ir.WannEdge(src, dst),))
        assert not validate_genome(grown)


@settings(max_examples=60, deadline=None)
@given(wann_genomes(max_hidden=6, max_edges=20))
def test_addable_edges_are_all_the_feed_forward_ones_in_declaration_order(genome):
    # The definition, written out with `descendants` (sets): every source (inputs, then hidden nodes)
    # with every target (hidden nodes, then outputs), in that order, that makes no cycle and no duplicate.
    below = descendants(genome)
    hidden = [n.name for n in genome.nodes]
    outputs = [o.name for o in genome.outputs]
    existing = {(e.src, e.dst) for e in genome.edges}
    expected = [(s, d) for s in list(genome.inputs) + hidden for d in hidden + outputs
                if s != d and (s, d) not in existing and s not in below[d]]
    assert addable_edges(genome) == expected
