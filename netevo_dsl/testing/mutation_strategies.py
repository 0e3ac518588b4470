"""Hypothesis strategies for property tests of mutation rules.

* `specs_with_rules()`: a valid spec (a network, a WANN genome or a transformer genome) with a
  `mutate` block of rules that apply to it.
* `mutation_sequences(spec)`: lists of `MutationStep`s (one rule of the spec, one seed); each step
  is applied with `step.apply(spec)`.
* `networks()`, `genomes()`: from `netevo_dsl.testing.strategies` (imported lazily, not duplicated).
* `transformer_genomes()`: valid WANN-GPT genomes (heads divide the embedding, a layer keeps a sublayer).

A test of your own rules, for example::

    @given(mutation_sequences(load("my.net")))
    def test_my_rules_keep_the_output(steps):
        spec = load("my.net")
        for step in steps:
            spec, _ = step.apply(spec)
        assert infer_shapes(spec).outputs ...
"""
from __future__ import annotations

import attrs
from hypothesis import strategies as st

from ..ir import nodes as ir

NETWORK_RULES = (
    "width(p=0.5, choices={4, 8, 16})",
    "kernel(p=0.3, choices={1, 3, 5})",
    "activation(p=0.3, choices={relu, tanh, gelu, sigmoid})",
    "insert_layer(p=0.2, choices={relu, tanh, linear, conv2d})",
    "remove_layer(p=0.2)",
    "skip(p=0.2)",
)  # `repeat` is a keyword of the grammar, so a `repeat(...)` rule cannot be written in a spec
WANN_RULES = (
    "add_node(p=0.25)",
    "add_edge(p=0.2)",
    "enable_edge(p=0.05)",
    "change_activation(p=0.5, choices={linear, step, sin, gauss, tanh, sigmoid, inverse, abs, relu, cos, square})",
)
TRANSFORMER_RULES = (
    "heads(p=0.2, choices={1, 2, 4, 8})",
    "ffn(p=0.2, choices={16, 32, 64})",
    "change_activation(p=0.3, choices={relu, tanh, sin, gauss, gelu})",
    "sublayer(p=0.1)",
    "layers(p=0.1, choices={1, 2, 3})",
    "grow(p=0.1, rate=0.05)",
    "prune(p=0.1, rate=0.05)",
)


def networks() -> st.SearchStrategy[ir.Spec]:
    """Specs with one MLP or conv network that pass `check` (`testing.strategies.networks`)."""
    from .strategies import networks as _networks

    return _networks()


def genomes(**kwargs) -> st.SearchStrategy[ir.WannGenome]:
    """Valid WANN genomes (`testing.strategies.genomes`, which uses `wann_strategies`)."""
    from .strategies import genomes as _genomes

    return _genomes(**kwargs)


def _layer(draw, embed: int) -> ir.TransformerLayer:
    heads = draw(st.sampled_from([h for h in (1, 2, 4, 8) if embed % h == 0]))
    on = draw(st.sampled_from((("on", "on"), ("on", "off"), ("off", "on"))))
    settings = [ir.Setting("heads", ir.Num(heads)), ir.Setting("ffn", ir.Num(draw(st.sampled_from((16, 32, 64)))))]
    settings.append(ir.Setting("activation", ir.Name(draw(st.sampled_from(("gelu", "relu", "tanh", "sin"))))))
    for key, value in zip(("attention", "mlp"), on):
        if value == "off" or draw(st.booleans()):
            settings.append(ir.Setting(key, ir.Name(value)))
    return ir.TransformerLayer(tuple(settings))


@st.composite
def transformer_genomes(draw, max_layers: int = 3) -> ir.TransformerGenome:
    """Valid WANN-GPT genomes: small vocab, context and embedding, 1..max_layers layers."""
    embed = draw(st.sampled_from((8, 16, 32)))
    density = draw(st.sampled_from((0.25, 0.5, 0.75)))
    settings = (
        ir.Setting("vocab", ir.Num(draw(st.integers(4, 16)))),
        ir.Setting("context", ir.Num(draw(st.integers(4, 16)))),
        ir.Setting("embed", ir.Num(embed)),
        ir.Setting("masks", ir.Call("random", (), (ir.KwArg("density", ir.Num(density)),
                                                   ir.KwArg("seed", ir.Num(draw(st.integers(0, 99))))))),
    )
    layers = tuple(_layer(draw, embed) for _ in range(draw(st.integers(1, max_layers))))
    return ir.TransformerGenome("gpt", settings, layers)


def _rule_calls(texts) -> tuple:
    from ..evolve.mutations.engine import parse_rules

    return tuple(r.call for r in parse_rules("\n".join(texts)))


@st.composite
def specs_with_rules(draw, kinds: tuple = ("network", "wann", "transformer")) -> ir.Spec:
    """A valid spec whose `mutate` block holds a non-empty subset of the rules for its item's kind."""
    kind = draw(st.sampled_from(kinds))
    if kind == "network":
        spec = draw(networks())
        item, table = spec.networks[0], NETWORK_RULES
    elif kind == "wann":
        item, table = draw(genomes()), WANN_RULES
        spec = ir.Spec((ir.Version(1), item))
    else:
        item, table = draw(transformer_genomes()), TRANSFORMER_RULES
        spec = ir.Spec((ir.Version(1), item))
    chosen = draw(st.lists(st.sampled_from(table), min_size=1, max_size=len(table), unique=True))
    block = ir.MutateBlock(item.name, _rule_calls(chosen))
    return attrs.evolve(spec, items=tuple(spec.items) + (block,))


@attrs.frozen
class MutationStep:
    """Apply one rule of a spec with one seed: `spec, description = step.apply(spec)`."""

    rule: str  # the rule as written, e.g. "width(fc1, p=0.3, choices={128, 256})"
    seed: int

    def apply(self, spec: ir.Spec, target: str | None = None):
        from ..evolve.mutations import mutate

        return mutate(spec, self.seed, target=target, rules=self.rule)


def mutation_sequences(spec: ir.Spec, max_size: int = 6, target: str | None = None):
    """Lists of 1..max_size `MutationStep`s drawn from the rules `spec` applies to its target."""
    from ..evolve.mutations.engine import rules_for, target_item
    from ..ir.printer import expr

    rules = [expr(r.call) for r in rules_for(spec, target_item(spec, target)) if r.call is not None]
    step = st.builds(MutationStep, st.sampled_from(rules), st.integers(0, 2 ** 31 - 1))
    return st.lists(step, min_size=1, max_size=max_size)


__all__ = ["specs_with_rules", "mutation_sequences", "MutationStep", "networks", "genomes", "transformer_genomes",
           "NETWORK_RULES", "WANN_RULES", "TRANSFORMER_RULES"]
