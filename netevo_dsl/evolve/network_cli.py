"""`netevo evolve SPEC` when the evolve block's target is a network (the CLI's network branch)."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

from ..errors import UsageError
from .network_settings import is_network_target, load_network_settings, resolve_network_settings


def is_network_run(spec, args) -> bool:
    if args.resume:
        config = Path(args.resume) / "config.yaml"
        try:
            return (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("kind") == "network"
        except (OSError, yaml.YAMLError, AttributeError):
            return False
    return is_network_target(spec, args.target)


def evolve_network(spec, args) -> int:
    from .network_run import NetworkEvolution

    for flag in ("config", "preset", "device", "tensorboard"):
        if getattr(args, flag, None) is not None:
            raise UsageError(f"--{flag} applies to genome runs; a network run takes its settings from the evolve "
                             "block and the flags --population, --generations, --seed, --selection, --inherit, "
                             "--backend, --address")
    if args.define:
        raise UsageError("-D applies to genome runs; set the network's params in the spec")
    flags = {"population": args.population, "generations": args.generations, "seed": args.seed,
             "selection": args.selection, "backend": args.backend, "address": args.address,
             "inherit": None if args.inherit is None else args.inherit == "on"}
    if args.resume:
        out = Path(args.resume)
        settings = load_network_settings(out / "config.yaml")
        changed = [k for k, v in flags.items() if v is not None and getattr(settings, k) != v]
        if changed:
            raise UsageError(f"--resume keeps the run's settings; these flags differ: {', '.join(changed)}",
                             hint="drop them, or start a new run with --out")
    else:
        settings = resolve_network_settings(spec, args.target, flags)
        out = Path(args.out) if args.out else Path("runs") / f"{settings.target}-{settings.selection}-seed{settings.seed}"
    run = NetworkEvolution(spec, settings, out, resume=bool(args.resume), overwrite=args.overwrite,
                           progress=not args.no_progress)
    try:
        result = run.execute()
    except KeyboardInterrupt:
        print(f"interrupted; the last checkpoint is in {out}. Resume with: netevo evolve {args.spec} --resume {out}",
              file=sys.stderr)
        return 130
    best = result.front[0]
    test = {t["id"]: t for t in result.test}.get(best["id"], {})
    print(f"front: {len(result.front)} network(s); best validation accuracy {best['metrics']['accuracy']:.4f}"
          f" (test {test.get('test_accuracy', float('nan')):.4f}) with {int(best['metrics']['params']):,} params")
    smallest = min(result.front, key=lambda r: r["metrics"]["params"])
    if smallest is not best:
        print(f"smallest on the front: {int(smallest['metrics']['params']):,} params, validation accuracy "
              f"{smallest['metrics']['accuracy']:.4f}")
    print(f"champions: {out / 'front'}")
    print(f"report: {result.report or out}")
    return 0
