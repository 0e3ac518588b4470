"""compile_wann and emit_wann_source against the reference evaluator and a dense oracle."""
import ast
import importlib.util
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netevo_dsl.compiler.wann import compile_wann, emit_wann_source
from netevo_dsl.errors import NetevoError
from netevo_dsl.grammar.parser import parse
from netevo_dsl.ir import nodes as ir
from netevo_dsl.ir.wann import evaluation_order, observation_inputs
from netevo_dsl.ops.activations import torch_fn
from netevo_dsl.runtime.reference import reference_forward
from netevo_dsl.testing.wann_strategies import wann_genomes

WEIGHTS = torch.tensor([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 1.37], dtype=torch.float64)


def load_emitted(source: str, path):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, torch.nn.Module) and v is not torch.nn.Module]
    assert len(classes) == 1
    return module, classes[0]()


def dense_oracle(genome: ir.WannGenome, x: torch.Tensor, w: float) -> torch.Tensor:
    """The WANN authors' formulation: one N x N matrix holding w at every enabled edge,
    nodes visited in topological order, value = act(values @ column)."""
    names = list(genome.inputs) + evaluation_order(genome)
    index = {name: i for i, name in enumerate(names)}
    matrix = torch.zeros(len(names), len(names), dtype=x.dtype)
    for edge in genome.edges:
        if edge.enabled:
            matrix[index[edge.src], index[edge.dst]] = w
    values = torch.zeros(x.shape[0], len(names), dtype=x.dtype)
    observed = iter(range(x.shape[1]))
    for name in genome.inputs:
        values[:, index[name]] = 1.0 if name == "bias" else x[:, next(observed)]
    activation = {n.name: n.activation for n in tuple(genome.nodes) + tuple(genome.outputs)}
    for name in evaluation_order(genome):
        values[:, index[name]] = torch_fn(activation[name])(values @ matrix[:, index[name]])
    return values[:, [index[o.name] for o in genome.outputs]]


@settings(max_examples=30, deadline=None)
@given(genome=wann_genomes(n_inputs=3, n_outputs=2, max_hidden=7, max_edges=24),
       seed=st.integers(0, 2**16))
def test_compiled_emitted_and_reference_agree_in_float64(genome, seed, tmp_path_factory):
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    compiled = compile_wann(genome)(x, WEIGHTS)
    _, emitted_module = load_emitted(emit_wann_source(genome), tmp_path_factory.mktemp("emit") / "genome.py")
    emitted = emitted_module(x, WEIGHTS)
    reference = torch.stack([reference_forward(genome, x, float(w)) for w in WEIGHTS])
    assert compiled.shape == (len(WEIGHTS), 40, 2)
    torch.testing.assert_close(compiled, emitted, rtol=0, atol=1e-10, equal_nan=True)
    torch.testing.assert_close(compiled, reference, rtol=0, atol=1e-10, equal_nan=True)


@settings(max_examples=30, deadline=None)
@given(genome=wann_genomes(n_inputs=4, n_outputs=3, max_hidden=6, max_edges=20),
       w=st.sampled_from([-2.0, -0.5, 0.5, 1.0, 2.0, 0.3]))
def test_genome_at_weight_w_is_a_dense_network_with_every_enabled_weight_w(genome, w):
    x = torch.randn(25, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    compiled = compile_wann(genome)(x, torch.tensor([w], dtype=torch.float64))[0]
    torch.testing.assert_close(compiled, dense_oracle(genome, x, w), rtol=1e-9, atol=1e-10, equal_nan=True)


def test_emitted_source_is_standalone_and_escapes_clashing_names(tmp_path):
    genome = parse("""genome clash_test: wann {
      inputs x, w, bias
      outputs torch: tanh, zero: linear
      node gauss: gauss
      node self: relu
      edge x -> gauss
      edge w -> self
      edge gauss -> torch
      edge self -> zero
      edge bias -> zero
    }""").genomes[0]
    source = emit_wann_source(genome)
    imports = {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))
               for alias in node.names}
    assert imports <= {"math", "torch", "nn"}
    assert "class ClashTest(nn.Module)" in source
    module, net = load_emitted(source, tmp_path / "clash.py")
    assert module.INPUTS == ("x", "w") and module.OUTPUTS == ("torch", "zero")
    x = torch.randn(10, 2, dtype=torch.float64)
    weights = torch.tensor(module.WEIGHTS, dtype=torch.float64)
    torch.testing.assert_close(net(x, weights), compile_wann(genome)(x, weights), rtol=0, atol=1e-12)


def test_default_weights_come_from_the_genome():
    genome = parse("""genome g: wann {
      inputs a
      outputs y: linear
      weights {-0.5, 3}
      edge a -> y
    }""").genomes[0]
    x = torch.tensor([[2.0]], dtype=torch.float64)
    assert compile_wann(genome)(x).flatten().tolist() == [-1.0, 6.0]


def test_compiled_module_runs_in_the_requested_dtype():
    genome = parse("genome g: wann {\n inputs a, bias\n outputs y: sin\n edge a -> y\n edge bias -> y\n}").genomes[0]
    module = compile_wann(genome, dtype=torch.float64)
    out = module(torch.ones(3, 1, dtype=torch.float32), torch.tensor([0.5]))
    assert out.dtype == torch.float64
    assert out[0, 0, 0].item() == pytest.approx(math.sin(math.pi * 0.5 * 2.0), abs=1e-15)  # float64 sin(pi)


def test_invalid_genomes_are_rejected_before_emission():
    bad = ir.WannGenome("g", ["a"], [ir.WannOutput("y", "linear")], [ir.WannNode("h", "tanh")],
                        [ir.WannEdge("a", "h"), ir.WannEdge("h", "h"), ir.WannEdge("h", "y")])
    with pytest.raises(NetevoError, match="cycle"):
        emit_wann_source(bad)
    with pytest.raises(NetevoError, match="cycle"):
        compile_wann(bad)


def test_observation_inputs_map_in_declared_order():
    genome = parse("genome g: wann {\n inputs b, bias, a\n outputs y: linear, z: linear\n"
                   " edge a -> y\n edge b -> z\n}").genomes[0]
    assert observation_inputs(genome) == ["b", "a"]
    out = compile_wann(genome)(torch.tensor([[10.0, 20.0]]), torch.tensor([1.0]))
    assert out.tolist() == [[[20.0, 10.0]]]
