"""Individuals as IR, their text form, and the WANN initial population."""
from __future__ import annotations

import attrs
import numpy as np

from ..grammar.fast_genome import parse_generated_genome
from ..grammar.parser import parse
from ..ir import nodes as ir
from ..ir.hashing import canonical_hash
from ..ir.printer import format_spec


def genome_text(genome) -> str:
    return format_spec(ir.Spec((genome,)))


def genome_from_text(text: str):
    """The genome in `text`: the printer's own form on a fast path, anything else through the full parser."""
    return parse_generated_genome(text) or parse(text).items[0]


def identity(genome) -> str:
    return canonical_hash(genome)[:16]


def wann_initial_population(seed: ir.WannGenome, n: int, rng: np.random.Generator,
                            density: float = 0.5) -> list[ir.WannGenome]:
    """WANN's initial population: every input (bias included) linked to every output, each link
    enabled with probability `density` (the paper: 0.5; 0.05 for MNIST). Hidden nodes of the seed
    genome are not used; its inputs, outputs (with activations) and weights are."""
    ends = [(i, o.name) for o in seed.outputs for i in seed.inputs]
    # each edge made once enabled and once disabled, shared by every genome (the IR is frozen): making
    # 256 x 650 edges one by one was most of the initial population's cost on digits
    variants = [(ir.WannEdge(s, d, False), ir.WannEdge(s, d, True)) for s, d in ends]
    population = []
    for _ in range(n):
        enabled = (rng.random(len(ends)) < density).tolist()
        population.append(attrs.evolve(seed, nodes=(), edges=tuple(v[e] for v, e in zip(variants, enabled))))
    return population
