"""Hostile spec texts for fuzzing the front end: deep nesting, long chains, huge repeats and numbers,
recursive blocks, imports of odd files, hostile names and bytes, and random mutations of good specs.

`hostile_case(rng, seeds)` returns one `HostileCase`: the text of `main.net` (str, or bytes when the
case is about encoding) and any further files it imports. Pure Python; used by
`benchmarks/fuzz_frontend.py` (10,000 cases) and `tests/grammar/test_hostile_frontend.py` (a few hundred).
A case is passed when `check(load(path))` returns or raises a `NetevoError`, quickly.
"""
from __future__ import annotations

import random

import attrs

from ..limits import NN_MODULE_ATTRIBUTES

# Files outside the spec's folder an `import` may point at; none of them is a .net file.
ODD_IMPORTS = ("/dev/zero", "/dev/urandom", "/proc/self/environ", "/proc/self/mem", "/etc/passwd", "/", ".",
               "..", "", "main.net", "fifo.net", "missing.net", "dir.net", "huge.net", "binary.net", "link.net")
BIG_NUMBERS = ("0", "-1", "1.5", "9223372036854775807", "9223372036854775808", "2147483647", "2147483648",
               "1" + "0" * 30, "1e308", "1e309", "99999999999999999999", ".5e-400", "-" * 7 + "3")


@attrs.frozen
class HostileCase:
    kind: str
    text: str | bytes
    files: tuple = ()  # (name, text or bytes) written next to main.net


def _net(*lines: str, shape: str = "[B, 8]") -> str:
    return "network n {\n  input x: " + shape + "\n" + "".join(f"  {s}\n" for s in lines) + "}\n"


def _nested_expr(rng: random.Random, depth: int) -> str:
    form = rng.choice(["call", "neg", "paren", "list", "pipe", "sum", "mixed"])
    if form == "call":
        return "relu(" * depth + "x" + ")" * depth
    if form == "neg":
        return "linear(x, out=" + "-" * depth + "3)"
    if form == "paren":
        return "(" * depth + "x" + ")" * depth
    if form == "list":
        return "reshape(x, shape=" + "[" * depth + "8" + "]" * depth + ")"
    if form == "pipe":
        return "x" + " |> relu()" * depth
    if form == "sum":
        return " + ".join(["x"] * depth)
    parts = ["x"]
    for _ in range(depth):
        parts = [rng.choice(["relu({})", "({})", "{} + x", "{} |> relu()", "{} * x"]).format("".join(parts))]
    return parts[0]


def nesting(rng: random.Random) -> HostileCase:
    depth = rng.choice([1, 5, 50, 95, 99, 100, 101, 150, 245, 330, 490, 1000, 3000])
    expr = _nested_expr(rng, depth)
    if rng.random() < 0.3:  # nested repeats instead
        body = "x = relu(x)"
        for i in range(min(depth, 400)):
            body = f"repeat 1 as r{i} {{\n{body}\n}}"
        return HostileCase("nesting", _net(body, "output y = x"))
    return HostileCase("nesting", _net(f"output y = {expr}"))


def blocks(rng: random.Random) -> HostileCase:
    """Chains and fans of blocks, sometimes recursive (a block reaching itself)."""
    n = rng.choice([1, 2, 5, 30, 40, 60, 164, 400])
    fan = rng.choice([1, 1, 2, 3])
    recursive = rng.random() < 0.4
    text = []
    for i in range(n):
        if i == n - 1:
            callee = f"b{rng.randrange(n)}" if recursive else None
        else:
            callee = f"b{rng.randrange(i + 1) if recursive and rng.random() < 0.2 else i + 1}"
        value = "relu(x)" if callee is None else "x"
        for _ in range(fan if callee else 0):
            value = f"{callee}({value})"
        text.append(f"block b{i}(x: [B, c]) -> [B, c] {{\n  return {value}\n}}\n")
    return HostileCase("blocks", "".join(text) + _net("output y = b0(x)"))


def repeats(rng: random.Random) -> HostileCase:
    counts = ["0", "1", "3", "10000", "10001", "100000", "1000000000", "1" + "0" * 30, "-1", "1.5", "true", "B"]
    levels = rng.choice([1, 1, 2, 3, 4])
    body = rng.choice(["x = relu(x)", "x = linear(x, out=8)", "", "x = x + relu(x)"])
    for i in range(levels):
        body = f"repeat {rng.choice(counts)} as r{i} {{\n{body}\n}}"
    return HostileCase("repeats", _net(body, "output y = x"))


