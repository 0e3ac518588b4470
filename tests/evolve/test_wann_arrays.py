"""Array-native WANN genomes (issue 18 item 4): a child's arrays are made from its parent's by the
mutation, and must equal what reading the child's IR gives; packing concatenates them.

The outside definitions: the IR itself (`read_arrays`, which maps names to declaration-order ids),
`ir.wann.topological_levels` (longest-path depths, pure Python) and `ir.wann.validate_genome` (cycles).
"""
from __future__ import annotations

import gc
import random

import attrs
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netevo_dsl.errors import RuleError
from netevo_dsl.evolve.mutations import mutate_genome
from netevo_dsl.ir import nodes as ir
from netevo_dsl.ir.wann import BIAS, topological_levels, validate_genome
from netevo_dsl.runtime import wann_arrays as wa
from netevo_dsl.testing.wann_strategies import wann_genomes

RULES = [
    None,  # the published roulette
    "add_node(p=1)",
    "add_edge(p=1)",
    "enable_edge(p=1)",
    "change_activation(p=1)",
    "add_node(p=0.5) change_activation(p=0.5, choices={sin, gauss, relu})",
]


def _same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a.same_as(b))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wann_genomes(max_hidden=5, max_edges=15),
       st.integers(0, 2 ** 32 - 1), st.sampled_from(RULES), st.booleans())
def test_mutated_arrays_equal_the_arrays_of_the_mutated_ir(genome, seed, rules, check):
    rng = random.Random(seed)
    for _ in range(8):
        try:
            child = mutate_genome(genome, rng, rules, check_child=check)
        except RuleError:
            return
        known, carried = wa.carried(child)
        assert known, "the mutation carried the child's arrays"
        assert _same(carried, wa.read_arrays(child))
        genome = child


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wann_genomes(max_hidden=5, max_edges=15, edge_weights=True), st.integers(0, 2 ** 32 - 1))
def test_edge_weights_do_not_change_the_arrays(genome, seed):
    rng = random.Random(seed)
    for _ in range(5):
        try:
            child = mutate_genome(genome, rng)
        except RuleError:
            return
        assert _same(wa.carried(child)[1], wa.read_arrays(child))
        genome = child


def test_an_unknown_activation_is_carried_as_a_rejected_genome():
    genome = ir.WannGenome("g", ("a", BIAS), (ir.WannOutput("y", "tanh"),), (ir.WannNode("h", "relu"),),
                           (ir.WannEdge("a", "h"), ir.WannEdge("h", "y")))
    child = mutate_genome(genome, random.Random(0), "change_activation(p=1, choices={nosuch})", check_child=False)
    assert child.nodes[0].activation == "nosuch"
    assert wa.carried(child) == (True, None) and wa.read_arrays(child) is None


def test_arrays_leave_with_their_genome():
    genome = ir.WannGenome("g", ("a",), (ir.WannOutput("y", "tanh"),), (), (ir.WannEdge("a", "y"),))
    before = len(wa._CARRIED)
    wa.arrays_of(genome)
    assert wa.carried(genome)[0] and len(wa._CARRIED) == before + 1
    del genome
    gc.collect()
    assert len(wa._CARRIED) == before


def test_carried_arrays_are_read_only():
    genome = ir.WannGenome("g", ("a",), (ir.WannOutput("y", "tanh"),), (), (ir.WannEdge("a", "y"),))
    a = wa.arrays_of(genome)
    for array in (a.src, a.dst, a.enabled, a.activations):
        assert not array.flags.writeable


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(wann_genomes(max_hidden=6, max_edges=20), min_size=1, max_size=6))
def test_population_ids_slots_and_depths_match_the_ir(genomes):
    pop = wa._Population.build([wa.arrays_of(g) for g in genomes], n_obs=3)
    assert not pop.invalid_genomes()
    enabled = pop.enabled
    depth = (~pop.is_input).astype(np.int64)
    assert not wa._relax_longest_paths(depth, pop.src[enabled], pop.dst[enabled], np.full(len(depth), len(depth) + 2)).any()
    offset, outputs = 0, []
    for g in genomes:
        names = [*g.inputs, *(n.name for n in g.nodes), *(o.name for o in g.outputs)]
        ids = range(offset, offset + len(names))
        # observation k feeds the k-th non-bias input (ir/wann.py); the bias reads slot n_obs
        observed = [n for n in g.inputs if n != BIAS]
        expected_slots = [3 if n == BIAS else observed.index(n) for n in g.inputs]
        assert pop.input_slot[ids.start:ids.start + len(g.inputs)].tolist() == expected_slots
        # longest-path depths over enabled edges, as topological_levels defines them
        for level, members in enumerate(topological_levels(g), start=1):
            for name in members:
                assert depth[offset + names.index(name)] == level, name
        outputs += [offset + names.index(o.name) for o in g.outputs]
        offset += len(names)
    assert np.flatnonzero(pop.is_output).tolist() == outputs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(wann_genomes(max_hidden=6, max_edges=20), st.integers(0, 2 ** 16),
                          st.booleans()), min_size=1, max_size=6))
