"""Masked layers, shared-weight (WANN) mode, transformer genomes."""
import pytest
import torch

import netevo_dsl as ne
from netevo_dsl.compiler.modules import MaskedConv2d, MaskedLinear

from .conftest import SPECS_DIR
from .helpers import exec_source

MASKED = """
mask m = {mask}
network n {{
  input x: [B, 12]
  h = x |> linear(out=8, mask=m) |> relu()
  output y = linear(h, out=4, mask=m)
}}
"""


def test_all_ones_mask_equals_dense_layer():
    dense = ne.compile_module(ne.parse(MASKED.format(mask="dense()").replace(", mask=m", ""))).double()
    masked = ne.compile_module(ne.parse(MASKED.format(mask="dense()"))).double()
    assert isinstance(masked.h[0], MaskedLinear) and masked.h[0].density == 1.0
    masked.load_state_dict({**dense.state_dict(), **{k: v for k, v in masked.state_dict().items() if "mask" in k}})
    x = torch.randn(5, 12, dtype=torch.float64)
    torch.testing.assert_close(masked(x), dense(x), atol=1e-12, rtol=0)


def test_random_mask_has_declared_density_and_blocks_gradients():
    net = ne.compile_module(ne.parse(MASKED.format(mask="random(density=0.25, seed=3)")))
    layer = net.h[0]
    assert layer.nnz == round(0.25 * 8 * 12)
    assert layer.mask.dtype == torch.bool and "h.0.mask" in net.state_dict()
    net(torch.randn(4, 12)).sum().backward()
    assert torch.all(layer.weight.grad[~layer.mask] == 0)
    assert layer.weight.grad[layer.mask].abs().sum() > 0


def test_grow_and_prune_change_connections():
    layer = MaskedLinear(4, 3, mask=torch.zeros(3, 4, dtype=torch.bool))
    layer.grow(torch.tensor([0, 5]))
    assert layer.nnz == 2
    layer.prune(torch.tensor([0]))
    assert layer.nnz == 1 and layer.weight.view(-1)[0] == 0
    conv = MaskedConv2d(4, 2, 3, mask=torch.ones(2, 4, dtype=torch.bool))
    conv.prune(torch.tensor([1]))
    assert conv.nnz == 7 and torch.all(conv.weight[0, 1] == 0)


@pytest.mark.parametrize("name,shape", [("sparse_mlp", (3, 64)), ("lenet5", (2, 1, 32, 32)), ("mlp", (3, 784))])
def test_shared_weight_mode_equals_dense_network_with_every_weight_set_to_w(name, shape):
    spec = ne.load(f"{SPECS_DIR}/{name}.net")
    net = ne.compile_module(spec).double().eval()
    x = torch.randn(*shape, dtype=torch.float64)
    w = torch.tensor([-2.0, -0.5, 1.0, 2.0], dtype=torch.float64)
    y = net(x, w=w)
    assert y.shape[0] == len(w)
    for i, wi in enumerate(w):
        ref = ne.compile_module(spec).double().eval()
        with torch.no_grad():
            for pname, p in ref.named_parameters():
                p.fill_(float(wi) if pname.endswith("weight") and p.dim() > 1 else 0.0)
        torch.testing.assert_close(y[i], ref(x), atol=1e-9, rtol=1e-9)


def test_transformer_genome_shared_weight_equals_dense_and_source():
    spec = ne.load(f"{SPECS_DIR}/wann_gpt.net")
    model = ne.compile_module(spec).double()
    emitted = exec_source(ne.emit_source(spec))["build"]().double()
    emitted.load_state_dict(model.state_dict())
    idx = torch.randint(0, 3, (2, 16))
    w = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)
    y = model(idx, w)
    torch.testing.assert_close(y, emitted(idx, w), atol=1e-10, rtol=0)
    for i, wi in enumerate(w):
        with torch.no_grad():
            for p in emitted.parameters():
                p.fill_(float(wi))
        torch.testing.assert_close(emitted(idx), y[i], atol=1e-10, rtol=1e-10)


def test_meta_device_builds_without_allocating():
    net = ne.compile_module(ne.load(f"{SPECS_DIR}/resnet18.net"), device="meta")
    assert all(p.device.type == "meta" for p in net.parameters())


def test_invalid_spec_raises_checker_error_not_torch_error():
    bad = "network n {\n  input x: [B, 4]\n  output y = conv2d(x, out=3, k=3)\n}\n"
    with pytest.raises(ne.NetevoError) as err:
        ne.compile_module(ne.parse(bad, "bad.net"))
    assert err.value.span is not None and err.value.span.line == 3


def test_wrong_runtime_input_shape_names_the_input_and_its_symbolic_shape():
    net = ne.compile_module(ne.load(f"{SPECS_DIR}/lenet5.net"))
    with pytest.raises(ne.NetevoError, match=r"input `img` .* \[B, 1, 32, 32\]"):
        net(torch.randn(2, 3, 32, 32))


def test_activation_sites_take_their_producers_neuron_axis():
    net = ne.compile_module(ne.parse("""network n {
  input x: [B, T, 8]
  h = x |> linear(out=16) |> relu()
  c = x |> transpose(dim0=1, dim1=2) |> conv1d(out=4, k=1) |> gelu()
  output y = linear(h, out=2)
}"""))
    assert net.neuron_sites["h.1"]["axis"] == -1  # hidden units of [B, T, H], not T
    assert net.neuron_sites["c.1"]["axis"] == 1  # conv channels
