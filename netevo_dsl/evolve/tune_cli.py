"""`netevo tune RUN_DIR|SPEC`: tune a champion's individual weights (evolve/tune.py), write the tuned
spec and a before/after report.

RUN_DIR: a run folder of `netevo evolve`; its champion.net (or, while the run is still going, the
newest champions/gen_NNNN.net) and its config.yaml's task and shared weights. SPEC: a .net file
with one WANN genome; the task comes from --task, else from the spec's evolve block.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import NetevoError, UsageError
from ..ir import nodes as ir


def add_parser(subparsers):
    p = subparsers.add_parser("tune", help="tune a champion's individual weights (gradient descent for "
                                           "classification, an evolution strategy for control)")
    p.add_argument("source", metavar="RUN_DIR|SPEC", help="a run folder of `netevo evolve`, or a .net file with "
                                                          "one WANN genome")
    p.add_argument("--task", help="the task (default: the run's, or the spec's evolve block's)")
    p.add_argument("--iterations", type=int, help="epochs (classification, default 60) or ES steps "
                                                  "(control, default 40)")
    p.add_argument("--cpu-seconds", type=float, help="stop after the epoch or step that passes this many CPU "
                                                     "seconds (default: no cap)")
    p.add_argument("--lr", type=float, help="Adam's learning rate (default 0.03)")
    p.add_argument("--batch-size", type=int, default=128, help="classification minibatch (default 128)")
    p.add_argument("--population", type=int, default=32, help="ES perturbations per step, even (default 32)")
    p.add_argument("--sigma", type=float, default=0.1, help="ES perturbation scale (default 0.1)")
    p.add_argument("--episodes", type=int, default=4, help="ES episodes per perturbation and step (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed of minibatches, noise and episodes (default 0)")
    p.add_argument("-o", "--out", help="output folder for tuned.net, report.md and report.json "
                                       "(default: RUN_DIR/tune, or SPEC_tune/ next to the spec)")
    p.set_defaults(func=cmd_tune)
    return p


def cmd_tune(args) -> int:
    from .tune import TuneBudget, tune

    genome, task, params, weights, default_out, origin = load_champion(args.source, args.task)
    budget = TuneBudget(iterations=args.iterations, cpu_seconds=args.cpu_seconds, lr=args.lr,
                        batch_size=args.batch_size, population=args.population, sigma=args.sigma,
                        episodes=args.episodes)
    result = tune(genome, task, params, weights=weights, budget=budget, seed=args.seed)
    out = Path(args.out) if args.out else default_out
    paths = write_outputs(result, out, origin, getattr(args, "argv", None))
    print(report_markdown(result, origin, None).split("\n## ")[1].split("\n", 1)[1].strip())
    print(f"wrote {paths[0]}, {paths[1]}, {paths[2]}")
    return 0


def load_champion(source, task: str | None = None):
    """(genome, task name, task params, shared weights or None, default output folder, the genome's file)
    of a run folder or a spec."""
    from ..grammar.loader import load
    from .population import genome_from_text

    path = Path(source)
    if path.is_dir():
        from .settings import load_settings

        config = path / "config.yaml"
        if not config.exists():
            raise UsageError(f"{path} is not a run folder (no config.yaml)", hint="pass RUN_DIR of `netevo evolve "
                             "--out RUN_DIR`, or a .net file", code="E194")
        settings = load_settings(config)
        champion = path / "champion.net"
        if not champion.exists():  # a run still going: its newest generation's champion
            found = sorted((p for p in (path / "champions").glob("gen_*.net") if p.stem[4:].isdigit()),
                           key=lambda p: int(p.stem[4:])) if (path / "champions").is_dir() else []
            if not found:
                raise UsageError(f"{path} has no champion yet (no champion.net, no champions/gen_*.net)",
                                 hint="wait for the run's first generation", code="E194")
            champion = found[-1]
        try:
            genome = genome_from_text(champion.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, IndexError) as e:
            raise UsageError(f"cannot read the champion {champion}: {e}", code="E194") from None
        if not isinstance(genome, ir.WannGenome):
            raise UsageError(f"{champion} holds no WANN genome", hint="tune works on WANN genomes", code="E194")
        params = dict(settings.task_params) if task in (None, settings.task) else {}
        return genome, task or settings.task, params, settings.weights, path / "tune", champion
    spec = load(path)
    genomes = spec.of_kind(ir.WannGenome)
    if len(genomes) != 1:
        raise UsageError(f"{path} holds {len(genomes)} WANN genomes; tune takes a spec with exactly one",
                         hint="or pass a run folder", code="E194")
    genome = genomes[0]
    params = {}
    if task is None:
        from .settings import resolve_settings

        try:
            settings = resolve_settings(spec, genome.name)
        except NetevoError:
            raise UsageError(f"{path} names no task for `{genome.name}`", hint="pass --task NAME (e.g. --task "
                             "swingup), or add an evolve block with `task ...`", code="E195") from None
        task, params = settings.task, dict(settings.task_params)
    return genome, task, params, None, path.with_name(path.stem + "_tune"), path


def write_outputs(result, out: Path, source, argv) -> tuple[Path, Path, Path]:
    from .checkpoint import write_atomic
    from .population import genome_text

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {out}: {e.strerror}", code="E194") from None
    spec_path, md_path, json_path = out / "tuned.net", out / "report.md", out / "report.json"
    header = (f"// {result.genome.name}, its individual weights tuned by `netevo tune` on task {result.task} "
              f"(from {source})\n")
    write_atomic(spec_path, header + genome_text(result.genome))
    command = "netevo " + " ".join(argv) if argv else None
    write_atomic(md_path, report_markdown(result, source, command))
    write_atomic(json_path, json.dumps({**result.to_json(), "source": str(source), "command": command,
                                        "tuned_spec": str(spec_path)}, indent=2) + "\n")
    return spec_path, md_path, json_path


def report_markdown(result, source, command) -> str:
    kind = "classification" if "train_accuracy" in result.before else "control"
    lines = [f"# Tuned weights: `{result.genome.name}` on {result.task}", "",
             f"Source: `{source}`. Every enabled edge started at the best shared weight w = {result.best_weight:g} "
             f"(of {', '.join(f'{w:g}' for w in result.shared_weights)}); "
             + ("Adam on the training split's cross-entropy" if kind == "classification" else
                "an evolution strategy (antithetic, centred ranks, Adam) on fresh episodes")
             + f", {result.iterations} {'epochs' if kind == 'classification' else 'steps'}, "
               f"{result.cpu_seconds:.1f} CPU s, seed {result.seed}.", "", "## Before and after", ""]
    if kind == "classification":
        lines += ["| | train accuracy | test accuracy | test reward (-cross-entropy) |", "|---|---|---|---|"]
        for name, row in (("best shared weight", result.before), ("tuned weights", result.after)):
            lines.append(f"| {name} | {row['train_accuracy']:.2%} | {row['test_accuracy']:.2%} | "
                         f"{row['test_reward']:.4f} |")
    else:
        lines += [f"| | mean ± std reward over {result.after['episodes']} held-out episodes |", "|---|---|"]
        for name, row in (("best shared weight", result.before), ("tuned weights", result.after)):
            lines.append(f"| {name} | {row['mean_reward']:.1f} ± {row['std_reward']:.1f} |")
    lines.append("")
    if command:
        lines += [f"Command: `{command}`", ""]
    return "\n".join(lines)
