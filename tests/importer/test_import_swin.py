"""Swin transformers (v1 and v2): shifted_window_attention and patch_merging, imported from torchvision's layers.

Oracles: torchvision's ShiftedWindowAttention(V2) and PatchMerging(V2) in float64 with their own weights (shifted
and plain windows, sizes that need padding, a window larger than the map), and torchvision's SwinTransformer at a
small configuration for the whole import (compiled spec and emitted source load its state_dict with strict=True and
give its eval outputs; swin_t/s/b and swin_v2_t/s/b themselves are in the coverage run, benchmarks/import_coverage.py).
"""
import pytest
import torch

import netevo_dsl as ne

from .test_import import _assert_reproduces, _emitted_source_model, _torchvision


def _swin():
    return _torchvision().models.swin_transformer


def _compare(spec, layer, x):
    layer = layer.double().eval()
    with torch.no_grad():
        for p in layer.parameters():  # a bias table that matters, a logit scale off its initial value
            p.add_(0.1 * torch.randn_like(p))
        want = layer(x)
    for model in (ne.compile_module(spec, dtype=torch.float64), _emitted_source_model(spec).double()):
        model.load_state_dict({f"y.{k}": v for k, v in layer.state_dict().items()}, strict=True)
        with torch.no_grad():
            got = model.eval()(x)
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=0, atol=1e-12 * want.abs().max().item())


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("size, window, shift", [((8, 8), [4, 4], [2, 2]), ((7, 10), [4, 4], [2, 2]),
                                                 ((6, 6), [3, 3], [0, 0]), ((3, 9), [4, 3], [2, 1])])
def test_shifted_window_attention_equals_torchvisions_layer(v2, size, window, shift):
    swin = _swin()
    torch.manual_seed(0)
    cls = swin.ShiftedWindowAttentionV2 if v2 else swin.ShiftedWindowAttention
    layer = cls(8, window, shift, 2)
    spec = ne.parse(f"network n {{\n  input x: [B, {size[0]}, {size[1]}, 8]\n  output y = shifted_window_attention("
                    f"x, heads=2, window={window}, shift={shift}, v2={str(v2).lower()})\n}}\n")
    _compare(spec, layer, torch.randn(2, *size, 8, dtype=torch.float64))


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("size", [(4, 6), (5, 7)])
def test_patch_merging_equals_torchvisions_layer(v2, size):
    swin = _swin()
    torch.manual_seed(0)
    layer = (swin.PatchMergingV2 if v2 else swin.PatchMerging)(6)
    spec = ne.parse(f"network n {{\n  input x: [B, {size[0]}, {size[1]}, 6]\n"
                    f"  output y = patch_merging(x, v2={str(v2).lower()})\n}}\n")
    _compare(spec, layer, torch.randn(3, *size, 6, dtype=torch.float64))


@pytest.mark.parametrize("v2", [False, True])
def test_a_small_swin_imports_exactly(v2):
    swin = _swin()
    torch.manual_seed(0)
    extra = dict(block=swin.SwinTransformerBlockV2, downsample_layer=swin.PatchMergingV2) if v2 else {}
    model = swin.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                                 stochastic_depth_prob=0.2, num_classes=10, **extra)
    spec = _assert_reproduces(model, torch.randn(1, 3, 32, 32, dtype=torch.float64))
    keys = list(ne.compile_module(spec).state_dict())
    if v2:  # its blocks norm after attention (`norm1(attn(x))`): statements, and keys, come in call order
        assert sorted(keys) == sorted(model.state_dict()) and keys != list(model.state_dict())
    else:
        assert keys == list(model.state_dict())
    text = ne.format(spec)
    assert "shifted_window_attention(" in text and "patch_merging(" in text
