"""transformers' GPT2LMHeadModel through `from_module` (the torch.export path: torch.fx cannot trace it).

The oracle is transformers' own GPT2LMHeadModel in float64 eval mode, every weight random (biases and layer norms
too, so a transposed or misplaced tensor shows): the compiled spec and its emitted source load the model's
state_dict with strict=True and give its logits (atol 1e-9 x the logits' scale).
"""
import json
import os
import subprocess
import sys

import pytest
import torch

import netevo_dsl as ne
from netevo_dsl import NetevoError

transformers = pytest.importorskip("transformers")


def tiny_gpt2(n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=32, seed=0):
    """A small GPT2LMHeadModel, all weights random (for `netevo import` as well: MODULE:CALLABLE)."""
    transformers.logging.set_verbosity_error()  # the small vocabulary does not hold GPT-2's bos/eos ids
    config = transformers.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size,
                                     n_positions=n_positions)
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        for p in model.parameters():  # lm_head.weight is transformers.wte.weight (tied): one tensor
            p.copy_(torch.randn_like(p) * 0.3)
    return model.eval()


def _emitted(spec):
    namespace = {"__name__": "emitted"}
    exec(compile(ne.emit_source(spec), "<emitted>", "exec"), namespace)
    net = [item.name for item in spec.items if type(item).__name__ == "Network"][0]
    return next(v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)
                and v.__module__ == "emitted" and v.__name__.lower().replace("_", "") == net.replace("_", ""))()


@pytest.mark.parametrize("n_layer, n_head, n_embd", [(2, 2, 32), (1, 4, 16)])
def test_gpt2_imports_exactly(n_layer, n_head, n_embd):
    model = tiny_gpt2(n_layer, n_head, n_embd).double()
    ids = torch.randint(0, 100, (2, 7), generator=torch.Generator().manual_seed(1))
    spec = ne.from_module(model, ids)
    text = ne.format(spec)
    assert ne.format(ne.parse(text)) == text  # what `netevo import` writes passes `netevo fmt --check`
    assert "input input_ids: [B, T]" in text and "output logits = lm_head" in text  # any batch, any length
    assert f"sdpa(narrow, narrow_1, narrow_2, heads={n_head}, causal=true)" in text
    assert "pos_embedding(wte, context=32)" in text and "linear_t(" in text
    compiled = ne.compile_module(spec, dtype=torch.float64).eval()
    emitted = _emitted(spec).double().eval()
    for net in (compiled, emitted):
        net.load_state_dict(model.state_dict(), strict=True)
        assert list(net.state_dict()) == list(model.state_dict())  # the same keys, in the same order
    with torch.no_grad():
        for shape in ((5, 7), (3, 32), (1, 1)):  # other batch sizes and lengths, up to n_positions
            x = torch.randint(0, 100, shape, generator=torch.Generator().manual_seed(sum(shape)))
            want = model(x).logits
            scale = want.abs().max().item()
            for net in (compiled, emitted):
                assert torch.allclose(net(x), want, rtol=0, atol=1e-9 * scale)


def test_the_tied_head_is_two_tensors_in_the_spec():
    """state_dict lists lm_head.weight and transformer.wte.weight (one tensor in GPT-2); the spec has no shared
    weights, so it holds two equal copies after loading."""
    model = tiny_gpt2().double()
    assert model.lm_head.weight is model.transformer.wte.weight
    net = ne.compile_module(ne.from_module(model, torch.randint(0, 100, (2, 5))), dtype=torch.float64)
    net.load_state_dict(model.state_dict(), strict=True)
    assert torch.equal(net.state_dict()["lm_head.weight"], net.state_dict()["transformer.wte.weight"])
    assert net.lm_head.weight is not net.transformer.wte.weight


def test_the_export_leaves_the_models_modes_as_they_were():
    model = tiny_gpt2().double().train()
    ne.from_module(model, torch.randint(0, 100, (2, 5)))
    assert all(m.training for m in model.modules())


def test_an_attention_mask_given_as_an_input_is_refused():
    """A padding mask is data, not the causal mask the `sdpa` op keeps: a located refusal, no traceback."""
    model = tiny_gpt2().double()
    ids = torch.randint(0, 100, (2, 5))
    with pytest.raises(NetevoError) as e:
        ne.from_module(model, {"input_ids": ids, "attention_mask": torch.ones(2, 5, dtype=torch.long)})
    assert e.value.code == "E162" and "padding mask" in e.value.message


