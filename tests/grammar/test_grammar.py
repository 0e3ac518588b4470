"""The grammar and the parser: every construct, comments and docs, spans."""
import pytest

from netevo_dsl.errors import Span, SyntaxError_
from netevo_dsl.grammar.parser import lark_parser, parse
from netevo_dsl.ir import nodes as ir
from netevo_dsl.ir.printer import format_spec


def test_grammar_is_lalr_without_conflicts():
    # strict=True turns shift/reduce conflicts and terminal collisions into errors.
    parser = lark_parser(strict=True)
    assert parser.options.parser == "lalr"


def only(text):
    (item,) = parse(text).items
    return item


def expr(text):
    return only(f"param p: int = {text}").default


def body(text):
    return only("network n {\n" + text + "\n}").body


# --- expressions -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [("0", 0), ("42", 42), ("1.5", 1.5), (".5", 0.5), ("2.", 2.0),
                                         ("1e3", 1000.0), ("2.5E-2", 0.025)])
def test_numbers(text, value):
    e = expr(text)
    assert e == ir.Num(value) and type(e.value) is type(value)


def test_atoms():
    assert expr('"a // not a comment"') == ir.Str("a // not a comment")
    assert expr("true") == ir.Bool(True) and expr("false") == ir.Bool(False)
    assert expr("width") == ir.Name("width")
    assert expr("[1, x,]") == ir.ListExpr((ir.Num(1), ir.Name("x")))
    assert expr("{}") == ir.SetExpr(())
    assert expr("{-2, 0.5}") == ir.SetExpr((ir.Neg(ir.Num(2)), ir.Num(0.5)))


def test_negative_numbers_are_neg_of_num():
    assert expr("-1") == ir.Neg(ir.Num(1))
    assert expr("--x") == ir.Neg(ir.Neg(ir.Name("x")))


def test_precedence_and_associativity():
    n = ir.Name
    assert expr("a + b * c") == ir.BinOp("+", n("a"), ir.BinOp("*", n("b"), n("c")))
    assert expr("a - b - c") == ir.BinOp("-", ir.BinOp("-", n("a"), n("b")), n("c"))
    assert expr("a / b % c") == ir.BinOp("%", ir.BinOp("/", n("a"), n("b")), n("c"))
    assert expr("-a * b") == ir.BinOp("*", ir.Neg(n("a")), n("b"))
    assert expr("(a + b) * c") == ir.BinOp("*", ir.BinOp("+", n("a"), n("b")), n("c"))


def test_double_slash_starts_a_comment_not_an_operator():
    spec = parse("param p: int = 7 // 2")
    assert spec.items[0].default == ir.Num(7)
    assert [c.text for c in spec.comments] == ["// 2"]


def test_calls_and_pipes():
    call = expr("conv2d(x, 3, out=8, pad=\"same\",)")
    assert call == ir.Call("conv2d", (ir.Name("x"), ir.Num(3)),
                           (ir.KwArg("out", ir.Num(8)), ir.KwArg("pad", ir.Str("same"))))
    assert call.kwarg("out") == ir.Num(8) and call.kwarg("k") is None
    pipe = expr("x |> linear(out=4) |> relu()")  # `|>` associates left
    inner = ir.Pipe(ir.Name("x"), ir.Call("linear", (), (ir.KwArg("out", ir.Num(4)),)))
    assert pipe == ir.Pipe(inner, ir.Call("relu"))


def test_pipe_binds_loosest():
    assert expr("1 + x |> f()") == ir.Pipe(ir.BinOp("+", ir.Num(1), ir.Name("x")), ir.Call("f"))
    assert expr("(x |> f()) + 1") == ir.BinOp("+", ir.Pipe(ir.Name("x"), ir.Call("f")), ir.Num(1))
    with pytest.raises(SyntaxError_, match="unexpected `[+]`"):  # the right side of |> is one call
        parse("param p: int = x |> f() + 1")


def test_positional_after_keyword_is_a_syntax_error():
    with pytest.raises(SyntaxError_, match="positional argument after keyword"):
        parse("param p: int = f(a=1, 2)")


# --- items and statements ----------------------------------------------------------------------


def test_version_import_param_mask():
    spec = parse('version 1\nimport "blocks.net"\nparam width: int = 64\nparam rate: float\n'
                 "mask m = random(density=0.1, seed=7)\n")
    assert spec.items == (
        ir.Version(1),
        ir.Import("blocks.net"),
        ir.Param("width", ir.ScalarType("int"), ir.Num(64)),
        ir.Param("rate", ir.ScalarType("float"), None),
        ir.MaskDef("m", ir.Call("random", (), (ir.KwArg("density", ir.Num(0.1)), ir.KwArg("seed", ir.Num(7))))),
    )


def test_version_must_be_whole():
    with pytest.raises(SyntaxError_, match="whole number"):
        parse("version 1.5")


def test_network_statements():
    stmts = body("input img: [B, 3, H, W]\n"
                 "a, b = split(img, sizes=[1, 2])\n"
                 "repeat 2 as r { a = relu(a) }\n"
                 "output y = a + b\n")
    assert stmts[0] == ir.Input("img", ir.TensorType((ir.Name("B"), ir.Num(3), ir.Name("H"), ir.Name("W"))))
    assert stmts[1].targets == ("a", "b") and stmts[1].value.func == "split"
    assert stmts[2] == ir.Repeat(ir.Num(2), "r", (ir.Assign(("a",), ir.Call("relu", (ir.Name("a"),))),))
    assert stmts[3] == ir.Output("y", ir.BinOp("+", ir.Name("a"), ir.Name("b")))


