"""The reward's softmax denominator, summed class by class on slices of individuals (issue 18, item 1).

`_exp_sum` computes sum over classes of exp(max(x - high, -80)) a few individuals at a time, so
that its passes stay in cache. Expected values: the definition written out in torch on the whole
tensor, the numerator floored at -80 when asked, exponentiated, and summed with `ordered_sum` (one
addition per class, in class order). Slices are what the scorer's bits must not depend on: every
slice size must give exactly the whole tensor's bits, NaN, infinities and floored values included.
"""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netevo_dsl.runtime.tasks.classification import _exp_sum, ordered_sum

values = st.one_of(st.floats(-200, 200, width=32), st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0,
                                                                    -0.0, 1e30, -1e30]))


@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(st.integers(1, 9), st.integers(1, 4), st.integers(1, 3), st.integers(1, 5)),
       data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]), floor=st.booleans(),
       slice_bytes=st.integers(1, 400))
def test_slices_of_individuals_give_the_whole_tensors_bits(shape, data, dtype, floor, slice_bytes):
    P, C, W, b = shape
    x = torch.tensor(data.draw(st.lists(values, min_size=P * C * W * b, max_size=P * C * W * b)),
                     dtype=dtype).view(P, C, W, b)
    high = x.amax(1)
    numerator = x - high.unsqueeze(1)
    if floor:
        numerator = numerator.clamp_min(-80.0)
    expected = ordered_sum(numerator.exp(), 1)
    got = _exp_sum(x, high, floor, torch.empty_like(high), slice_bytes=slice_bytes)
    assert torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(expected, nan=7.0))
    assert torch.equal(got.isnan(), expected.isnan())
