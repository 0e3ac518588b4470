"""Hypothesis strategies for populations of small transformer (WANN-GPT) genomes.

`transformer_populations(vocab, context)` draws one to three architectures (embedding, layers,
heads, FFN widths, sublayers, context) and several genomes of each, so that some genomes share
a shape and others do not; members of one architecture differ in masks and activations. The
population shares one `weights` set, with values that are not powers of two so that rounding
differs between evaluation orders. Genomes are tiny, so both evaluators stay fast.
"""
from __future__ import annotations

from hypothesis import strategies as st

from ..ir import nodes as ir

# Continuous activations: a step would turn rounding differences into different scores.
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu", "tanh", "sigmoid", "sin", "cos", "gauss", "abs", "square",
               "identity", "inverse")
WEIGHT_VALUES = (-1.7, -1.0, -0.3, 0.45, 1.0, 2.2)


@st.composite
def architectures(draw, context: int) -> dict:
    """Shape settings: embed, context >= `context`, and per layer (heads, ffn, attention, mlp)."""
    embed = draw(st.sampled_from((4, 8)))
    layers = []
    for _ in range(draw(st.integers(1, 2))):
        heads = draw(st.sampled_from([h for h in (1, 2, 4) if embed % h == 0]))
        sublayers = draw(st.sampled_from((("on", "on"), ("on", "off"), ("off", "on"))))
        layers.append((heads, draw(st.sampled_from((4, 8))), *sublayers))
    return {"embed": embed, "context": context + draw(st.integers(0, 2)), "layers": tuple(layers)}


def _random_mask(density: float, seed: int) -> ir.Call:
    return ir.Call("random", (), (ir.KwArg("density", ir.Num(density)), ir.KwArg("seed", ir.Num(seed))))


def masks() -> st.SearchStrategy[ir.Call]:
    """random(density, seed), band(halfwidth) or dense: every kind fits every matrix shape."""
    random = st.builds(_random_mask, st.sampled_from((0.25, 0.5, 0.75)), st.integers(0, 99))
    band = st.integers(0, 2).map(lambda h: ir.Call("band", (), (ir.KwArg("halfwidth", ir.Num(h)),)))
    return st.one_of(random, band, st.just(ir.Call("dense", (), ())))


def genome(vocab: int, arch: dict, mask: ir.Call, activations, weights, name: str = "gpt") -> ir.TransformerGenome:
    """A transformer genome with architecture `arch` and one activation per layer."""
    weight_set = ir.SetExpr(tuple(ir.Num(w) if w >= 0 else ir.Neg(ir.Num(-w)) for w in weights))
    settings = (ir.Setting("vocab", ir.Num(vocab)), ir.Setting("context", ir.Num(arch["context"])),
                ir.Setting("embed", ir.Num(arch["embed"])), ir.Setting("weights", weight_set),
                ir.Setting("masks", mask))
    layers = tuple(ir.TransformerLayer((ir.Setting("heads", ir.Num(heads)), ir.Setting("ffn", ir.Num(ffn)),
                                        ir.Setting("activation", ir.Name(act)), ir.Setting("attention", ir.Name(attn)),
                                        ir.Setting("mlp", ir.Name(mlp))))
                   for (heads, ffn, attn, mlp), act in zip(arch["layers"], activations))
    return ir.TransformerGenome(name, settings, layers)


@st.composite
def transformer_populations(draw, vocab: int, context: int, max_size: int = 6) -> list:
    """1..max_size genomes (some wrapped in an `ir.Spec`) of vocabulary `vocab`, fitting `context` tokens."""
    archs = draw(st.lists(architectures(context), min_size=1, max_size=3))
    weights = tuple(draw(st.lists(st.sampled_from(WEIGHT_VALUES), min_size=1, max_size=3, unique=True)))
    population = []
    for k in range(draw(st.integers(1, max_size))):
        arch = archs[draw(st.integers(0, len(archs) - 1))]
        activations = [draw(st.sampled_from(ACTIVATIONS)) for _ in arch["layers"]]
        item = genome(vocab, arch, draw(masks()), activations, weights, name=f"g{k}")
        population.append(ir.Spec((item,)) if draw(st.booleans()) else item)
    return population
