"""Symbolic tensor dimensions.

A `Dim` is a polynomial with rational coefficients over atoms. An atom is a
symbol (`B`, `H`, a block parameter) or an opaque floor division that could not
be simplified. Concrete sizes are constant polynomials, so shape rules are
written once, with ordinary arithmetic, and work for concrete and symbolic
shapes alike.

Floor division by a constant assumes symbolic sizes are divisible by it
(`(H - 1) // 2 + 1 == H / 2`): the usual convention for strided nets. Concrete
sizes are always checked exactly when the network is compiled or run.
"""
from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Union

from ..errors import NetevoError
from ..limits import MAX_DIM_FACTORS, MAX_DIM_NESTING, MAX_DIM_TERMS

Monomial = tuple  # sorted tuple of atom keys (with repetition)


class Dim:
    __slots__ = ("terms", "_hash")

    def __init__(self, terms: dict):
        # Building Fractions dominates shape inference; skip it for coefficients that already are.
        self.terms = {m: c if type(c) is Fraction else Fraction(c) for m, c in terms.items() if c != 0}
        self._hash = None

    # construction -------------------------------------------------------------
    @staticmethod
    def const(value) -> "Dim":
        return Dim({(): value})

    @staticmethod
    def sym(name: str) -> "Dim":
        return Dim({(name,): Fraction(1)})

    @staticmethod
    def of(value) -> "Dim":
        if type(value) is int:  # the common case; a Dim is never mutated, so small ones are shared
            return _small_const(value) if -64 <= value <= 4096 else Dim.const(value)
        if isinstance(value, Dim):
            return value
        if isinstance(value, bool):
            raise TypeError("a bool is not a size")
        if isinstance(value, (int, Fraction)):
            return Dim.const(value)
        if isinstance(value, float) and value.is_integer():
            return Dim.const(int(value))
        raise TypeError(f"not a size: {value!r}")

    # queries -----------------------------------------------------------------
    @property
    def is_concrete(self) -> bool:
        return all(m == () for m in self.terms)

    @property
    def value(self) -> Fraction:
        if not self.is_concrete:
            raise ValueError(f"{self} is symbolic")
        return self.terms.get((), Fraction(0))

    def __int__(self) -> int:
        v = self.value
        if v.denominator != 1:
            raise ValueError(f"{self} is not an integer")
        return int(v)

    def is_int(self) -> bool:
        return self.is_concrete and self.value.denominator == 1

    def symbols(self) -> set[str]:
        out = set()
        for m in self.terms:
            for atom in m:
                out |= _atom_symbols(atom)
        return out

    # arithmetic ---------------------------------------------------------------
    def __add__(self, other):
        other = Dim.of(other)
        terms = dict(self.terms)
        for m, c in other.terms.items():
            terms[m] = terms.get(m, 0) + c
        if len(terms) > MAX_DIM_TERMS:
            raise _too_complex(f"more than {MAX_DIM_TERMS} terms")
        return Dim(terms)

    __radd__ = __add__

    def __neg__(self):
        return Dim({m: -c for m, c in self.terms.items()})

    def __sub__(self, other):
        return self + (-Dim.of(other))

    def __rsub__(self, other):
        return Dim.of(other) - self

    def __mul__(self, other):
        other = Dim.of(other)
        terms: dict = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                if len(m1) + len(m2) > MAX_DIM_FACTORS:
                    raise _too_complex(f"a term multiplies more than {MAX_DIM_FACTORS} symbols")
                m = tuple(sorted(m1 + m2, key=str))
                terms[m] = terms.get(m, 0) + c1 * c2
            if len(terms) > MAX_DIM_TERMS:  # checked as it grows: (a + 1) * (b + 1) * ... doubles each time
                raise _too_complex(f"more than {MAX_DIM_TERMS} terms")
        return Dim(terms)

    __rmul__ = __mul__

    def __truediv__(self, other):
        """Exact division: by a constant it scales; by a symbol it must cancel."""
        other = Dim.of(other)
        if other.is_concrete:
            if other.value == 0:
                raise ZeroDivisionError("division of a size by zero")
            return Dim({m: c / other.value for m, c in self.terms.items()})
        if len(other.terms) == 1:
            (m2, c2), = other.terms.items()
            if all(_divides(m2, m) for m in self.terms):
                return Dim({_remove(m, m2): c / c2 for m, c in self.terms.items()})
        return _opaque("div", self, other)

    def __floordiv__(self, other):
        other = Dim.of(other)
        if other.is_concrete:
            d = other.value
            if d == 0:
                raise ZeroDivisionError("division of a size by zero")
            if self.is_concrete:
                return Dim.const(self.value // d)
            # Symbolic part assumed divisible; floor the constant.
            const = self.terms.get((), Fraction(0))
            rest = {m: c / d for m, c in self.terms.items() if m != ()}
            rest[()] = Fraction((const / d).__floor__())
            return Dim(rest)
        exact = self / other
        if not any(isinstance(a, tuple) for m in exact.terms for a in m):
            return exact
        return _opaque("floordiv", self, other)

    def __mod__(self, other):
        other = Dim.of(other)
        if self.is_concrete and other.is_concrete:
            return Dim.const(self.value % other.value)
        return self - (self // other) * other

    # identity ---------------------------------------------------------------
    def key(self) -> tuple:
        return tuple(sorted(self.terms.items(), key=lambda kv: str(kv[0])))

    def __eq__(self, other):
        if isinstance(other, (int, Fraction)) and not isinstance(other, bool):
            other = Dim.const(other)
        if not isinstance(other, Dim):
            return NotImplemented
        return self.terms == other.terms

    def __hash__(self):
        if self._hash is None:
            self._hash = hash(self.key())
        return self._hash

    def __repr__(self):
        return f"Dim({self})"

    def __str__(self):
        return to_source(self)

    def substitute(self, mapping: dict[str, "Dim"]) -> "Dim":
        out = Dim.const(0)
        for m, c in self.terms.items():
            term = Dim.const(c)
            for atom in m:
                term = term * _subst_atom(atom, mapping)
            out = out + term
        return out


def _opaque(kind: str, a: Dim, b: Dim) -> Dim:
    """A division that does not simplify, kept as an atom; atoms inside atoms nest at most MAX_DIM_NESTING deep."""
    if max(_nesting(a), _nesting(b)) >= MAX_DIM_NESTING:
        raise _too_complex(f"divisions nested more than {MAX_DIM_NESTING} deep")
    return Dim({((kind, a.key(), b.key()),): 1})


def _nesting(dim: Dim) -> int:
    """How deep opaque division atoms nest inside each other (0: none), without recursion."""
    deepest, stack = 0, [(m, 1) for m in dim.terms]
    while stack:
        monomial, depth = stack.pop()
        for atom in monomial:
            if isinstance(atom, tuple):
                deepest = max(deepest, depth)
                stack += [(m, depth + 1) for key in atom[1:] for m, _ in key]
    return deepest


def _too_complex(what: str) -> NetevoError:
    return NetevoError(f"a symbolic size grows too complex: {what}", None,
                       "give the symbols concrete values (-D or param), or simplify the shape expression",
                       code="E126")


@functools.cache
def _small_const(value: int) -> Dim:
    return Dim.const(value)


def _divides(small: tuple, big: tuple) -> bool:
    rest = list(big)
    for a in small:
        if a in rest:
            rest.remove(a)
        else:
            return False
    return True


def _remove(big: tuple, small: tuple) -> tuple:
    rest = list(big)
    for a in small:
        rest.remove(a)
    return tuple(rest)


def _from_key(key) -> Dim:
    return Dim(dict(key))


def _atom_symbols(atom) -> set[str]:
    if isinstance(atom, str):
        return {atom}
    return _from_key(atom[1]).symbols() | _from_key(atom[2]).symbols()


def _subst_atom(atom, mapping) -> Dim:
    if isinstance(atom, str):
        return Dim.of(mapping[atom]) if atom in mapping else Dim.sym(atom)
    a, b = _from_key(atom[1]).substitute(mapping), _from_key(atom[2]).substitute(mapping)
    return a // b if atom[0] == "floordiv" else a / b


def _atom_source(atom, names) -> str:
    if isinstance(atom, str):
        return names(atom)
    op = "//" if atom[0] == "floordiv" else "/"
    return f"({to_source(_from_key(atom[1]), names)}) {op} ({to_source(_from_key(atom[2]), names)})"


def to_source(dim: Dim, names=lambda s: s, integer_division: bool = False) -> str:
    """Readable text for a dim: `2 * c + 1`, `H / 2`. With integer_division, `/` becomes `//`."""
    if not dim.terms:
        return "0"
    if integer_division and any(c.denominator != 1 for c in dim.terms.values()):
        # (k - 1) / 2 is `(k - 1) // 2`, not `k // 2 - 1 / 2`: one floor division of the whole numerator
        den = math.lcm(*(c.denominator for c in dim.terms.values()))
        num = to_source(dim * den, names, integer_division)
        return f"({num}) // {den}" if " + " in num or " - " in num else f"{num} // {den}"
    parts = []
    for m, c in sorted(dim.terms.items(), key=lambda kv: (kv[0] == (), str(kv[0]))):
        atoms = " * ".join(_atom_source(a, names) for a in m)
        num, den = abs(c.numerator), c.denominator
        if not atoms:
            text = str(num) if den == 1 else f"{num} / {den}"
        else:
            text = atoms if num == 1 else f"{num} * {atoms}"
            if den != 1:
                text = f"{text} {'//' if integer_division else '/'} {den}"
        parts.append(("-" if c < 0 else "+", text))
    first_sign, first = parts[0]
    out = ("-" if first_sign == "-" else "") + first
    for sign, text in parts[1:]:
        out += f" {sign} {text}"
    return out


DimLike = Union[Dim, int]
Shape = tuple  # tuple[Dim, ...]


def shape_str(shape) -> str:
    return "[" + ", ".join(str(Dim.of(d)) for d in shape) + "]"


def concrete_shape(shape) -> tuple[int, ...] | None:
    """The shape as ints, or None when any dim is symbolic or fractional."""
    if all(Dim.of(d).is_int() for d in shape):
        return tuple(int(d) for d in shape)
    return None
