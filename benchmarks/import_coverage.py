"""Coverage of `netevo import` over torchvision's classification models (issue 17).

Per model: imported exactly (compiled spec loads the original's state_dict with strict=True and gives its
outputs in float64 eval mode with random batch-norm statistics, atol 1e-9 x output scale), or refused with the
error's code and message; and the import time (trace + shape pass + matching + parse + check, float32, one
1x3xSxS input). Models over 150M parameters are left out for time on this 2-core machine.

    /work/tv/bin/python benchmarks/import_coverage.py   # a venv with torchvision; prints a Markdown table
"""
import time

import torch
import torchvision

import netevo_dsl as ne
from netevo_dsl import NetevoError

SIZE = {"inception_v3": 299}  # the rest at 224 (vit/swin/maxvit need it)


def randomise_batchnorm(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=m.running_mean.dtype))
            m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=m.running_var.dtype) + 0.5)


def survey(name):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    n_params = sum(p.numel() for p in model.parameters())
    if n_params > 150e6:
        return "left out", f"{n_params / 1e6:.0f}M parameters", None
    randomise_batchnorm(model)
    size = SIZE.get(name, 224)
    x = torch.randn(1, 3, size, size)
    start = time.perf_counter()
    try:
        spec = ne.from_module(model, x)
    except NetevoError as e:
        return "refused", f"{e.code}: {e.message}", time.perf_counter() - start
    seconds = time.perf_counter() - start
    model = model.double()
    compiled = ne.compile_module(spec, dtype=torch.float64).eval()
    compiled.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        want, got = model(x.double()), compiled(x.double())
    exact = torch.allclose(got, want, rtol=0, atol=1e-9 * want.abs().max().item())
    return ("exact" if exact else "NOT EXACT"), "", seconds


def main():
    torch.set_num_threads(1)
    names = torchvision.models.list_models(module=torchvision.models)
    rows, counts = [], {}
    for name in names:
        status, why, seconds = survey(name)
        counts[status] = counts.get(status, 0) + 1
        took = f"{seconds:.2f}" if seconds is not None else ""
        rows.append(f"| {name} | {status} | {took} | {why.replace('|', '/')[:140]} |")
        print(rows[-1], flush=True)
    print(f"\n{len(names)} models: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
