"""Property tests: the formatter and the parser are inverse, and no input crashes the parser."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from netevo_dsl.errors import NetevoError
from netevo_dsl.grammar.parser import lark_parser, parse
from netevo_dsl.ir import nodes as ir
from netevo_dsl.ir.printer import format_spec
from netevo_dsl.testing.strategies import expressions, networks, op_call_networks, specs

# Small sizes and counts keep this file at a few seconds; a Hypothesis profile can raise them.
PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _docs(spec):
    return [getattr(item, "doc", None) for item in spec.items]


@PROPERTY
@given(specs(max_items=3))
def test_format_then_parse_gives_the_same_ir_and_format_is_idempotent(spec):
    text = format_spec(spec)
    back = parse(text)
    assert back == spec, text
    assert _docs(back) == _docs(spec), text  # docs are not part of equality: compare them here
    assert format_spec(back) == text


@settings(max_examples=60, deadline=None)
@given(expressions())
def test_expressions_print_with_enough_parentheses(e):
    spec = ir.Spec((ir.Param("p", ir.ScalarType("int"), e),))
    assert parse(format_spec(spec)).items[0].default == e


@settings(max_examples=40, deadline=None)
@given(networks())
def test_generated_networks_check_and_round_trip(spec):
    from netevo_dsl.passes.check import check

    graphs = check(spec).graphs
    assert len(graphs) == 1 and all(g.outputs for g in graphs.values())
    assert parse(format_spec(spec)) == spec


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(from_lark(lark_parser(strict=True)))  # the uncached parser keeps `.grammar`
def test_grammar_sentences_parse_or_fail_cleanly(text):
    try:
        spec = parse(text)
    except NetevoError:
        return
    # Whatever parses must survive the formatter too.
    out = format_spec(spec)
    assert parse(out) == spec, out


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_raises_only_netevo_errors(text):
    try:
        parse(text)
    except NetevoError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("abc(){}[]<>:=,+-*/%|\"\n 0123.e") + [
    "network ", "genome ", "param ", "block ", "repeat ", "as ", "//", "///", "input ", "output "])).map("".join))
def test_near_miss_text_raises_only_netevo_errors(text):
    try:
        parse(text)
    except NetevoError:
        pass


@settings(max_examples=80, deadline=None)
@given(op_call_networks())
def test_check_raises_only_netevo_errors_on_random_op_calls(spec):
    from netevo_dsl.passes.check import check

    try:
        check(spec)
    except NetevoError:
        pass  # anything else (ValueError, TypeError, ...) would be a crash of `netevo check`