def test_cli_imports_gpt2_from_a_factory(tmp_path):
    out, weights = tmp_path / "gpt2.net", tmp_path / "gpt2.pt"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # MODULE from the checkout
    run = subprocess.run([sys.executable, "-m", "netevo_dsl.cli", "import", "tests.importer.test_gpt2_import:tiny_gpt2",
                          "--args", json.dumps({"n_layer": 1}), "--input", "input_ids=2,6:int100", "-o", str(out),
                          "--weights", str(weights)], capture_output=True, text=True, cwd=root)
    assert run.returncode == 0, run.stderr
    for command in (["fmt", "--check", str(out)], ["check", str(out)]):
        assert subprocess.run([sys.executable, "-m", "netevo_dsl.cli", *command], capture_output=True).returncode == 0
    spec = ne.load(str(out))
    net = ne.compile_module(spec).eval()
    net.load_state_dict(torch.load(weights), strict=True)
    model = tiny_gpt2(n_layer=1)
    ids = torch.randint(0, 100, (3, 6))
    with torch.no_grad():
        want = model(ids).logits
        assert torch.allclose(net(ids), want, rtol=0, atol=1e-5 * want.abs().max().item())  # float32 here


# --- the torch.export path on models of the user's own (no transformers needed; fx fails on their branch) ---


class Branchy(torch.nn.Module):
    """A branch on a size: torch.fx cannot trace it (a Proxy in `if`), torch.export can."""

    def __init__(self):
        super().__init__()
        self.fc, self.act, self.out = torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)

    def forward(self, x):
        h = self.act(self.fc(x))
        if x.shape[-1] > 4:
            h = h + h
        return self.out(h)


class MaskedAttention(torch.nn.Module):
    """SDPA with a constant mask: `tril` is the causal one (kept), `triu` (each query sees the keys after it) is not."""

    def __init__(self, mask="triu", scalar=False):
        super().__init__()
        self.qkv, self.mask, self.scalar = torch.nn.Linear(8, 24), mask, scalar

    def forward(self, x):
        if x.shape[1] > 1 and self.scalar:  # fx cannot trace this branch; export can
            x = x * 2.0
        q, k, v = self.qkv(x).split(8, dim=2)
        mask = getattr(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool), self.mask)()
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def test_a_model_fx_cannot_trace_imports_through_torch_export():
    torch.manual_seed(0)
    model = Branchy().double().eval()
    x = torch.randn(2, 6, dtype=torch.float64)
    spec = ne.from_module(model, x)
    net = ne.compile_module(spec, dtype=torch.float64).eval()
    net.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        for batch in (x, torch.randn(5, 6, dtype=torch.float64)):
            want = model(batch)
            assert torch.allclose(net(batch), want, rtol=0, atol=1e-9 * want.abs().max().item())


def test_export_path_refusals_are_located_errors():
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    with pytest.raises(NetevoError) as e:
        ne.from_module(MaskedAttention("triu").double().eval(), x)
    assert e.value.code == "E162" and "attention mask that is not the causal one" in e.value.message
    with pytest.raises(NetevoError) as e:  # `x * 2.0` is ATen's mul by a scalar, which no op declares
        ne.from_module(MaskedAttention("tril", scalar=True).double().eval(), x)
    assert e.value.code in ("E160", "E162") and "aten.mul" in e.value.message
    assert e.value.span is not None and e.value.span.file == __file__  # the user's line, from export's stack trace


def test_a_causal_mask_built_by_the_user_imports_as_sdpa_causal():
    torch.manual_seed(0)
    model = MaskedAttention("tril").double().eval()
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    spec = ne.from_module(model, x)
    assert "sdpa(narrow, narrow_1, narrow_2, causal=true)" in ne.format(spec)
    net = ne.compile_module(spec, dtype=torch.float64).eval()
    net.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        want = model(x)
        assert torch.allclose(net(x), want, rtol=0, atol=1e-9 * want.abs().max().item())


def test_mutants_of_the_imported_gpt2_compile_and_their_source_runs():
    """The rest of netevo on the import: `ne.mutants` (width, activation, layer rules) on GPT-2's spec; every
    mutant compiles, and its emitted source runs on token ids of another length."""
    spec = ne.from_module(tiny_gpt2(n_layer=1).double(), torch.randint(0, 100, (2, 7)))
    mutants = ne.mutants(spec, 6, seed=3)
    assert len(mutants) == 6 and len({m.hash for m in mutants}) == 6
    ids = torch.randint(0, 100, (3, 11))
    for mutant in mutants:
        with torch.no_grad():
            out = _emitted(mutant.spec).eval()(ids)
            assert out.shape == (3, 11, 100) and torch.isfinite(out).all()
            assert ne.compile_module(mutant.spec).eval()(ids).shape == (3, 11, 100)


class Untraceable(torch.nn.Module):
    """A branch on the data: neither torch.fx nor torch.export can trace it."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return x


def test_a_model_neither_tracer_can_trace_is_refused_naming_both():
    with pytest.raises(NetevoError) as e:
        ne.from_module(Untraceable(), torch.randn(2, 4))
    assert e.value.code == "E163"
    assert "torch.fx cannot trace Untraceable" in e.value.message and "torch.export cannot either" in e.value.message
