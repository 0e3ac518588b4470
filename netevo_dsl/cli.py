"""The `netevo` command. Each subcommand imports what it needs lazily, so
`netevo check` and `netevo fmt` never import torch.

User errors print as diagnostics (or JSON with --error-format json) and exit 1;
they never print a traceback.
"""
from __future__ import annotations

import argparse
import os
import json
import sys
from pathlib import Path

from .errors import NetevoError, UsageError, errors_to_json, flatten


def _overrides(pairs) -> dict:
    from .passes.elaborate import parse_override

    return dict(parse_override(p) for p in pairs or [])


def _sources(paths) -> dict:
    """Texts for error excerpts, read with the loader's limits (regular files, 4 MiB, UTF-8)."""
    from .grammar.loader import read_text

    out = {}
    for p in paths:
        try:
            out[str(p)] = read_text(p)
        except NetevoError:
            pass
    return out


def cmd_check(args) -> int:
    from . import check, load
    from .ir.dims import shape_str

    for path in args.files:
        spec = load(path)
        result = check(spec, _overrides(args.define))
        if args.shapes:
            for name, graph in result.graphs.items():
                print(f"network {name}")
                for i in graph.inputs:
                    print(f"  input  {i.name:<28} {shape_str(i.shape)}")
                for n in graph.nodes:
                    shape = " ".join(shape_str(s) for s in n.shape) if n.shape and isinstance(n.shape[0], tuple) \
                        else shape_str(n.shape)
                    where = f"  ({Path(n.span.file).name}:{n.span.line})" if n.span and n.span.file else ""
                    print(f"  {n.op:<14} {n.name:<28} {shape}{where}")
        if args.groups:
            from .evolve.groups import dependency_groups

            for name, graph in result.graphs.items():
                print(f"network {name}: dependency groups")
                for g in dependency_groups(graph):
                    print(f"  {g.describe()}")
        if not args.quiet:
            print(f"{path}: ok ({len(result.graphs)} network(s), {len(spec.genomes)} genome(s))")
    return 0


def cmd_fmt(args) -> int:
    from .grammar.loader import read_text
    from .passes.fmt import format_checked

    changed = 0
    for path in args.files:
        text = read_text(path)
        out = format_checked(text, path)
        if out != text:
            changed += 1
            if args.check:
                print(f"would reformat {path}")
            else:
                Path(path).write_text(out, encoding="utf-8")
                print(f"reformatted {path}")
    return 1 if args.check and changed else 0