def test_cycles_are_found_exactly_where_validate_genome_finds_them(drawn):
    genomes = []
    for g, k, close in drawn:
        forward = [e for e in g.edges if e.src in {n.name for n in g.nodes} and e.dst in {n.name for n in g.nodes}]
        if close and forward:  # a back edge between two hidden nodes, enabled or not: a cycle
            e = forward[k % len(forward)]
            g = attrs.evolve(g, edges=tuple(g.edges) + (ir.WannEdge(e.dst, e.src, enabled=bool(k % 2)),))
        genomes.append(g)
    pop = wa._Population.build([wa.arrays_of(g) for g in genomes], n_obs=3)
    assert pop.invalid_genomes() == {i for i, g in enumerate(genomes) if validate_genome(g)}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wann_genomes(max_hidden=6, max_edges=20), st.integers(0, 2 ** 16), st.booleans())
def test_addable_from_the_arrays_is_addable_edges_in_its_order(genome, k, close):
    from netevo_dsl.evolve.mutations.wann import addable_edges

    hidden = [n.name for n in genome.nodes]
    if close and len(hidden) > 1:  # a back edge between hidden nodes: a cycle, where only the IR's definition applies
        genome = attrs.evolve(genome, edges=tuple(genome.edges) + (ir.WannEdge(hidden[-1], hidden[k % (len(hidden) - 1)]),))
    pairs = wa.addable(wa.read_arrays(genome))
    if validate_genome(genome):
        assert pairs is None
        return
    names = [*genome.inputs, *hidden, *(o.name for o in genome.outputs)]
    assert [(names[s], names[d]) for s, d in zip(*pairs)] == addable_edges(genome)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(wann_genomes(n_inputs=3, max_hidden=5, max_edges=15), st.booleans()), min_size=1,
                max_size=5), st.integers(0, 2 ** 16))
def test_packing_again_and_packing_children_reject_exactly_the_invalid_genomes(drawn, seed):
    genomes = []
    for g, close in drawn:
        hidden = [n.name for n in g.nodes]
        if close and len(hidden) > 1:
            g = attrs.evolve(g, edges=tuple(g.edges) + (ir.WannEdge(hidden[-1], hidden[0]),))
        genomes.append(g)
    bad = {i for i, g in enumerate(genomes) if validate_genome(g)}
    for _ in range(2):  # the second time, from the carried (and then verified) arrays
        _, _, failures = wa.population_of(genomes, 3, 2, list(range(len(genomes))))
        assert set(failures) == bad
        assert all(wa.carried(g)[1].verified == (i not in bad) for i, g in enumerate(genomes))
    rng = random.Random(seed)
    children = []
    for i, g in enumerate(genomes):
        try:
            children.append(mutate_genome(g, rng, check_child=False))
        except RuleError:
            children.append(g)
    assert all(wa.carried(c)[1].verified for i, c in enumerate(children) if i not in bad), "kept by mutation"
    _, _, failures = wa.population_of(children, 3, 2, list(range(len(children))))
    assert set(failures) == {i for i, c in enumerate(children) if validate_genome(c)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wann_genomes(max_hidden=6, max_edges=20), st.integers(0, 2 ** 16), st.booleans())
