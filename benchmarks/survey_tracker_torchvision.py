"""Which torchvision classification models the tracker runs on, and how long each takes.

For every name in torchvision.models.list_models(module=torchvision.models): the parameter
count (built on the meta device, so nothing is allocated), then, for models up to --max-params,
random-init build time, NeuronTracker construction (fx trace) time, one tracked eval forward
pass on a 2x3x224x224 input, and the site count. tests/runtime/test_tracker_torchvision.py
picks its model list from this table.

    /work/tv/bin/python benchmarks/survey_tracker_torchvision.py --threads 1 > survey.tsv
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netevo_dsl.runtime.tracker import NeuronTracker  # noqa: E402


def main() -> None:
    import torchvision

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-params", type=float, default=150e6)
    parser.add_argument("models", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models or torchvision.models.list_models(module=torchvision.models)
    print("model\tparams_M\tbuild_s\ttrace_s\ttracked_forward_s\tsites\tmethod\tnote", flush=True)
    for name in names:
        try:
            with torch.device("meta"):
                params = sum(p.numel() for p in torchvision.models.get_model(name).parameters())
        except NotImplementedError:  # regnets compute their widths with tensors: count on the CPU
            params = sum(p.numel() for p in torchvision.models.get_model(name).parameters())
        row = [name, f"{params / 1e6:.1f}"]
        if params > args.max_params:
            print("\t".join(row + ["-", "-", "-", "-", "-", f"over {args.max_params / 1e6:.0f}M parameters"]), flush=True)
            continue
        torch.manual_seed(0)
        start = time.perf_counter()
        model = torchvision.models.get_model(name).eval()
        built = time.perf_counter()
        try:
            tracker = NeuronTracker(model)
            traced = time.perf_counter()
            with tracker, torch.no_grad():
                model(torch.randn(2, 3, 224, 224))
            done = time.perf_counter()
        except Exception as error:  # a survey: record what failed and go on
            row += [f"{built - start:.2f}", "-", "-", "-", "-", f"{type(error).__name__}: {str(error)[:80]}"]
            print("\t".join(row), flush=True)
            continue
        row += [f"{built - start:.2f}", f"{traced - built:.2f}", f"{done - traced:.2f}", str(len(tracker.layer_names))]
        row += [tracker.method, "; ".join(tracker.notes)[:120]]
        print("\t".join(row), flush=True)
        del model, tracker


if __name__ == "__main__":
    main()
