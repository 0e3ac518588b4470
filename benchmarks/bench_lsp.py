"""Language-server latency: how long after a change `netevo lsp` answers a hover or a completion.

Drives the server over stdio exactly as an editor does (tests/editors/lsp_client.py): open
specs/resnet18.net, then repeatedly send a full-text change followed at once by a hover (which makes the
server analyse the new text first: parse, imports, check, shapes) or a completion (answered from the
registries and the last analysis). Reports the median and 95th percentile round trip.

    python benchmarks/bench_lsp.py [--repeats 40]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine  # noqa: E402
from tests.editors.lsp_client import LspClient  # noqa: E402


def _position(text: str, needle: str, offset: int) -> dict:
    for i, line in enumerate(text.split("\n")):
        if needle in line:
            return {"line": i, "character": line.index(needle) + offset}
    raise ValueError(needle)


def measure(repeats: int) -> dict:
    path = ROOT / "specs" / "resnet18.net"
    text = path.read_text()
    client = LspClient(cwd=ROOT)
    client.initialize(ROOT)
    uri = client.open(path)
    client.wait_notification("textDocument/publishDiagnostics", uri)
    doc = {"uri": uri}
    hover_at = _position(text, "conv2d(x, out=c", 2)
    complete_at = _position(text, "maxpool2d(relu, ", 16)
    times: dict[str, list[float]] = {"hover": [], "completion": [], "analysis": [], "analysis_cpu": []}
    version = 1
    for i in range(repeats):
        for kind, method, position in (("hover", "textDocument/hover", hover_at),
                                       ("completion", "textDocument/completion", complete_at)):
            version += 1
            edited = text.replace("param classes: int = 1000", f"param classes: int = {1000 + i}")
            t0 = time.perf_counter()
            client.change(uri, edited, version)
            client.request(method, {"textDocument": doc, "position": position})
            times[kind].append(time.perf_counter() - t0)
    client.close()
    from netevo_dsl.lsp.analysis import analyze

    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        analyze(text, str(path))
        times["analysis"].append(time.perf_counter() - t0)
        times["analysis_cpu"].append(time.process_time() - c0)
    return {k: (statistics.median(v), sorted(v)[int(0.95 * (len(v) - 1))]) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()
    result = measure(args.repeats)
    import os

    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}")
    print("specs/resnet18.net, change then request, over stdio | median | p95")
    labels = {"hover": "hover (analyses the change first)", "completion": "completion",
              "analysis": "analysis alone, in process (parse + check + shapes), wall",
              "analysis_cpu": "analysis alone, in process, CPU time"}
    for key, (median, p95) in result.items():
        print(f"{labels[key]} | {median * 1e3:.1f} ms | {p95 * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
