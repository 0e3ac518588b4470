"""Random valid WANN genomes: a Hypothesis strategy and a plain seeded generator.

Both build acyclic genomes by construction: hidden nodes get a random order and
an edge only ever runs from an input or an earlier hidden node to a later
hidden node or an output. Disabled edges obey the same order, so the genome
stays acyclic when one is re-enabled.
"""
from __future__ import annotations

import random

from hypothesis import strategies as st

from ..ir import nodes as ir
from ..ops.activations import WANN_ACTIVATIONS

ACTIVATION_NAMES = tuple(a.name for a in WANN_ACTIVATIONS)


def build_genome(
    name: str,
    n_inputs: int,
    n_outputs: int,
    hidden_activations: list[str],
    output_activations: list[str],
    edges: list[tuple[int, int, bool]],
    with_bias: bool = True,
    weights: tuple[float, ...] | None = None,
    edge_weights: list[float | None] | None = None,
) -> ir.WannGenome:
    """A genome from index-level edges.

    Sources index ``inputs (+ bias) ++ hidden``; destinations index
    ``hidden ++ outputs``. The caller keeps edges in order (src before dst).
    `edge_weights`, parallel to `edges`, gives edges their own weight (None: the shared w).
    """
    inputs = [f"x{i}" for i in range(n_inputs)] + (["bias"] if with_bias else [])
    hidden = [f"h{i}" for i in range(len(hidden_activations))]
    outputs = [f"y{i}" for i in range(n_outputs)]
    sources = inputs + hidden
    targets = hidden + outputs
    settings = ()
    if weights is not None:
        items = [ir.Num(abs(w)) if w >= 0 else ir.Neg(ir.Num(abs(w))) for w in weights]
        settings = (ir.Setting("weights", ir.SetExpr(items)),)
    return ir.WannGenome(
        name,
        inputs,
        [ir.WannOutput(n, a) for n, a in zip(outputs, output_activations)],
        [ir.WannNode(n, a) for n, a in zip(hidden, hidden_activations)],
        [ir.WannEdge(sources[s], targets[d], enabled, ew)
         for (s, d, enabled), ew in zip(edges, edge_weights or [None] * len(edges))],
        settings,
    )


def _edge_allowed(src: int, dst: int, n_sources_before_hidden: int, n_hidden: int) -> bool:
    """Acyclic by construction: hidden node i may feed hidden node j only if i < j."""
    if src < n_sources_before_hidden:
        return True
    hidden_src = src - n_sources_before_hidden
    return dst >= n_hidden or hidden_src < dst


@st.composite
def wann_genomes(
    draw,
    n_inputs: int = 3,
    n_outputs: int = 2,
    max_hidden: int = 6,
    max_edges: int = 20,
    with_bias: bool | None = None,
    activations: tuple[str, ...] = ACTIVATION_NAMES,
    output_activations: tuple[str, ...] | None = None,
    edge_weights: bool = False,
) -> ir.WannGenome:
    """Valid acyclic genomes with the given numbers of observation inputs and outputs.

    With `edge_weights`, some edges (any, or none) carry a weight of their own (`w=0.3`)."""
    if with_bias is None:
        with_bias = draw(st.booleans())
    n_hidden = draw(st.integers(0, max_hidden))
    hidden_acts = draw(st.lists(st.sampled_from(activations), min_size=n_hidden, max_size=n_hidden))
    out_acts = draw(st.lists(st.sampled_from(output_activations or activations), min_size=n_outputs,
                             max_size=n_outputs))
    n_front = n_inputs + int(with_bias)
    candidates = [
        (s, d)
        for s in range(n_front + n_hidden)
        for d in range(n_hidden + n_outputs)
        if _edge_allowed(s, d, n_front, n_hidden)
    ]
    chosen = draw(st.lists(st.sampled_from(candidates), unique=True, max_size=min(max_edges, len(candidates))))
    # Mostly enabled, as in evolved genomes; disabled edges must still be ignored.
    flags = draw(st.lists(st.sampled_from((True, True, True, False)), min_size=len(chosen), max_size=len(chosen)))
    edges = [(s, d, flag) for (s, d), flag in zip(chosen, flags)]
    own = None
    if edge_weights:
        own = draw(st.lists(st.one_of(st.none(), EDGE_WEIGHTS), min_size=len(edges), max_size=len(edges)))
    return build_genome("g", n_inputs, n_outputs, hidden_acts, out_acts, edges, with_bias, edge_weights=own)


# an edge's own weight: small and large magnitudes, both signs (validate_genome allows |w| <= 1e6)
EDGE_WEIGHTS = st.one_of(st.floats(-3, 3, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False),
                         st.sampled_from([0.0, 1e-7, -2.5e-5, 1e6, -1e6]))


def random_genome(
    rng: random.Random,
    n_inputs: int,
    n_outputs: int,
    n_hidden: int,
    n_edges: int,
    disabled_fraction: float = 0.1,
    activations: tuple[str, ...] = ACTIVATION_NAMES,
    name: str = "g",
    output_activation: str | None = None,
    weighted_fraction: float = 0.0,
) -> ir.WannGenome:
    """A seeded random genome with `n_edges` enabled edges (plus some disabled ones).

    Output activations are drawn like the hidden ones unless `output_activation` fixes
    them, as a task does (WANN's classification outputs are linear and never mutate).
    """
    n_front = n_inputs + 1
    n_targets = n_hidden + n_outputs
    capacity = n_front * n_targets + n_hidden * (n_hidden - 1) // 2 + n_hidden * n_outputs
    n_disabled = int(round(n_edges * disabled_fraction))
    wanted = min(n_edges + n_disabled, capacity)
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < wanted:
        dst = rng.randrange(n_targets)
        n_allowed = n_front + (min(dst, n_hidden))
        src = rng.randrange(n_allowed)
        chosen.add((src, dst))
    ordered = sorted(chosen)
    rng.shuffle(ordered)
    edges = [(s, d, i >= n_disabled) for i, (s, d) in enumerate(ordered)]
    hidden_acts = [rng.choice(activations) for _ in range(n_hidden)]
    out_acts = [output_activation or rng.choice(activations) for _ in range(n_outputs)]
    # `weighted_fraction` of the edges get a weight of their own, uniform in [-2, 2]
    # (no draws without: the same seed gives the same genomes as before edge weights existed)
    own = [round(rng.uniform(-2, 2), 3) if rng.random() < weighted_fraction else None
           for _ in edges] if weighted_fraction > 0 else None
    return build_genome(name, n_inputs, n_outputs, hidden_acts, out_acts, edges, edge_weights=own)
