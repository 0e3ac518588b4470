"""Property: the `width` rule and the exact transforms agree on every resizable group and size (issue 20).

Over `netevo_dsl.testing.strategies.networks()` (MLPs, and conv nets with concatenated stems feeding
residual blocks whose widths come from one shared or from separate parameters, and channel splits):
for a group that `widen` may resize (not fixed, no norm over its channels, no heads) and a size, the
rule `width(<group>, choices={size})` makes a child exactly when `widen` (larger) or `prune_units`
(smaller) succeeds, and the child is the transform's spec. Each child's emitted source runs, and a
widened network computes what the original did (float64, the original as the reference).
"""
from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netevo_dsl as ne
from netevo_dsl.errors import RuleError, TransformError
from netevo_dsl.evolve.mutations import mutate, validate_source
from netevo_dsl.evolve.resize import analysis_of, groups_of
from netevo_dsl.evolve.transforms import prune_units, widen
from netevo_dsl.testing.strategies import networks


def _input(graph, generator):
    (inp,) = graph.inputs
    shape = [2 if not str(d).isdigit() else int(str(d)) for d in inp.shape]
    return torch.randn(*shape, dtype=torch.float64, generator=generator)


def _run(spec, weights, x):
    m = ne.compile_module(spec, device="meta", dtype=torch.float64).to_empty(device="cpu")
    m.load_state_dict(weights)
    with torch.no_grad():
        return m.eval()(x)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.data())
def test_width_rule_succeeds_exactly_when_the_transform_does_with_the_same_spec(spec, data):
    name = spec.networks[0].name
    groups = groups_of(analysis_of(spec, name))
    resizable = [g for g in groups if not g.fixed and not g.no_resize and not g.blocks]
    if not resizable:
        return
    g = data.draw(st.sampled_from(resizable), label="group")
    size = data.draw(st.integers(1, g.size + 8).filter(lambda n: n != g.size), label="size")
    torch.manual_seed(0)
    weights = {k: v.double() if v.is_floating_point() else v
               for k, v in ne.compile_module(spec, dtype=torch.float64).state_dict().items()}
    try:
        if size > g.size:
            result = widen(spec, weights, g.name, size, rng=0)
        else:
            result = prune_units(spec, weights, g.name, list(range(size, g.size)))
    except TransformError:
        result = None
    try:
        child, _ = mutate(spec, 0, rules=f'width("{g.name}", choices={{{size}}})')
    except RuleError:
        child = None
    assert (child is None) == (result is None), (g.name, size, ne.format(spec))
    if child is None:
        return
    assert ne.format(child) == ne.format(result.spec)
    validate_source(child, name)  # the emitted source runs at the declared shapes
    if size > g.size:
        x = _input(ne.infer_shapes(spec, name), torch.Generator().manual_seed(1))
        assert torch.allclose(_run(result.spec, result.weights, x), _run(spec, weights, x), atol=1e-9, rtol=0)
