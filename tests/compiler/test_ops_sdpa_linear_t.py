"""The ops GPT-2's import adds: sdpa (scaled dot-product attention) and linear_t (a linear layer whose weight is
stored (in, out), as transformers' Conv1D), compiled and emitted, against their definitions in float64."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netevo_dsl as ne

from .helpers import emitted_network


def _both(text):
    spec = ne.parse(text)
    graph = ne.infer_shapes(spec)
    direct = ne.compile_module(spec, dtype=torch.float64).eval()
    emitted = emitted_network(ne.emit_source(spec), graph.name).double().eval()
    emitted.load_state_dict(direct.state_dict(), strict=True)
    return direct, emitted


def _attention(q, k, v, causal, scale):
    """Vaswani et al. (2017), eq. 1: softmax(q k^T * scale) v, scale 1/sqrt(d_k); causal: key j > query i masked."""
    scores = q @ k.transpose(-2, -1) * (scale if scale is not None else 1.0 / math.sqrt(q.shape[-1]))
    if causal:
        later = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).triu(1)
        scores = scores.masked_fill(later, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@settings(max_examples=20, deadline=None)
@given(heads=st.integers(1, 3), t=st.integers(1, 6), d=st.integers(1, 5), dv=st.integers(1, 4),
       causal=st.booleans(), scale=st.sampled_from([None, 0.3]), seed=st.integers(0, 2**16))
def test_sdpa_is_scaled_dot_product_attention(heads, t, d, dv, causal, scale, seed):
    extra = (", causal=true" if causal else "") + (f", scale={scale}" if scale is not None else "")
    text = (f"network n {{\n  input q: [B, {heads}, {t}, {d}]\n  input k: [B, {heads}, {t}, {d}]\n"
            f"  input v: [B, {heads}, {t}, {dv}]\n  output y = sdpa(q, k, v{extra})\n}}\n")
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, heads, t, n, generator=g, dtype=torch.float64) for n in (d, d, dv))
    want = _attention(q, k, v, causal, scale)
    with torch.no_grad():
        for net in _both(text):
            assert torch.allclose(net(q, k, v), want, rtol=0, atol=1e-12)


def test_linear_t_is_x_times_its_in_out_weight():
    direct, emitted = _both("network n {\n  input x: [B, 3, 5]\n  output y = linear_t(x, out=4)\n}\n")
    assert direct.y.weight.shape == (5, 4) and direct.y.bias.shape == (4,)  # (in, out), as Conv1D
    with torch.no_grad():
        for p in direct.parameters():
            p.copy_(torch.randn_like(p))
        emitted.load_state_dict(direct.state_dict(), strict=True)
        x = torch.randn(2, 3, 5, dtype=torch.float64)
        want = x @ direct.y.weight + direct.y.bias
        for net in (direct, emitted):
            assert torch.allclose(net(x), want, rtol=0, atol=1e-12)


def test_linear_t_loads_a_transformers_conv1d():
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    conv = pytorch_utils.Conv1D(6, 5).double()
    with torch.no_grad():
        conv.bias.copy_(torch.randn(6, dtype=torch.float64))
    direct, _ = _both("network n {\n  input x: [B, 5]\n  y = linear_t(x, out=6)\n  output o = y\n}\n")
    direct.y.load_state_dict(conv.state_dict(), strict=True)
    x = torch.randn(3, 5, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(direct(x), conv(x), rtol=0, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(heads=st.integers(1, 3), t=st.integers(1, 5), d=st.integers(1, 4), causal=st.booleans(), seed=st.integers(0, 99))
def test_sdpa_with_heads_is_attention_per_head(heads, t, d, causal, seed):
    """`heads=h` on [B, T, E]: head i is the features i*E/h .. (i+1)*E/h of q, k and v (Vaswani et al. 2017, sec.
    3.2.2, without the projections), each attended alone, the results laid side by side."""
    e = heads * d
    text = (f"network n {{\n  input q: [B, {t}, {e}]\n  input k: [B, {t}, {e}]\n  input v: [B, {t}, {e}]\n"
            f"  output y = sdpa(q, k, v, heads={heads}{', causal=true' if causal else ''})\n}}\n")
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, t, e, generator=g, dtype=torch.float64) for _ in range(3))
    want = torch.cat([_attention(q[..., i * d:(i + 1) * d], k[..., i * d:(i + 1) * d], v[..., i * d:(i + 1) * d],
                                 causal, None) for i in range(heads)], dim=-1)
    with torch.no_grad():
        for net in _both(text):
            assert torch.allclose(net(q, k, v), want, rtol=0, atol=1e-12)
