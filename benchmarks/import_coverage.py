"""Coverage of `netevo import` over torchvision's classification models (issue 17).

Per model: imported exactly (compiled spec loads the original's state_dict with strict=True and gives its
outputs in float64 eval mode with random batch-norm statistics, atol 1e-9 x output scale), or refused with the
error's code, message and location; and the import time (trace + shape pass + matching + naming + parse + check,
float32, one 1x3xSxS input). Anything else that escapes (a Python traceback) is recorded as `ERROR` with the
exception and the frame it came from: a failure to fix, never a refusal. `--max-params` leaves larger models out
for time on a loaded machine.

    /work/tv/bin/python benchmarks/import_coverage.py [--size 64] [--max-params 30e6]   # prints a Markdown table
"""
import argparse
import time
import traceback

import torch
import torchvision

import netevo_dsl as ne
from netevo_dsl import NetevoError

# models that need a given input size (patch grids, window attention, inception's stem)
FIXED_SIZE = {"inception_v3": 299, "maxvit_t": 224, "vit_b_16": 224, "vit_b_32": 224, "vit_l_16": 224,
              "vit_l_32": 224, "vit_h_14": 224, "swin_t": 224, "swin_s": 224, "swin_b": 224, "swin_v2_t": 256,
              "swin_v2_s": 256, "swin_v2_b": 256, "googlenet": 96}


def randomise_batchnorm(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=m.running_mean.dtype))
            m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=m.running_var.dtype) + 0.5)


def where(e: NetevoError) -> str:
    return f" ({e.span.file.rpartition('/')[2]}:{e.span.line})" if e.span is not None else ""


def survey(name, size, max_params):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    n_params = sum(p.numel() for p in model.parameters())
    if n_params > max_params:
        return "left out", f"{n_params / 1e6:.0f}M parameters", None
    randomise_batchnorm(model)
    size = FIXED_SIZE.get(name, size)
    x = torch.randn(1, 3, size, size)
    start = time.perf_counter()
    try:
        spec = ne.from_module(model, x)
    except NetevoError as e:
        return "refused", f"{e.code}: {e.message}{where(e)}", time.perf_counter() - start
    except Exception as e:  # a traceback: a bug of the importer, recorded as one
        frame = traceback.extract_tb(e.__traceback__)[-1]
        return "ERROR", f"{type(e).__name__}: {e} ({frame.filename.rpartition('/')[2]}:{frame.lineno})", None
    seconds = time.perf_counter() - start
    model = model.double()
    compiled = ne.compile_module(spec, dtype=torch.float64).eval()
    compiled.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        want, got = model(x.double()), compiled(x.double())
    exact = torch.allclose(got, want, rtol=0, atol=1e-9 * want.abs().max().item())
    return ("exact" if exact else "NOT EXACT"), "", seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--max-params", type=float, default=150e6, help="leave out larger models (default 150e6)")
    parser.add_argument("models", nargs="*", help="these models only (default: every classification model)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.models or torchvision.models.list_models(module=torchvision.models)
    counts = {}
    print("| model | result | import s | reason |\n|---|---|---|---|", flush=True)
    for name in names:
        try:
            status, why, seconds = survey(name, args.size, args.max_params)
        except Exception as e:  # outside the import (building the model, compiling, loading): a failure too
            status, why, seconds = "ERROR", f"{type(e).__name__}: {e}", None
        counts[status] = counts.get(status, 0) + 1
        took = f"{seconds:.2f}" if seconds is not None else ""
        print(f"| {name} | {status} | {took} | {why.replace('|', '/')[:160]} |", flush=True)
    print(f"\n{len(names)} models: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), flush=True)


if __name__ == "__main__":
    main()
