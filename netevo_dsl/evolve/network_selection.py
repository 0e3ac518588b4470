"""Selection for network searches: NSGA-II parents, regularized (aging) evolution, the Pareto archive,
and the 2-D hypervolume the reports and benchmarks compare.

All objectives are maximised here, as in `selection.py` (callers negate what they minimise).

* NSGA-II (Deb et al. 2002) as DEAP implements it: parents by binary tournament on the NSGA rank,
  survivors by `tools.selNSGA2(nd="log")` over parents + children (`selection.nsga2_select`).
* Aging evolution (Real et al. 2019, "Regularized Evolution for Image Classifier Architecture
  Search", Algorithm 1): sample S members uniformly without replacement, the best of the sample
  (by the first objective) is the parent, the child is appended and the OLDEST member dies,
  whatever its fitness.
"""
from __future__ import annotations

import numpy as np

from .selection import nsga_rank, pareto_fronts


def nsga2_parents(objectives: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    """n parent indices, each the better-ranked of two uniform draws (binary tournament)."""
    rank = nsga_rank(objectives)
    order = np.argsort(rank, kind="stable")
    size = len(objectives)
    picks = np.minimum(rng.integers(size, size=n), rng.integers(size, size=n))
    return [int(order[i]) for i in picks]


def aging_parent(fitness: np.ndarray, sample: int, rng: np.random.Generator) -> int:
    """The index of the best of `sample` members drawn without replacement (ties: the first drawn)."""
    drawn = rng.choice(len(fitness), size=min(sample, len(fitness)), replace=False)
    return int(drawn[int(np.argmax(fitness[drawn]))])


def pareto_front(objectives: np.ndarray) -> list[int]:
    """Indices of the non-dominated rows (all objectives maximised)."""
    if len(objectives) == 0:
        return []
    return sorted(pareto_fronts(np.asarray(objectives, dtype=float))[0])


def hypervolume_2d(accuracy, params, params_ref: float) -> float:
    """Area dominated by the points (accuracy up, params down) within [0, 1] x [0, params_ref],
    divided by params_ref, so 1.0 is a perfect classifier with no parameters.

    Reference point: accuracy 0, params = params_ref; points with more parameters than the reference
    add nothing. Computed exactly by sweeping the points in order of increasing params."""
    pts = sorted((float(p), float(a)) for a, p in zip(accuracy, params)
                 if np.isfinite(a) and np.isfinite(p) and p < params_ref and a > 0)
    area, best = 0.0, 0.0
    for k, (p, a) in enumerate(pts):
        best = max(best, a)
        nxt = pts[k + 1][0] if k + 1 < len(pts) else params_ref
        area += best * (nxt - p)
    return area / params_ref
