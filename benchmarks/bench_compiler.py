"""Compiler benchmark: compile time, emit + exec time, and forward time against hand-written references.

    python benchmarks/bench_compiler.py

Forward ratios are measured side by side (interleaved rounds, medians) on the same input:
compiled resnet18 vs torchvision's resnet18 (when torchvision is importable) and compiled
gpt2_tiny vs transformers' GPT-2 with the same weights. Goal: ratio <= 1.05.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import netevo_dsl as ne  # noqa: E402
from common import machine, side_by_side, timeit  # noqa: E402
from netevo_dsl.compiler.emit import class_name  # noqa: E402
from netevo_dsl.compiler.keymaps import hf_gpt2_state_dict  # noqa: E402

SPECS = Path(__file__).parent.parent / "specs"


def main():
    torch.set_num_threads(max(1, torch.get_num_threads()))
    resnet, gpt = ne.load(SPECS / "resnet18.net"), ne.load(SPECS / "gpt2_tiny.net")
    rows = [
        ("compile_module resnet18, meta device", timeit(lambda: ne.compile_module(resnet, device="meta"), 5)),
        ("compile_module resnet18, CPU", timeit(lambda: ne.compile_module(resnet), 5)),
        ("compile_module gpt2_tiny, CPU", timeit(lambda: ne.compile_module(gpt), 5)),
    ]

    def emit_exec(spec):
        ns: dict = {}
        exec(compile(ne.emit_source(spec), "<bench>", "exec"), ns)  # noqa: S102
        return ns[class_name(spec.networks[0].name)]()

    rows.append(("emit_source + exec + instantiate resnet18", timeit(lambda: emit_exec(resnet), 5)))
    rows.append(("emit_source + exec + instantiate gpt2_tiny", timeit(lambda: emit_exec(gpt), 5)))

    ratios = []
    try:
        import torchvision

        ref = torchvision.models.resnet18(weights=None).eval()
        ours = ne.compile_module(resnet).eval()
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(8, 3, 112, 112)
        with torch.no_grad():
            t = side_by_side({"netevo": lambda: ours(x), "torchvision": lambda: ref(x)}, repeat=9, number=2)
        ratios.append(("resnet18 forward, batch 8 x 3 x 112 x 112", t["netevo"], t["torchvision"]))
    except ImportError:
        ratios.append(("resnet18 forward (torchvision not importable here)", float("nan"), float("nan")))
    try:
        import transformers

        cfg = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=128, n_positions=32,
                                      bos_token_id=0, eos_token_id=0)
        hf = transformers.GPT2LMHeadModel(cfg).eval()
        ours = ne.compile_module(gpt).eval()
        ours.load_state_dict(hf_gpt2_state_dict(hf.state_dict()))
        idx = torch.randint(0, 128, (64, 32))
        with torch.no_grad():
            t = side_by_side({"netevo": lambda: ours(idx), "transformers": lambda: hf(idx).logits}, repeat=9, number=5)
        ratios.append(("gpt2_tiny forward, batch 64 x 32 tokens", t["netevo"], t["transformers"]))
    except ImportError:
        ratios.append(("gpt2_tiny forward (transformers not importable here)", float("nan"), float("nan")))

    print(f"Machine: {machine()}, torch {torch.__version__}\n")
    print("| step | median time |\n|---|---|")
    for name, t in rows:
        print(f"| {name} | {t * 1e3:.1f} ms |")
    print("\n| forward pass | netevo | reference | ratio (netevo / reference) |\n|---|---|---|---|")
    for name, ours_t, ref_t in ratios:
        print(f"| {name} | {ours_t * 1e3:.2f} ms | {ref_t * 1e3:.2f} ms | {ours_t / ref_t:.3f} |")


if __name__ == "__main__":
    main()
