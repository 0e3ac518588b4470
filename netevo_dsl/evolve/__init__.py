"""The mutation engine: dependency groups and function-preserving transforms on (spec, weights)."""


def run_evolution(spec, *, target=None, generations=None, population=None, seed=None, preset=None, config=None,
                  out=None, overwrite=False, progress=False, device=None, overrides=None):
    """Run a spec's `evolve` block as `netevo evolve` does; returns the `RunResult` (champion, its scores,
    the run folder with report.md). `spec`: a path or a loaded Spec. Arguments left at None keep the block's
    settings; `out` defaults to runs/TARGET-seedS."""
    from pathlib import Path

    from .. import check, load
    from .run import Evolution
    from .settings import resolve_settings

    if not hasattr(spec, "items"):
        spec = load(spec)
    check(spec, overrides)
    flags = {"generations": generations, "population": population, "seed": seed, "device": device}
    settings = resolve_settings(spec, target, config, preset, flags)
    out = Path(out) if out is not None else Path("runs") / f"{settings.target}-seed{settings.seed}"
    return Evolution(spec, settings, out, overwrite=overwrite, progress=progress).execute()


__all__ = ["run_evolution"]
