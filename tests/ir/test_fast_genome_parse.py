"""The fast genome reader against the full Lark parser (the judge): same IR, same spans, or no answer.

`parse_generated_genome` must return exactly what `parse(text).items[0]` returns for the printer's
form of every WANN genome, and None (fall back to the full parser) for anything else: comments,
keywords used as names, other layouts, several items, texts the full parser rejects.
"""
from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netevo_dsl.errors import NetevoError
from netevo_dsl.evolve.population import genome_from_text, genome_text
from netevo_dsl.grammar.fast_genome import _keywords, parse_generated_genome
from netevo_dsl.grammar.parser import parse
from netevo_dsl.ir import nodes as ir
from netevo_dsl.testing.wann_strategies import wann_genomes

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
PLAIN_NAMES = NAMES.filter(lambda n: n not in _keywords())
NUMBERS = st.one_of(st.integers(0, 10**6), st.floats(0, 1e30, allow_nan=False, allow_infinity=False))


def _num(v):
    return ir.Num(abs(v)) if v >= 0 else ir.Neg(ir.Num(abs(v)))


SIGNED = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e30, 1e30, allow_nan=False)).map(_num)
VALUES = st.one_of(
    NUMBERS.map(ir.Num),
    SIGNED,
    PLAIN_NAMES.map(ir.Name),
    st.booleans().map(ir.Bool),
    st.lists(SIGNED, max_size=6).map(ir.SetExpr),
    st.lists(SIGNED, max_size=6).map(ir.ListExpr),
)
SETTINGS = st.lists(st.tuples(PLAIN_NAMES, VALUES).map(lambda kv: ir.Setting(*kv)), max_size=3)


@st.composite
def printed_genomes(draw):
    genome = draw(wann_genomes(n_inputs=draw(st.integers(1, 5)), n_outputs=draw(st.integers(1, 3)),
                               edge_weights=draw(st.booleans())))  # `edge a -> b w=0.3` too
    genome = attrs.evolve(genome, name=draw(PLAIN_NAMES), settings=draw(SETTINGS))
    return genome_text(genome)


def _spans(x, out):
    """Every span in an IR tree, in field order (IR equality leaves them out)."""
    if attrs.has(type(x)):
        for field in attrs.fields(type(x)):
            value = getattr(x, field.name)
            if field.name == "span":
                out.append(value)
            else:
                _spans(value, out)
    elif isinstance(x, tuple):
        for v in x:
            _spans(v, out)
    return out


def _agrees(text: str) -> ir.WannGenome | None:
    """The fast answer, checked against the full parser: equal IR and spans, or None."""
    fast = parse_generated_genome(text, path="g.net")
    try:
        full = parse(text, path="g.net")
    except NetevoError:
        assert fast is None, "the fast path accepted a text the full parser rejects"
        return None
    if fast is not None:
        assert full.items == (fast,)
        assert full.comments == () and fast.doc == full.items[0].doc
        assert _spans(fast, []) == _spans(full.items[0], [])
    return fast


@settings(max_examples=150, deadline=None)
@given(printed_genomes())
def test_printed_genomes_take_the_fast_path_and_equal_the_full_parse(text):
    assert _agrees(text) is not None
    assert genome_from_text(text) == parse(text).items[0]


# Near misses: edits of a printed genome that the fast path must either read exactly as the full
# parser does, or leave to it.
EDITS = st.one_of(
    st.tuples(st.just("insert"), st.sampled_from([" ", "\t", "\r", "//", "/// doc\n", "-", "[", "}", "\n", ",",
                                                   "\ufeff", "1e999", "node", " [enabled]", "x"])),
    st.tuples(st.just("delete"), st.integers(1, 3)),
    st.tuples(st.just("keyword"), st.sampled_from(sorted(_keywords()))),
    st.tuples(st.just("append"), st.sampled_from(["genome h: wann {\n  inputs a\n  outputs y: linear\n}\n",
                                                  "// tail\n", "\n", " ", "version 1\n"])),
)


@settings(max_examples=300, deadline=None)
@given(printed_genomes(), EDITS, st.data())
def test_near_misses_fall_back_or_agree(text, edit, data):
    kind, arg = edit
    at = data.draw(st.integers(0, len(text)))
    if kind == "insert":
        text = text[:at] + arg + text[at:]
    elif kind == "delete":
        text = text[:at] + text[at + arg:]
    elif kind == "keyword":  # a keyword where the printer put a name: y0, h0, x0 or the genome's name
        name = data.draw(st.sampled_from(["x0", "y0", "g", text.split(":")[0].split()[-1]]))
        text = text.replace(name, arg, 1)
    else:
        text += arg
    _agrees(text)
    try:
        full = parse(text).items
    except NetevoError:
        return
    if full:
        assert genome_from_text(text) == full[0]


BASE = "genome g: wann {\n  inputs x0, bias\n  outputs y0: linear\n  weights {-2, 0.5}\n  node h0: tanh\n" \
       "  edge x0 -> h0\n  edge h0 -> y0 [disabled]\n}\n"


@pytest.mark.parametrize("text", [
    BASE.replace("node h0", "node node"),                      # keyword as a name
    BASE.replace("weights", "/// doc\n  weights"),             # a doc comment
    BASE.replace("}\n", "} // end\n"),                         # a trailing comment
    BASE.replace("[disabled]", "[enabled]"),                   # a flag the printer never writes
    BASE.replace("  edge x0", "\tedge x0"),                    # another layout
    BASE.replace("\n", "\r\n"),
    "\ufeff" + BASE,
    BASE.replace("0.5", "1" + "0" * 50),                       # the full parser judges long numbers
    BASE.replace("0.5", "1e999"),                              # not finite: the full parser's error
    BASE.replace("edge x0 -> h0", "edge x0 -> h0 w=1e999"),     # an edge weight that is not finite
    BASE.replace("edge x0 -> h0", "edge x0 -> h0 w = 0.5"),     # spaces the printer never writes
    BASE.replace("edge x0 -> h0", "edge x0 -> h0 w=" + "1" * 50),
    BASE.replace("{-2, 0.5}", "{-2, 0.5,}"),
    BASE.replace("{-2, 0.5}", "-x"),
    BASE + BASE.replace("genome g", "genome h"),               # two items
    BASE.replace(": wann", ": transformer"),
    BASE.replace("inputs x0, bias", "inputs"),                 # rejected by the full parser
])
def test_other_forms_fall_back(text):
    assert parse_generated_genome(text) is None
    _agrees(text)


def test_the_base_case_is_read_and_equals_the_full_parse():
    genome = _agrees(BASE)
    assert genome is not None and genome.settings[0].value == ir.SetExpr((ir.Neg(ir.Num(2)), ir.Num(0.5)))
    assert math.isclose(genome.settings[0].value.items[1].value, 0.5) and not genome.edges[1].enabled
