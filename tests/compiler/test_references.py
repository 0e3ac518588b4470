"""Compiled networks against independent implementations: transformers' GPT-2 and torchvision's ResNet-18."""
import os

import pytest
import torch

import netevo_dsl as ne
from netevo_dsl.compiler.keymaps import hf_gpt2_state_dict

from .conftest import SPECS_DIR


def test_gpt2_tiny_matches_transformers_gpt2():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=128, n_positions=32,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    hf = transformers.GPT2LMHeadModel(config).double().eval()
    ours = ne.compile_module(ne.load(f"{SPECS_DIR}/gpt2_tiny.net")).double().eval()
    ours.load_state_dict(hf_gpt2_state_dict(hf.state_dict()), strict=True)
    idx = torch.randint(0, 128, (3, 20))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(idx).logits, atol=1e-10, rtol=0)


def test_resnet18_matches_torchvision():
    # CI runs this file a second time in a venv with torchvision and NETEVO_REQUIRE_TORCHVISION=1 (see .ci/run).
    if os.environ.get("NETEVO_REQUIRE_TORCHVISION"):
        import torchvision
    else:
        torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.resnet18(weights=None).double().eval()
    ours = ne.compile_module(ne.load(f"{SPECS_DIR}/resnet18.net")).double().eval()
    ref_sd, our_sd = reference.state_dict(), ours.state_dict()
    assert list(ref_sd) == list(our_sd)
    assert all(ref_sd[k].shape == our_sd[k].shape for k in ref_sd)
    ours.load_state_dict(ref_sd)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-10, rtol=0)