def numbers(rng: random.Random) -> HostileCase:
    big = lambda: rng.choice(BIG_NUMBERS)  # noqa: E731
    form = rng.randrange(6)
    if form == 0:  # params that square each other
        n = rng.choice([5, 10, 40])
        text = "param p0: int = 2\n" + "".join(f"param p{i}: int = p{i - 1} * p{i - 1}\n" for i in range(1, n))
        return HostileCase("numbers", text + _net(f"output y = linear(x, out=p{n - 1})"))
    if form == 1:
        return HostileCase("numbers", _net(f"output y = linear(x, out={big()})"))
    if form == 2:
        return HostileCase("numbers", _net("output y = relu(x)", shape=f"[B, {big()}, {big()}]"))
    if form == 3:
        op = rng.choice([f"softmax(x, dim={big()})", f"reshape(x, shape=[{big()}, {big()}])",
                         f"a, b = split(x, sizes=[{big()}, {big()}])", f"conv2d(x, out=4, k={big()})",
                         f"flatten(x, start={big()})", f"transpose(x, dim0={big()}, dim1=0)",
                         f"dropout(x, p={big()})", f"embedding(x, vocab={big()}, dim={big()})"])
        return HostileCase("numbers", _net(op if op.startswith("a, b") else f"output y = {op}",
                                           *(["output y = a"] if op.startswith("a, b") else [])))
    if form == 4:  # symbolic sizes: products and sums of many symbols, nested divisions
        k = rng.choice([3, 16, 17, 40, 100])
        dim = rng.choice([" * ".join(f"s{i}" for i in range(k)),
                          " * ".join(f"(s{i} + 1)" for i in range(k)),
                          " + ".join(f"{i} * s{i}" for i in range(k)),
                          "(" * k + "H" + "".join(f" / s{i})" for i in range(k))])
        return HostileCase("numbers", _net("output y = relu(x)", shape=f"[B, {dim}]"))
    return HostileCase("numbers", f"param a: float = {big()} * {big()} * {big()}\n" + _net("output y = relu(x)"))


def names(rng: random.Random) -> HostileCase:
    name = rng.choice(sorted(NN_MODULE_ATTRIBUTES) + ["__class__", "self", "torch", "x", "forward_", "_x"])
    form = rng.randrange(3)
    if form == 0:
        return HostileCase("names", _net(f"{name} = linear(x, out=4)", f"output y = relu({name})"))
    if form == 1:
        return HostileCase("names", _net(f"output {name} = relu(x)"))
    return HostileCase("names", _net(f"repeat 2 as {name} {{\n  x = linear(x, out=8)\n}}", "output y = x"))


def imports(rng: random.Random) -> HostileCase:
    target = rng.choice(ODD_IMPORTS)
    files = []
    if target == "huge.net":
        files.append(("huge.net", "// " + "x" * (5 * 2**20) + "\n"))
    elif target == "binary.net":
        files.append(("binary.net", bytes(rng.randrange(256) for _ in range(200))))
    elif target == "link.net":
        files.append(("link.net", "@symlink:/dev/zero"))
    elif target == "fifo.net":
        files.append(("fifo.net", "@fifo"))
    elif target == "dir.net":
        files.append(("dir.net", "@dir"))
    return HostileCase("imports", f'version 1\nimport "{target}"\n' + _net("output y = relu(x)"), tuple(files))


def encoding(rng: random.Random, seeds: list[str]) -> HostileCase:
    text = rng.choice(seeds).encode()
    form = rng.randrange(4)
    if form == 0:
        return HostileCase("encoding", b"\xef\xbb\xbf" + text)
    at = rng.randrange(len(text) + 1)
    junk = rng.choice([b"\xff", b"\x00", b"\x1b[31m", b"\xc3", b"\xed\xa0\x80", b"\r", b"\t", b"\x0c"])
    return HostileCase("encoding", text[:at] + junk + text[at:])


def many_errors(rng: random.Random) -> HostileCase:
    n = rng.choice([10, 500, 2000])
    line = rng.choice(["param p{i} int = 3\n", "network n{i} {{\n  y = = 2\n}}\n", "network n{i} {{\n  output y = relu(z)\n}}\n"])
    return HostileCase("many_errors", "".join(line.format(i=i) for i in range(n)))


_TOKENS = ("(", ")", "[", "]", "{", "}", ",", "=", "-", "+", "*", "/", "%", "|>", "->", ":", '"', "//", "///",
           "repeat 9999 as r {", "block", "network", "import", "param", "relu(", "x", "B", "0", "-1",
           "99999999999999999999", "1e999", "forward", "__class__", "\n", "\u2028", "\x00")


