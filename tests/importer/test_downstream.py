"""The rest of netevo on imported torchvision models (issue 17): `netevo mutate` (every mutant's emitted source
runs), `permute` (function-preserving: the oracle is the original PyTorch model's output, float64) and
`NeuronTracker` (the oracle: the activation calls the original model makes, seen with forward hooks)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

import netevo_dsl as ne
from netevo_dsl.evolve.transforms import permute

from .test_import import _randomise_batchnorm


def _torchvision():
    if os.environ.get("NETEVO_REQUIRE_TORCHVISION"):  # CI's torchvision step: a missing import fails
        import torchvision
        return torchvision
    return pytest.importorskip("torchvision")


def _imported(name, size=32):
    torch.manual_seed(0)
    model = _torchvision().models.get_model(name, weights=None, num_classes=10).double()
    _randomise_batchnorm(model)
    model.eval()
    return model, ne.from_module(model, torch.randn(1, 3, size, size, dtype=torch.float64))


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_netevo_mutate_on_an_imported_model_gives_mutants_whose_source_runs(name, tmp_path):
    _, spec = _imported(name)
    path = tmp_path / f"{name}.net"
    path.write_text(ne.format(spec))
    run = subprocess.run([sys.executable, "-m", "netevo_dsl.cli", "mutate", str(path), "-n", "3", "--seed", "1",
                          "-o", str(tmp_path / "mutants")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "mutants" / "summary.json").read_text())
    written = sorted((tmp_path / "mutants").glob("*.py"))
    assert len(written) == 3, summary
    for source in written:  # run each emitted file ourselves, not only through the CLI's own validation
        namespace = {"__name__": "mutant"}
        exec(compile(source.read_text(), str(source), "exec"), namespace)
        net_cls = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, nn.Module)
                   and v.__module__ == "mutant"][-1]  # the network class comes last in the file
        mutant = net_cls().eval()
        with torch.no_grad():
            out = mutant(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 10) and torch.isfinite(out).all(), source.name
        assert ne.format(ne.load(source.with_suffix(".net"))) == source.with_suffix(".net").read_text()


def test_permute_on_an_imported_resnet50_preserves_its_outputs():
    original, spec = _imported("resnet50")
    weights = {k: v.clone() for k, v in original.state_dict().items()}
    rng = np.random.default_rng(0)
    # a bottleneck's inner widths, a block's output stream (through every residual add of the stage), the stem
    for group in ("layer1.0.conv1", "layer2.1.conv2", "layer3.0.conv3", "conv1", "layer4.2.conv1"):
        size = weights[f"{group}.weight"].shape[0]
        weights = permute(spec, weights, group, rng.permutation(size)).weights
    assert not torch.equal(weights["layer2.1.conv2.weight"], original.state_dict()["layer2.1.conv2.weight"])
    permuted = ne.compile_module(spec, dtype=torch.float64)
    permuted.load_state_dict(weights, strict=True)
    permuted.eval()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        want = original(x)
        assert torch.allclose(permuted(x), want, rtol=0, atol=1e-9 * want.abs().max().item())


def test_the_tracker_finds_the_activation_calls_of_an_imported_model():
    original, spec = _imported("resnet18")
    calls = []  # (module path, channels) of every ReLU call the original makes
    hooks = [m.register_forward_hook(lambda mod, i, o, p=p: calls.append((p, o.shape[1])))
             for p, m in original.named_modules() if isinstance(m, nn.ReLU)]
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        original(x)
    for h in hooks:
        h.remove()
    compiled = ne.compile_module(spec, dtype=torch.float64)
    compiled.load_state_dict(original.state_dict(), strict=True)
    tracker = ne.NeuronTracker(compiled)
    with tracker, torch.no_grad():
        compiled(x)
    sites = {name: tracker.layer_info(name) for name in tracker.layer_names}
    relus = {name: info for name, info in sites.items() if info["activation"] == "relu"}
    assert len(relus) == len(calls) == 17  # stem + 2 per basic block x 8
    assert sorted(info["width"] for info in relus.values()) == sorted(c for _, c in calls)
    first_calls = {p for p, _ in calls}  # the first call of each shared ReLU keeps the original's path
    assert first_calls <= {info["module"] for info in relus.values()}
    assert all(info["samples"] > 0 for info in relus.values())
