"""Counted measures (params, FLOPs, density) from inferred shapes, against the compiled modules.

Outside definitions: `sum(p.numel() for p in module.parameters())` for parameters, torch's
`torch.utils.flop_counter.FlopCounterMode` on the compiled module for FLOPs, the mask buffers
of the compiled layers for density, and a hand count for digits_mlp.
"""
import glob
import os

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import netevo_dsl as ne
from netevo_dsl.errors import NetevoError
from netevo_dsl.passes.measures import density, flops, param_count
from netevo_dsl.runtime.measures import latency

SPECS = os.path.join(os.path.dirname(__file__), "..", "..", "specs")

SMALL_CNN = """version 1
network cnn {
  input img: [B, 1, 8, 8]
  c1 = img |> conv2d(out=6, k=3, pad="same") |> batchnorm2d() |> relu() |> maxpool2d(k=2)
  c2 = c1 |> conv2d(out=8, k=3, groups=2, bias=false) |> relu()
  flat = flatten(c2)
  output logits = linear(flat, out=10)
}
"""

TINY_GPT = """version 1
network tiny_gpt {
  input idx: [B, 12]
  wte = embedding(idx, vocab=20, dim=16)
  wpe = pos_embedding(wte, context=16)
  ln = layernorm(wpe)
  a = wpe + attention(ln, heads=4)
  m = a + gpt2_mlp(layernorm(a), hidden=24)
  output logits = linear(m, out=20, bias=false)
}
"""


def _networks():
    out = []
    for path in sorted(glob.glob(os.path.join(SPECS, "*.net"))):
        spec = ne.load(path)
        out += [(os.path.basename(path), spec, n.name) for n in spec.networks]
    return out + [("small_cnn", ne.parse(SMALL_CNN), "cnn"), ("tiny_gpt", ne.parse(TINY_GPT), "tiny_gpt")]


def _example(graph, batch=2):
    xs = []
    for i in graph.inputs:
        shape = [batch] + [int(str(d)) if str(d).isdigit() else 16 for d in i.shape[1:]]
        xs.append(torch.randint(0, 8, shape) if "idx" in i.name else torch.randn(shape))
    return xs


@pytest.mark.parametrize("name, spec, network", _networks(), ids=[f"{a}:{c}" for a, _, c in _networks()])
def test_params_and_flops_match_the_compiled_module(name, spec, network):
    graph = ne.infer_shapes(spec, network)
    module = ne.compile_module(spec, network)
    assert param_count(graph) == sum(p.numel() for p in module.parameters())
    concrete = all(str(d).isdigit() for i in graph.inputs for d in i.shape[1:])
    if not concrete:
        with pytest.raises(NetevoError) as info:
            flops(graph)
        assert info.value.code == "E134"
        return
    batch = 2
    xs = _example(graph, batch)
    # the math backend of scaled_dot_product_attention runs as matmuls, which FlopCounterMode counts
    # (it does not count the CPU's fused attention kernel)
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        module.eval()(*xs)
    assert flops(graph) * batch == counter.get_total_flops()


def test_flops_by_hand_for_digits_mlp():
    graph = ne.infer_shapes(ne.load(os.path.join(SPECS, "digits_mlp.net")))
    # 64 -> 128 -> 64 -> 10: two FLOPs per multiply-add, biases not counted (as FlopCounterMode)
    assert flops(graph) == 2 * (64 * 128 + 128 * 64 + 64 * 10)
    assert param_count(graph) == 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10


def test_density_counts_live_mask_entries():
    spec = ne.load(os.path.join(SPECS, "sparse_mlp.net"))
    module = ne.compile_module(spec)
    masks = [m.mask for m in module.modules() if hasattr(m, "mask")]
    live = sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
    assert density(ne.infer_shapes(spec)) == pytest.approx(live)
    assert density(ne.infer_shapes(ne.load(os.path.join(SPECS, "digits_mlp.net")))) == 1.0


def test_latency_is_a_positive_median():
    module = ne.compile_module(ne.load(os.path.join(SPECS, "digits_mlp.net")))
    t = latency(module, torch.randn(8, 64), repeats=5)
    assert 0 < t < 1.0 and module.training
