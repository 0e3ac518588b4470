"""What a run's settings cost in memory, estimated before anything is allocated, so that
`--population 1000000000` is refused with the figure instead of growing until the machine stalls."""
from __future__ import annotations

import os
import sys

import attrs

from ..errors import UsageError
from ..ir import nodes as ir

# individuals alive at once: parents, children, the evaluated generation kept for the report,
# each also held as .net text (checkpoint) and in the text cache
COPIES = 3
METRICS = 10  # score tensors per individual and weight, float64


def deep_size(obj, seen: set | None = None) -> int:
    """Bytes of an IR object and everything it holds (each object counted once)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, (str, bytes, int, float, bool)) or obj is None:
        return size
    if isinstance(obj, (tuple, list, set, frozenset)):
        return size + sum(deep_size(x, seen) for x in obj)
    if isinstance(obj, dict):
        return size + sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    if attrs.has(type(obj)):
        return size + sum(deep_size(getattr(obj, f.name), seen) for f in attrs.fields(type(obj)))
    return size


def representative(seed, settings):
    """An individual as large as the first generation's: for WANN every input-output link."""
    if isinstance(seed, ir.WannGenome):
        edges = tuple(ir.WannEdge(i, o.name, True) for o in seed.outputs for i in seed.inputs)
        return attrs.evolve(seed, nodes=(), edges=edges)
    return seed


def estimate_bytes(seed, settings) -> tuple[int, int]:
    """(bytes the run needs, bytes per individual): IR, text and scores of COPIES generations."""
    from .population import genome_text

    individual = representative(seed, settings)
    per = deep_size(individual) + 2 * len(genome_text(individual)) + METRICS * 8 * len(settings.weights or (0,) * 6)
    return COPIES * per * settings.population, per


def available_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(seed, settings, available: int | None = None) -> None:
    """Refuse settings whose estimate exceeds the memory available now (E119)."""
    need, per = estimate_bytes(seed, settings)
    available = available_bytes() if available is None else available
    if available is not None and need > available:
        raise UsageError(
            f"population {settings.population:,} needs about {_gib(need)} of memory ({per / 1024:,.1f} KiB per "
            f"individual, {COPIES} generations held at once); {_gib(available)} is available",
            hint=f"use a population of at most {max(2, available // (COPIES * per)):,}", code="E119")


def _gib(n: int) -> str:
    return f"{n / 2 ** 30:,.1f} GiB"