def test_block_with_typed_params_and_return_type():
    block = only("block res(x: [B, c, H, W], c: int, k: int = 3) -> [B, c, H / 2, W / 2] {\n"
                 "  return x\n}")
    assert block.name == "res"
    assert [p.name for p in block.params] == ["x", "c", "k"]
    assert isinstance(block.params[0].type, ir.TensorType) and block.params[1].type == ir.ScalarType("int")
    assert block.params[2].default == ir.Num(3)
    assert block.returns.dims[2] == ir.BinOp("/", ir.Name("H"), ir.Num(2))
    assert block.body == (ir.Return(ir.Name("x")),)
    assert only("block b() { return x }").returns is None


def test_wann_genome():
    g = only("genome xor: wann {\n  inputs a, b, bias\n  outputs y: sigmoid, z: tanh\n  weights {-1, 1}\n"
             "  node h: gauss\n  edge a -> h\n  edge h -> y [disabled]\n  edge b -> z [enabled]\n}")
    assert isinstance(g, ir.WannGenome) and g.kind == "wann"
    assert g.inputs == ("a", "b", "bias")
    assert g.outputs == (ir.WannOutput("y", "sigmoid"), ir.WannOutput("z", "tanh"))
    assert g.nodes == (ir.WannNode("h", "gauss"),)
    assert [e.enabled for e in g.edges] == [True, False, True]
    assert g.settings == (ir.Setting("weights", ir.SetExpr((ir.Neg(ir.Num(1)), ir.Num(1)))),)


def test_transformer_genome():
    g = only("genome gpt: transformer {\n  vocab 64 context 32 embed 64\n  masks random(density=0.5)\n"
             "  layer { heads 4 ffn 128 activation gelu }\n  layer { heads 2 attention off }\n}")
    assert isinstance(g, ir.TransformerGenome)
    assert [s.key for s in g.settings] == ["vocab", "context", "embed", "masks"]
    assert ir.setting(g.settings, "embed") == ir.Num(64)
    assert [[s.key for s in layer.settings] for layer in g.layers] == [["heads", "ffn", "activation"],
                                                                        ["heads", "attention"]]
    assert ir.setting(g.layers[1].settings, "attention") == ir.Name("off")


@pytest.mark.parametrize("text, message", [
    ("genome g: cnn { }", "unknown genome kind"),
    ("genome g: wann { layer { heads 1 } }", "belongs in a transformer genome"),
    ("genome g: transformer { node h: sin }", "belong in a wann genome"),
    ("genome g: wann { inputs a outputs y: tanh edge a -> y [off] }", "unknown edge flag"),
])
def test_genome_kind_mistakes_are_syntax_errors(text, message):
    with pytest.raises(SyntaxError_, match=message):
        parse(text)


def test_mutate_and_evolve():
    m = only('mutate net {\n  width(fc1, "conv*", p=0.3, choices={32, 64})\n  add_node(p=0.25)\n}')
    assert m.target == "net"
    assert m.rules[0] == ir.Call("width", (ir.Name("fc1"), ir.Str("conv*")),
                                 (ir.KwArg("p", ir.Num(0.3)),
                                  ir.KwArg("choices", ir.SetExpr((ir.Num(32), ir.Num(64))))))
    e = only("evolve net {\n  task swingup(max_steps=10)\n  population 8\n"
             "  objective maximize mean(reward)\n  objective minimize connections\n}")
    assert e.settings[0] == ir.Setting("task", ir.Call("swingup", (), (ir.KwArg("max_steps", ir.Num(10)),)))
    assert e.settings[2] == ir.Objective("maximize", ir.Call("mean", (ir.Name("reward"),)))
    assert e.settings[3] == ir.Objective("minimize", ir.Name("connections"))


def test_keywords_are_contextual_but_true_and_false_are_always_literals():
    # The contextual lexer only treats a keyword as one where the grammar expects it.
    assert only("param network: int = 1").name == "network"
    assert expr("true") == ir.Bool(True)


# --- comments, docs, spans ---------------------------------------------------------------------

SOURCE = """\
// header comment
version 1

/// The width.
/// Overridable with -D.
param width: int = 64  // trailing

network n {
  // inside
  input x: [B, width]
  output y = relu(x)  // after code
}
"""


def test_comments_and_docs_are_kept():
    spec = parse(SOURCE, "f.net")
    param = spec.items[1]
    assert param.doc == "The width.\nOverridable with -D."
    texts = [(c.line, c.text, c.own_line) for c in spec.comments]
    assert texts == [(1, "// header comment", True), (6, "// trailing", False), (9, "// inside", True),
                     (11, "// after code", False)]
    assert format_spec(spec) == SOURCE


def test_docs_do_not_change_equality():
    assert parse("/// doc\nparam a: int = 1") == parse("param a: int = 1")
    assert parse("/// doc\nparam a: int = 1").items[0].doc == "doc"


def test_spans_point_at_the_source():
    spec = parse(SOURCE, "f.net")
    param = spec.items[1]
    assert param.span == Span("f.net", 6, 1, 6, 22)  # end column is exclusive
    net = spec.items[2]
    assert (net.span.line, net.span.end_line) == (8, 12)
    inp, out = net.body
    assert inp.span == Span("f.net", 10, 3, 10, 22)
    relu = out.value
    assert relu.span == Span("f.net", 11, 14, 11, 21)
    assert relu.args[0].span == Span("f.net", 11, 19, 11, 20)
    assert str(relu.span) == "f.net:11:14"


def test_syntax_error_span_and_hint():
    with pytest.raises(SyntaxError_) as info:
        parse("network n {\n  x = = 1\n}", "bad.net")
    err = info.value
    assert err.code == "E001" and err.message == "unexpected `=`"
    assert err.span == Span("bad.net", 2, 7, 2, 8)
    assert err.hint.startswith("expected ")