def cmd_compile(args) -> int:
    from . import emit_source, load

    spec = load(args.spec)
    source = emit_source(spec, name=args.network, overrides=_overrides(args.define))
    if args.output:
        Path(args.output).write_text(source, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(source)
    return 0


def cmd_evolve(args) -> int:
    import signal

    from . import check, load
    from .evolve.run import Evolution, resume_settings
    from .evolve.settings import resolve_settings

    spec = load(args.spec)
    check(spec, _overrides(args.define))
    from .evolve.network_cli import evolve_network, is_network_run

    if is_network_run(spec, args):
        return evolve_network(spec, args)
    flags = {"population": args.population, "generations": args.generations, "seed": args.seed,
             "device": args.device, "backend": args.backend, "address": args.address, "selection": args.selection}
    if args.inherit is not None:
        raise UsageError("--inherit applies to networks; a genome run has no trained weights to inherit")
    if args.resume:
        out = Path(args.resume)
        settings = resume_settings(spec, out, flags, args.target, args.config, args.preset)
    else:
        settings = resolve_settings(spec, args.target, args.config, args.preset, flags)
        out = Path(args.out) if args.out else Path("runs") / f"{settings.target}-seed{settings.seed}"
    run = Evolution(spec, settings, out, resume=bool(args.resume), overwrite=args.overwrite,
                    progress=not args.no_progress)
    try:
        result = run.execute()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a further Ctrl-C must not turn 130 into -2
        print(f"interrupted; the last checkpoint is in {out}. Resume with: netevo evolve {args.spec} --resume {out}",
              file=sys.stderr)
        return 130
    _print_champion(result, run, settings)
    if result.report:
        from .evolve.report import record_command

        import shlex

        record_command(result.report, "netevo " + " ".join(shlex.quote(a) for a in args.argv))
    if args.tensorboard is not None:
        from .runtime.tensorboard import evolution_rows, write_scalars

        log = [json.loads(l) for l in (out / "log.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
        accuracy = out / "champion_accuracy.json"
        accuracy = json.loads(accuracy.read_text(encoding="utf-8")) if accuracy.exists() else None
        print(f"tensorboard: {write_scalars(Path(args.tensorboard or out / 'tensorboard'), evolution_rows(log, accuracy))}")
    print(f"report: {result.report or out}")
    return 0


def _print_champion(result, run, settings) -> None:
    """The champion in words a newcomer reads: test accuracies (classification) or rewards with units."""
    from .evolve.report import headline, objective_words

    summary = result.out_dir / "champion_summary.json"
    final = json.loads(summary.read_text(encoding="utf-8")) if summary.exists() else \
        headline(result.champion, run.task, settings.weights)
    kind = getattr(run.task, "kind", None)
    print(f"champion after {result.generations} generations:")
    for label, value in final.items():
        shown = f"{value:.1%}" if "accuracy" in label else f"{value:.4g}"
        print(f"  {label}: {shown}")
    for label, value in result.champion_scores.items():
        print(f"  {objective_words(label, kind)}: {value}")


def _task_arg(text: str):
    """`digits` or `swingup(max_steps=500)` into (name, kwargs), parsed with the spec grammar."""
    from .evolve.settings import _literal
    from .grammar.parser import parse
    from .ir import nodes as ir

    try:
        setting = parse(f"evolve _ {{ task {text} }}").items[0].settings[0]
    except NetevoError:
        raise UsageError(f"bad --task `{text}`",
                         hint="write a task name or call, e.g. digits or swingup(max_steps=500)") from None
    value = setting.value
    if isinstance(value, ir.Name):
        return value.id, {}
    return value.func, {k.name: _literal(k.value) for k in value.kwargs}


def _evolve_task(paths, name) -> tuple[str, dict]:
    """The task of the specs' evolve blocks (for genome `name`, or any), when --task is not given."""
    from . import load
    from .evolve.settings import from_evolve_block
    from .ir import nodes as ir

    tasks = set()
    for path in paths:
        for block in load(path).of_kind(ir.EvolveBlock):
            settings = from_evolve_block(block)
            if name in (None, block.target) and "task" in settings:
                tasks.add((settings["task"], tuple(sorted(settings.get("task_params", {}).items()))))
    if len(tasks) != 1:
        raise UsageError("no --task given, and " + ("no evolve block names one" if not tasks else
                                                    "the evolve blocks name different tasks"),
                         hint="pass --task, e.g. --task digits or --task 'swingup(max_steps=500)'")
    task, params = tasks.pop()
    return task, dict(params)


def _analysis_genomes(paths, name) -> list:
    """[(spec stem, genome)] to analyze: every WANN and transformer genome of the specs (or the one
    named `name`)."""
    from . import check, load

    found = []
    for path in paths:
        spec = load(path)
        check(spec)
        found += [(Path(path).stem, g) for g in spec.genomes if name in (None, g.name)]
    if not found:
        raise UsageError("no genome to analyze" + (f" named `{name}`" if name else ""),
                         hint="analyze takes specs with `genome NAME: wann { ... }` or "
                              "`genome NAME: transformer { ... }`")
    return found


def _one_kind(found: list, task) -> list:
    """One task cannot score both kinds of genome: when both are present, the task picks
    (transformer genomes for sequence tasks, WANN genomes otherwise)."""
    from .ir import nodes as ir

    if len({type(g) for _, g in found}) > 1:
        kind = ir.TransformerGenome if task.kind == "sequence" else ir.WannGenome
        found = [(stem, g) for stem, g in found if isinstance(g, kind)]
    return found


def _analysis_labels(found) -> list[str]:
    """One output folder name per genome: its name, or `stem.name` when names repeat across specs."""
    names = [g.name for _, g in found]
    labels = names if len(set(names)) == len(names) else [f"{stem}.{g.name}" for stem, g in found]
    return labels if len(set(labels)) == len(labels) else [f"{label}-{k}" for k, label in enumerate(labels)]


def cmd_analyze(args) -> int:
    from .ir import nodes as ir
    from .runtime import analysis, analysis_transformer
    from .runtime.tasks import make_task

    found = _analysis_genomes(args.spec, args.genome)
    task = make_task(_task_arg(args.task) if args.task else _evolve_task(args.spec, args.genome))
    found = _one_kind(found, task)
    labels = _analysis_labels(found)
    genomes = [g for _, g in found]
    transformer = isinstance(genomes[0], ir.TransformerGenome)
    module = analysis_transformer if transformer else analysis
    from .runtime.progress import PhaseBar

    out = Path(args.out or f"analysis-{Path(args.spec[0]).stem}")
    out.mkdir(parents=True, exist_ok=True)
    bar = PhaseBar(4 * len(genomes) + (len(genomes) > 1), not args.no_progress, desc="analyze")
    lines = []
    try:
        for label, g in zip(labels, genomes):
            target = out / label if len(genomes) > 1 else out
            target.mkdir(exist_ok=True)
            result = module.analyze(g, task, target, device=args.device, progress=bar.prefix(label))
            metric = result["metric"] if transformer else "reward"
            lines.append(f"{label}: mean {metric} {result['baseline']:.4g}; report {result['paths']['summary']}")
        if len(genomes) > 1:
            bar("comparison")
            rows = module.compare(genomes, task, names=labels, device=args.device)
            analysis.plot_comparison(rows, out / "comparison.png", metric="token_accuracy" if transformer else "mean")
            lines.append(f"comparison: {out / 'comparison.png'}")
    finally:
        bar.close()
    print("\n".join(lines))
    return 0


def cmd_track(args) -> int:
    import json

    from . import check, compile_module, format as format_spec, load
    from .runtime.report import write_report
    from .runtime.train import accuracy, classification_data, parameter_count, train_tracked

    spec = load(args.spec)
    overrides = _overrides(args.define)
    check(spec, overrides)
    if not spec.networks:
        raise UsageError(f"{args.spec} has no network: netevo track trains layered networks",
                         hint="analyze WANN and transformer genomes with `netevo analyze`")
    data = classification_data(args.data, seed=args.seed)
    import torch

    torch.manual_seed(args.seed)  # the initial weights: the same seed gives the same run
    model = compile_module(spec, name=args.network, overrides=overrides)
    graph_inputs = model._inputs
    if len(graph_inputs) != 1 or len(graph_inputs[0][1]) != 2:
        raise UsageError("netevo track trains networks with one [B, F] input", hint="e.g. specs/digits_mlp.net")
    features = graph_inputs[0][1][1]
    if str(features) != str(data.train_x.shape[1]):
        raise UsageError(f"`{args.data}` has {data.train_x.shape[1]} features but the network's input is {features}",
                         hint=f"declare `input x: [B, {data.train_x.shape[1]}]`, or override a param with -D")
    out = Path(args.out or f"track-{Path(args.spec).stem}-{args.data}")
    tracker, history = train_tracked(model, data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                     seed=args.seed, progress=not args.no_progress)
    written = write_report(tracker, out, history=history)
    if args.tensorboard is not None:
        from .runtime.tensorboard import training_rows, write_scalars

        written["tensorboard"] = write_scalars(Path(args.tensorboard or out / "tensorboard"), training_rows(history))
    recs = json.loads(Path(written["recommendations"]).read_text())
    before = accuracy(model, data.test_x, data.test_y)
    print(Path(written["summary"]).read_text())
    print(f"test accuracy {before:.4f}, {parameter_count(model)} parameters; report in {out}"
          + (f"; tensorboard in {written['tensorboard']}" if "tensorboard" in written else ""))
    if args.apply:
        from .evolve.apply import apply_recommendations

        result = apply_recommendations(spec, model.state_dict(), recs, network=args.network)
        new_model = compile_module(result.spec, name=args.network, overrides=overrides)
        new_model.load_state_dict(result.weights)
        after = accuracy(new_model, data.test_x, data.test_y)
        (out / "applied.net").write_text(format_spec(result.spec), encoding="utf-8")
        for line in result.actions:
            print(f"applied: {line}")
        from collections import Counter

        for why, n in Counter(why for _, why in result.skipped).items():
            print(f"skipped {n} suggestion(s): {why}")
        print(f"after applying: test accuracy {after:.4f} (before {before:.4f}), "
              f"{parameter_count(new_model)} parameters (before {parameter_count(model)}); spec {out / 'applied.net'}")
    return 0


def cmd_ops(args) -> int:
    from .ops.registry import all_ops
    from .ops.signature import op_signature

    for op in all_ops():
        print(op_signature(op) + f"  - {op.doc}")
    return 0


def cmd_lsp(args) -> int:
    try:
        from .lsp.server import main as serve
    except ImportError as e:
        raise UsageError(f"the language server needs pygls and lsprotocol ({e.name} is missing)",
                         hint="pip install 'netevo[lsp]'", code="E180") from None
    return serve()


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="netevo", description="A genome DSL with a compiler for evolving neural networks.")
    p.add_argument("--version", action="version", version=f"netevo {__version__}")
    p.add_argument("--error-format", choices=("human", "json"), default="human", help="how errors are printed")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="parse, resolve, infer shapes and check spec files")
    c.add_argument("files", nargs="+", help=".net files to check")
    c.add_argument("--shapes", action="store_true", help="print every op's inferred shape")
    c.add_argument("--groups", action="store_true", help="print the dependency groups of each network")
    c.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE", help="override a param")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing when the files are fine")
    c.set_defaults(func=cmd_check)

    f = sub.add_parser("fmt", help="rewrite spec files in canonical form (comments kept)")
    f.add_argument("files", nargs="+", help=".net files to format in place")
    f.add_argument("--check", action="store_true", help="exit 1 if a file would change; write nothing")
    f.set_defaults(func=cmd_fmt)

    k = sub.add_parser("compile", help="emit standalone PyTorch source for a network or genome")
    k.add_argument("spec", help="the .net file")
    k.add_argument("--network", help="which network or genome (when the spec has several)")
    k.add_argument("-o", "--output", help="write here instead of stdout")
    k.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE", help="override a param")
    k.set_defaults(func=cmd_compile)

    from .evolve.settings import PRESETS  # pure Python: no torch

    presets = "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in values.items())
                        for name, values in PRESETS.items() if name != "paper")
    presets += ("; paper: the WANN authors' published settings for the task (swing-up: population 192, "
                "generations 1024; digits: population 960, generations 4096; see docs/evolve.md)")
    e = sub.add_parser("evolve", help="run the spec's evolve block (checkpointed, resumable)",
                       description="Run the spec's evolve block. Settings come from the block, then --preset, "
                                   "then --config, then the flags below (each overrides the one before).")
    e.add_argument("spec", help="the .net file with a genome or network and its evolve block")
    e.add_argument("--target", help="which evolve block, when the spec has several")
    e.add_argument("--generations", type=int, metavar="N", help="generations to run (default: the evolve block's)")
    e.add_argument("--population", type=int, metavar="N", help="individuals per generation (default: the evolve block's)")
    e.add_argument("--seed", type=int, metavar="S",
                   help="random seed; the same seed and settings give the same run (default: the block's, else 0)")
    e.add_argument("--out", help="run folder (default runs/TARGET-seedS)")
    e.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    e.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out folder")
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to evaluate (auto: cuda when available)")
    e.add_argument("--backend", choices=("local", "ray"), help="evaluate here (local) or on a Ray cluster (ray)")
    e.add_argument("--address", help="Ray cluster address (with --backend ray)")
    e.add_argument("--selection", choices=("wann", "nsga2", "aging", "random"),
                   help="selection (genomes: wann, nsga2; networks: nsga2, aging, random); default: the block's")
    e.add_argument("--inherit", choices=("on", "off"),
                   help="networks: children start from their parent's trained weights (default: the block's, else on)")
    e.add_argument("--config", help="YAML file with settings (same keys as the evolve block)")
    e.add_argument("--preset", help=f"named settings ({presets})")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.add_argument("--tensorboard", nargs="?", const="", metavar="DIR",
                   help="also write TensorBoard scalars (default DIR: RUN/tensorboard); needs netevo[tensorboard]")
    e.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE", help="override a param")
    e.set_defaults(func=cmd_evolve)

    a = sub.add_parser("analyze", help="weight sensitivity, ensemble and ablation of WANN and transformer genomes, "
                                        "with plots")
    a.add_argument("spec", nargs="+", help="one or more specs; several genomes are also compared side by side")
    a.add_argument("--task", help="task name or call, e.g. digits, swingup(max_steps=500) or majority(length=9) "
                                   "(default: the task of the spec's evolve block)")
    a.add_argument("--genome", help="which genome (default: every WANN or transformer genome in the specs)")
    a.add_argument("--out", help="output folder (default analysis-SPEC, after the first spec)")
    a.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where to evaluate (auto: cuda when available)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.set_defaults(func=cmd_analyze)

    t = sub.add_parser("track", help="train a network on a bundled dataset while tracking its neurons")
    t.add_argument("spec", help="the .net file with a network taking [B, features]")
    t.add_argument("--data", required=True, choices=("digits", "iris", "wine", "breast_cancer"),
                   help="bundled scikit-learn dataset (fixed, seeded train/test split)")
    t.add_argument("--network", help="which network, when the spec has several")
    t.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    t.add_argument("--batch-size", type=int, default=64, help="minibatch size (default 64)")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 0.001)")
    t.add_argument("--seed", type=int, default=0,
                   help="seed for the initial weights, the split and the batch order (default 0)")
    t.add_argument("--out", help="output folder (default track-SPEC-DATA)")
    t.add_argument("--apply", action="store_true", help="apply the exact recommendations and compare accuracy")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--tensorboard", nargs="?", const="", metavar="DIR",
                   help="also write TensorBoard scalars (default DIR: OUT/tensorboard); needs netevo[tensorboard]")
    t.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE", help="override a param")
    t.set_defaults(func=cmd_track)

    from .evolve.mutate_cli import add_parser as add_mutate_parser

    add_mutate_parser(sub)

    from .importer.cli import add_parser as add_import_parser  # argparse only; torch is imported when it runs

    add_import_parser(sub)

    from .evolve.tune_cli import add_parser as add_tune_parser  # argparse only; torch is imported when it runs

    add_tune_parser(sub)

    o = sub.add_parser("ops", help="list the registered ops and their parameters, in .net syntax")
    o.set_defaults(func=cmd_ops)

    ls = sub.add_parser("lsp", help="run the language server over stdio (needs pip install 'netevo[lsp]'); "
                                    "see docs/editors.md")
    ls.set_defaults(func=cmd_lsp)
    # `netevo check FILE --error-format json` as well as `netevo --error-format json check FILE`:
    # SUPPRESS keeps the top-level value unless the flag is given after the subcommand.
    for command in sub.choices.values():
        command.add_argument("--error-format", choices=("human", "json"), default=argparse.SUPPRESS,
                             help="how errors are printed (human, or json for editors)")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as typed, for reports
    try:
        return args.func(args)
    except NetevoError as e:
        if args.error_format == "json":
            print(errors_to_json(e))
        else:
            files = [str(s.span.file) for s in flatten(e) if s.span and s.span.file]
            print(e.render(_sources(set(files))), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `netevo check --shapes | head`: the reader left; not an error of ours
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["main"]