def test_dense_reachability_equals_the_bit_masks_of_kahns_order(genome, k, close):
    # the two ways `addable` finds what each node reaches: boolean matrix products (small genomes)
    # and Kahn's order with bit masks (large ones); `addable_edges` is the definition of both
    hidden = [n.name for n in genome.nodes]
    if close and len(hidden) > 1:
        genome = attrs.evolve(genome, edges=tuple(genome.edges) + (ir.WannEdge(hidden[-1], hidden[k % (len(hidden) - 1)]),))
    a = wa.read_arrays(genome)
    dense = wa._reachable(a.n_nodes, a.src, a.dst)
    masks = wa.reach_masks(a.n_nodes, a.src.tolist(), a.dst.tolist())
    assert (dense is None) == (masks is None) == bool(validate_genome(genome))
    if dense is not None:
        expected = [[bool(m >> v & 1) for v in range(a.n_nodes)] for m in masks]
        assert dense.tolist() == expected
        assert wa._mask_matrix(masks, a.n_nodes).tolist() == expected  # the large genomes' conversion


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wann_genomes(max_hidden=5, max_edges=15, edge_weights=True), st.integers(0, 2 ** 16))
def test_the_carried_edge_weight_flag_is_has_edge_weights(genome, seed):
    from netevo_dsl.ir.wann import has_edge_weights

    rng = random.Random(seed)
    for _ in range(4):
        assert wa.has_edge_weights(genome) == has_edge_weights(genome)
        try:
            genome = mutate_genome(genome, rng)
        except RuleError:
            return


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wann_genomes(max_hidden=5, max_edges=15), st.integers(0, 2 ** 16))
def test_the_carried_connection_count_is_connection_count(genome, seed):
    from netevo_dsl.ir.wann import connection_count

    rng = random.Random(seed)
    for _ in range(4):
        assert wa.connection_count(genome) == connection_count(genome)
        try:
            genome = mutate_genome(genome, rng)
        except RuleError:
            return


def test_large_genomes_candidates_from_the_arrays_are_the_irs():
    # genomes the size of the digits workload, where operators take their candidates from the arrays
    from netevo_dsl.evolve.mutations.wann import ARRAY_CANDIDATES, addable_edges
    from netevo_dsl.testing.wann_strategies import random_genome

    rng = random.Random(5)
    for k in range(12):
        g = random_genome(rng, 64, 10, rng.randint(0, 30), rng.randint(60, 200), name=f"g{k}")
        a = wa.read_arrays(g)
        assert len(a.src) >= ARRAY_CANDIDATES
        names = [*g.inputs, *(n.name for n in g.nodes), *(o.name for o in g.outputs)]
        assert [(names[s], names[d]) for s, d in zip(*wa.addable(a))] == addable_edges(g)
        assert np.flatnonzero(a.enabled).tolist() == [i for i, e in enumerate(g.edges) if e.enabled]
        for _ in range(5):
            child = mutate_genome(g, rng, check_child=False)
            assert _same(wa.carried(child)[1], wa.read_arrays(child))
            g = child


def test_choosing_an_index_draws_as_choosing_from_the_list():
    # add_edge draws `rng.choice(range(n))` where it used to draw `rng.choice(candidates)`: one
    # `_randbelow(n)` either way (CPython's random.choice), so runs keep their children
    for seed in range(50):
        items = [object() for _ in range(1 + seed % 17)]
        assert items[random.Random(seed).choice(range(len(items)))] is random.Random(seed).choice(items)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(wann_genomes(max_hidden=6, max_edges=20), min_size=1, max_size=6))
def test_live_nodes_are_those_with_an_enabled_path_to_an_output(genomes):
    # the definition, per genome in Python over the IR: outputs, then every enabled source of a live node
    pop = wa._Population.build([wa.arrays_of(g) for g in genomes], n_obs=3)
    live = wa._live_nodes(pop.is_output, pop.src[pop.enabled], pop.dst[pop.enabled])
    expected = []
    for g in genomes:
        names = [*g.inputs, *(n.name for n in g.nodes), *(o.name for o in g.outputs)]
        reach = {o.name for o in g.outputs}
        grown = True
        while grown:
            new = {e.src for e in g.edges if e.enabled and e.dst in reach} - reach
            reach |= new
            grown = bool(new)
        expected += [name in reach for name in names]
    assert live.tolist() == expected