def mutate(rng: random.Random, seeds: list[str]) -> HostileCase:
    """A shipped spec with a few random edits: deletions, duplications, inserted tokens, swapped lines."""
    text = rng.choice(seeds)
    for _ in range(rng.randint(1, 6)):
        lines = text.split("\n")
        edit = rng.randrange(5)
        if edit == 0 and len(text) > 2:
            a = rng.randrange(len(text))
            text = text[:a] + text[a + rng.randint(1, 20):]
        elif edit == 1:
            i = rng.randrange(len(lines))
            lines[i:i] = [lines[i]] * rng.choice([1, 2, 50])
            text = "\n".join(lines)
        elif edit == 2:
            a = rng.randrange(len(text) + 1)
            text = text[:a] + rng.choice(_TOKENS) * rng.choice([1, 1, 3, 150]) + text[a:]
        elif edit == 3:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        else:
            text = text.replace(str(rng.choice([1, 2, 3, 8, 16, 32, 64, 128, 256])), rng.choice(BIG_NUMBERS), 1)
    return HostileCase("mutation", text)


def genomes(rng: random.Random) -> HostileCase:
    """A WANN genome with a long chain of hidden nodes, sometimes closed into a cycle."""
    n = rng.choice([3, 100, 2000])
    text = "genome g: wann {\n  inputs a, bias\n  outputs y: tanh\n" + "".join(f"  node h{i}: sin\n" for i in range(n))
    text += "  edge a -> h0\n" + "".join(f"  edge h{i} -> h{i + 1}\n" for i in range(n - 1)) + f"  edge h{n - 1} -> y\n"
    if rng.random() < 0.5:
        text += f"  edge h{n - 1} -> h{rng.randrange(n)}\n"
    return HostileCase("genomes", text + "}\n")


KINDS = ("nesting", "blocks", "repeats", "numbers", "names", "imports", "encoding", "many_errors", "mutation",
         "genomes")


def hostile_case(rng: random.Random, seeds: list[str], kind: str | None = None) -> HostileCase:
    """One case; `seeds`: texts of good specs (the shipped specs/*.net) to mutate."""
    kind = kind or rng.choice(KINDS + ("mutation", "mutation", "nesting", "numbers"))
    if kind in ("encoding", "mutation"):
        return globals()["encoding" if kind == "encoding" else "mutate"](rng, seeds)
    return {"nesting": nesting, "blocks": blocks, "repeats": repeats, "numbers": numbers, "names": names,
            "imports": imports, "many_errors": many_errors, "genomes": genomes}[kind](rng)


class Hang(Exception):
    """Raised by the timer when one case runs past its time limit."""


def write_case(case: HostileCase, folder) -> str:
    """Write main.net and its files into `folder` (a fresh one per case); returns main.net's path."""
    import os

    for name, content in case.files:
        path = os.path.join(folder, name)
        if content == "@fifo":
            os.mkfifo(path)
        elif content == "@dir":
            os.mkdir(path)
        elif isinstance(content, str) and content.startswith("@symlink:"):
            os.symlink(content.split(":", 1)[1], path)
        else:
            with open(path, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
    main = os.path.join(folder, "main.net")
    with open(main, "wb") as f:
        f.write(case.text.encode() if isinstance(case.text, str) else case.text)
    return main


def run_case(case: HostileCase, folder, limit_s: float = 5.0) -> tuple[str, float, str]:
    """`check(load(main.net))` plus rendering its errors, as `netevo check` does.

    Returns (outcome, seconds, detail): outcome is "ok", "error" (a NetevoError, the expected
    refusal), "crash" (any other exception: a bug) or "hang" (past `limit_s`, interrupted by a timer).
    """
    import signal
    import time

    from ..errors import NetevoError, errors_to_json, flatten
    from ..grammar.loader import load, read_text
    from ..passes.check import check

    def on_timer(signum, frame):
        raise Hang()

    path = write_case(case, folder)
    old = signal.signal(signal.SIGALRM, on_timer)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    t0 = time.perf_counter()
    try:
        try:
            check(load(path))
            outcome, detail = "ok", ""
        except NetevoError as e:
            files = {str(x.span.file) for x in flatten(e) if x.span and x.span.file}
            sources = {}
            for f in files:
                try:
                    sources[f] = read_text(f)
                except NetevoError:
                    pass
            e.render(sources)
            errors_to_json(e)
            outcome, detail = "error", " ".join(sorted({x.code for x in flatten(e)}))
    except Hang:
        outcome, detail = "hang", ""
    except BaseException as e:  # noqa: BLE001 - counting crashes is the point; KeyboardInterrupt still ends the run
        if isinstance(e, KeyboardInterrupt):
            raise
        outcome, detail = "crash", f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return outcome, time.perf_counter() - t0, detail


__all__ = ["Hang", "HostileCase", "KINDS", "hostile_case", "run_case", "write_case"]
