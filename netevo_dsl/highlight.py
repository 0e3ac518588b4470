"""A Pygments lexer for .net specs, registered as the `netevo` lexer (`pygmentize -l netevo model.net`).

It follows the grammar's tokens (`grammar/netevo.lark`): keywords, names, names called as ops or blocks,
numbers, strings, `//` comments and `///` doc comments. Needs the optional `pygments` package
(`pip install 'netevo[highlight]'`); nothing else in netevo imports this module.
"""
from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

# Every keyword of netevo.lark (tests/test_editors.py checks this list against the grammar).
KEYWORDS = ("version", "import", "param", "block", "mask", "network", "input", "output", "return", "repeat", "as",
            "genome", "inputs", "outputs", "node", "edge", "layer", "mutate", "evolve", "objective", "train")
CONSTANTS = ("true", "false")
TYPES = ("int", "float", "bool")
DIRECTIONS = ("maximize", "minimize")


class NetevoLexer(RegexLexer):
    name = "netevo"
    aliases = ["netevo", "net"]
    filenames = ["*.net"]
    mimetypes = ["text/x-netevo"]
    url = "https://pypi.org/project/netevo/"

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"///[^\n]*", String.Doc),
            (r"//[^\n]*", Comment.Single),
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (words(TYPES, suffix=r"\b"), Keyword.Type),
            (words(DIRECTIONS, suffix=r"\b"), Keyword.Pseudo),
            (r"([A-Za-z_][A-Za-z0-9_]*)(\s*)(\()", bygroups(Name.Function, Text, Punctuation)),
            (r"[A-Za-z_][A-Za-z0-9_]*", Name),
            (r"(\d+\.\d*|\.\d+|\d+)[eE][+-]?\d+", Number.Float),
            (r"\d+\.\d*|\.\d+", Number.Float),
            (r"\d+", Number.Integer),
            (r'"[^"\\\n]*"', String.Double),
            (r"\|>|->", Operator),
            (r"[+\-*/%=]", Operator),
            (r"[()\[\]{},:]", Punctuation),
        ],
    }


__all__ = ["NetevoLexer", "KEYWORDS"]
