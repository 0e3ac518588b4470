"""Compiler benchmark: compile time, emit + exec time, and forward time against hand-written references.

    python benchmarks/bench_compiler.py

Forward ratios are measured side by side (interleaved rounds, medians) on the same input:
compiled resnet18 vs torchvision's resnet18 (when torchvision is importable) and compiled
gpt2_tiny vs transformers' GPT-2 with the same weights. Goal: ratio <= 1.05.

    python benchmarks/bench_compiler.py --mobilenet

Issue 13: specs/mobilenet_v2_like.net as compile_module's module, as the module exec'd from
emit_source, and torchvision's mobilenet_v2 (when importable; run it with /work/tv/bin/python and
PYTHONPATH=.): forward time side by side, and the peak resident memory one forward adds, each
variant in a fresh subprocess (the kernel's peak-RSS mark, VmHWM, reset right before the forward).
Goal: <= 1.05x the time and <= 1.1x the peak memory of torchvision.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import netevo_dsl as ne  # noqa: E402
from common import machine, side_by_side, timeit, torch_machine  # noqa: E402
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


MOBILENET_BATCH = (8, 3, 224, 224)


def mobilenet_variant(name: str):
    """One MobileNetV2 variant in eval mode: `compiled`, `emitted` or `torchvision`."""
    spec = ne.load(SPECS / "mobilenet_v2_like.net")
    if name == "compiled":
        return ne.compile_module(spec).eval()
    if name == "emitted":
        ns: dict = {}
        exec(compile(ne.emit_source(spec), "<bench>", "exec"), ns)  # noqa: S102 - our own emitted code
        return ns[class_name(spec.networks[0].name)]().eval()
    import torchvision

    return torchvision.models.mobilenet_v2(weights=None).eval()


def _vm_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_forward_mb(name: str) -> float:
    """Peak resident memory one no-grad forward adds over the memory before it (MB)."""
    torch.manual_seed(0)
    model = mobilenet_variant(name)
    x = torch.randn(*MOBILENET_BATCH)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (the peak RSS mark) to the current RSS
    before = _vm_kb("VmRSS")
    with torch.no_grad():
        model(x)
    return (_vm_kb("VmHWM") - before) / 1024


def mobilenet():
    import subprocess

    variants = ["compiled", "emitted"]
    try:
        import torchvision  # noqa: F401

        variants.append("torchvision")
    except ImportError:
        pass
    models = {v: mobilenet_variant(v) for v in variants}
    x = torch.randn(*MOBILENET_BATCH)
    with torch.no_grad():
        for m in models.values():
            m(x)
        t = side_by_side({v: (lambda m=m: m(x)) for v, m in models.items()}, repeat=7, number=1)
    peaks = {}
    for v in variants:  # one fresh process per variant: allocations of the others cannot hide its peak
        out = subprocess.run([sys.executable, __file__, "--peak", v], capture_output=True, text=True, check=True)
        peaks[v] = float(out.stdout.strip().splitlines()[-1])
    ref = "torchvision" if "torchvision" in variants else "emitted"
    print(f"Machine: {torch_machine()}\n")
    print(f"MobileNetV2, eval, no_grad, batch {' x '.join(map(str, MOBILENET_BATCH))}; ratios against {ref}\n")
    print("| variant | forward (median) | time ratio | peak memory of a forward | memory ratio |\n|---|---|---|---|---|")
    for v in variants:
        print(f"| {v} | {t[v] * 1e3:.1f} ms | {t[v] / t[ref]:.2f} | {peaks[v]:.0f} MB | {peaks[v] / peaks[ref]:.2f} |")


if __name__ == "__main__":
    if "--peak" in sys.argv:
        print(peak_forward_mb(sys.argv[sys.argv.index("--peak") + 1]))
    elif "--mobilenet" in sys.argv:
        mobilenet()
    else:
        main()
