"""Graph view and validation of WANN genomes (netevo_dsl.ir.wann)."""
import pytest
from hypothesis import given, settings

from netevo_dsl.errors import GenomeError
from netevo_dsl.grammar.parser import parse
from netevo_dsl.ir import nodes as ir
from netevo_dsl.ir import wann
from netevo_dsl.testing.wann_strategies import wann_genomes

XOR = """genome xor: wann {
  inputs a, b, bias
  outputs y: sigmoid
  weights {-2, -1, -0.5, 0.5, 1, 2}
  node h1: gauss
  node h2: tanh
  edge a -> h1
  edge b -> h1
  edge h1 -> h2
  edge h1 -> y
  edge h2 -> y
  edge bias -> y [disabled]
}
"""


def genome_of(text: str) -> ir.WannGenome:
    return parse(text).genomes[0]


def body(lines: str, weights: str = "") -> str:
    return f"genome g: wann {{\n  inputs a, b, bias\n  outputs y: linear\n{weights}{lines}\n}}\n"


def messages(genome):
    return [e.message for e in wann.validate_genome(genome)]


def test_levels_follow_longest_enabled_path():
    g = genome_of(XOR)
    assert wann.topological_levels(g) == [["h1"], ["h2"], ["y"]]
    assert wann.evaluation_order(g) == ["h1", "h2", "y"]


def test_node_without_sources_is_level_one_and_disabled_edges_do_not_count():
    g = genome_of(body("  node lonely: tanh\n  node h: abs\n  edge a -> h\n  edge h -> y [disabled]\n  edge a -> y"))
    assert wann.topological_levels(g) == [["lonely", "h", "y"]]


def test_shared_weights_connection_count_and_defaults():
    g = genome_of(XOR)
    assert wann.shared_weights(g) == (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)
    assert wann.connection_count(g) == 5
    assert wann.shared_weights(genome_of(body("  edge a -> y"))) == wann.DEFAULT_WEIGHTS
    assert wann.shared_weights(genome_of(body("  edge a -> y", "  weights {-0.25, 3}\n"))) == (-0.25, 3.0)


def test_to_networkx_roles_and_disabled_edges():
    g = genome_of(XOR)
    graph = wann.to_networkx(g)
    assert graph.nodes["bias"]["role"] == "bias" and graph.nodes["a"]["role"] == "input"
    assert graph.nodes["h1"]["activation"] == "gauss" and graph.nodes["y"]["role"] == "output"
    assert not graph.has_edge("bias", "y")
    assert wann.to_networkx(g, include_disabled=True).edges["bias", "y"]["enabled"] is False


def test_valid_genome_has_no_errors():
    assert wann.validate_genome(genome_of(XOR)) == []


def test_unknown_endpoint_suggests_a_name_and_points_at_the_edge():
    g = genome_of(body("  node hidden: tanh\n  edge a -> hiden\n  edge hidden -> y"))
    (error,) = wann.validate_genome(g)
    assert "`hiden` is not declared" in error.message
    assert error.hint == "did you mean `hidden`?"
    assert error.span.line == 5


def test_unknown_activation_suggests_the_closest():
    g = genome_of(body("  node h: gaus\n  edge a -> h\n  edge h -> y"))
    (error,) = wann.validate_genome(g)
    assert "unknown activation `gaus`" in error.message and error.hint == "did you mean `gauss`?"
    assert error.span.line == 4


def test_edges_into_inputs_and_out_of_outputs_are_rejected():
    g = genome_of("genome g: wann {\n  inputs a, bias\n  outputs y: linear, z: linear\n  node h: tanh\n"
                  "  edge h -> a\n  edge y -> z\n  edge a -> h\n}\n")
    found = messages(g)
    assert any("points into input `a`" in m for m in found)
    assert any("leaves output `y`" in m for m in found)


def test_cycle_through_a_disabled_edge_is_reported_with_its_path():
    g = genome_of(body("  node h1: tanh\n  node h2: tanh\n  edge a -> h1\n  edge h1 -> h2\n"
                       "  edge h2 -> h1 [disabled]\n  edge h2 -> y"))
    (error,) = wann.validate_genome(g)
    assert "cycle" in error.message
    assert "h1 -> h2 -> h1" in error.message or "h2 -> h1 -> h2" in error.message
    assert error.span is not None


def test_enabled_cycle_cannot_be_levelled():
    g = genome_of(body("  node h1: tanh\n  node h2: tanh\n  edge h1 -> h2\n  edge h2 -> h1\n  edge h2 -> y"))
    with pytest.raises(GenomeError, match="cycle"):
        wann.topological_levels(g)


def test_duplicate_names_edges_and_empty_weights():
    dup_node = genome_of(body("  node a: tanh\n  edge b -> y"))
    assert any("declared twice" in m for m in messages(dup_node))
    dup_edge = genome_of(body("  edge a -> y\n  edge a -> y [disabled]"))
    (error,) = wann.validate_genome(dup_edge)
    assert "declared twice" in error.message and error.span.line == 5  # the second edge
    empty = genome_of(body("  edge a -> y", "  weights {}\n"))
    assert any("empty `weights`" in m for m in messages(empty))
    with pytest.raises(GenomeError):
        wann.shared_weights(empty)


def test_python_keywords_cannot_name_nodes():
    g = ir.WannGenome("g", ["a"], [ir.WannOutput("y", "linear")], [ir.WannNode("lambda", "tanh")],
                      [ir.WannEdge("a", "lambda"), ir.WannEdge("lambda", "y")])
    assert any("cannot name a genome node" in m for m in messages(g))


@settings(max_examples=40, deadline=None)
@given(wann_genomes(n_inputs=3, n_outputs=2, max_hidden=6, max_edges=20))
def test_generated_genomes_are_valid_and_levels_respect_every_enabled_edge(genome):
    assert wann.validate_genome(genome) == []
    level_of = {name: k + 1 for k, level in enumerate(wann.topological_levels(genome)) for name in level}
    level_of.update({name: 0 for name in genome.inputs})
    for edge in genome.edges:
        if edge.enabled:
            assert level_of[edge.src] < level_of[edge.dst]
    assert sorted(level_of) == sorted(list(genome.inputs) + [n.name for n in genome.nodes] +
                                      [o.name for o in genome.outputs])


def test_cycle_check_among_hidden_nodes_agrees_with_the_check_over_all_nodes():
    """validate_genome looks for cycles among hidden nodes only when every edge end is sound."""
    import random

    import attrs

    from netevo_dsl.testing.wann_strategies import random_genome

    rng = random.Random(0)
    cyclic = 0
    for k in range(60):
        g = random_genome(rng, 4, 2, 6, 14, name=f"g{k}")
        hidden = [n.name for n in g.nodes]
        back = {(rng.choice(hidden), rng.choice(hidden)) for _ in range(rng.randrange(3))}
        existing = {(e.src, e.dst) for e in g.edges}
        g = attrs.evolve(g, edges=g.edges + tuple(ir.WannEdge(a, b, rng.random() < 0.5)
                                                  for a, b in sorted(back - existing)))
        assert not wann._check_edges(g)
        fast = sorted(e.message for e in wann._check_cycles(g, sound_ends=True))
        full = sorted(e.message for e in wann._check_cycles(g, sound_ends=False))
        assert fast == full
        cyclic += bool(full)
    assert cyclic >= 10  # the check saw cycles, not only acyclic genomes
