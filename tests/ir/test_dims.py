"""Symbolic dims: polynomial arithmetic, the divisibility convention, substitution and source text."""
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netevo_dsl.ir.dims import Dim, concrete_shape, shape_str, to_source

B, H, W, c = (Dim.sym(s) for s in "BHWc")


def test_concrete_arithmetic_and_equality_with_ints():
    assert Dim.of(3) + 4 == 7 and 4 + Dim.of(3) == 7
    assert Dim.of(3) - 5 == -2 and 10 - Dim.of(3) == 7
    assert Dim.of(6) * 7 == 42
    assert Dim.of(7) // 2 == 3 and Dim.of(7) % 3 == 1
    assert Dim.of(7) / 2 == Dim.const(Fraction(7, 2)) and not (Dim.of(7) / 2).is_int()
    assert int(Dim.of(6) / 2) == 3
    assert Dim.of(3.0) == 3 and Dim.of(Dim.of(3)) == 3


def test_polynomials_normalise():
    assert H + W == W + H
    assert H * W == W * H
    assert H + H == 2 * H
    assert H - H == 0
    assert (H + 1) * (H - 1) == H * H - 1
    assert (2 * c) / c == 2 and (H * W) / H == W
    assert (H + W).symbols() == {"H", "W"} and Dim.of(5).symbols() == set()


def test_equal_dims_hash_equal():
    assert hash(H + 1) == hash(1 + H)
    assert {H * W + 1: "x"}[1 + W * H] == "x"


def test_floor_division_by_a_constant_assumes_divisibility():
    # The strided-conv formula with k=3, pad=1, stride=2, and the pool with k=2.
    assert (H + 2 * 1 - 3) // 2 + 1 == H / 2
    assert (H - 1) // 2 + 1 == H / 2
    assert (H - 2) // 2 + 1 == H / 2
    assert (H + 2 * 3 - 7) // 2 + 1 == H / 2  # resnet's 7x7 stem
    assert H % 2 == 0  # symbolic sizes are taken to be divisible


def test_the_convention_only_holds_for_divisible_sizes():
    half = (H - 1) // 2 + 1
    assert half.substitute({"H": 32}) == (32 - 1) // 2 + 1 == 16
    odd = half.substitute({"H": 33})  # the real size is 17; the symbolic formula says 33 / 2
    assert odd == Dim.const(Fraction(33, 2)) and not odd.is_int()


@given(st.integers(1, 200), st.integers(-9, 9), st.integers(1, 8))
def test_floordiv_matches_python_on_divisible_sizes(m, offset, stride):
    size = m * stride
    symbolic = (H + offset) // stride
    assert symbolic.substitute({"H": size}) == (size + offset) // stride


@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(-5, 5), st.integers(-5, 5))
def test_substitution_is_a_ring_homomorphism(h, w, a, b):
    p, q = a * H + W * W + b, H * W - a
    env = {"H": h, "W": w}
    assert (p + q).substitute(env) == p.substitute(env) + q.substitute(env)
    assert (p * q).substitute(env) == p.substitute(env) * q.substitute(env)
    assert (p - q).substitute(env) == h * a + w * w + b - (h * w - a)


def test_division_by_a_symbol_that_does_not_cancel_stays_opaque():
    ratio = H / W
    assert ratio.symbols() == {"H", "W"} and not ratio.is_concrete
    assert ratio.substitute({"H": 12, "W": 4}) == 3
    assert ratio.substitute({"W": 4}) == H / 4
    assert (H // W).substitute({"H": 13, "W": 4}) == 3


def test_partial_substitution_and_substituting_dims():
    assert (2 * H + W).substitute({"H": 3}) == W + 6
    assert (H * H).substitute({"H": c + 1}) == c * c + 2 * c + 1


def test_to_source():
    assert to_source(2 * c + 1) == "2 * c + 1"
    assert to_source(H / 2) == "H / 2"
    assert to_source(H / 2, integer_division=True) == "H // 2"
    assert to_source(3 - H) == "-H + 3"
    assert to_source(Dim.of(0)) == "0"
    assert to_source(Dim.of(7) / 2) == "7 / 2"
    assert to_source(c * c) == "c * c"
    assert to_source(H * W - 1, names=lambda s: f"self.{s}") == "self.H * self.W - 1"
    assert to_source(H / W) == "(H) / (W)"
    assert str(B + 1) == "B + 1" and repr(H) == "Dim(H)"


def test_shapes():
    assert shape_str((B, 3, H / 2)) == "[B, 3, H / 2]"
    assert concrete_shape((1, 2, Dim.of(3))) == (1, 2, 3)
    assert concrete_shape((1, H)) is None
    assert concrete_shape((Dim.of(3) / 2,)) is None


def test_bad_values():
    with pytest.raises(TypeError):
        Dim.of(True)
    with pytest.raises(TypeError):
        Dim.of(1.5)
    with pytest.raises(ZeroDivisionError):
        H / 0
    with pytest.raises(ZeroDivisionError):
        H // 0
    with pytest.raises(ValueError, match="symbolic"):
        int(H)
    with pytest.raises(ValueError, match="not an integer"):
        int(Dim.of(3) / 2)
