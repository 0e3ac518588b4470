"""Selection: Pareto ranking (DEAP's log-time non-dominated sort), the WANN protocol, NSGA-II.

All objectives are maximised here; callers negate what they minimise.

WANN (Gaier & Ha 2019, and the authors' `rankPop` / `recombine`):
  * objectives [mean reward over weights, max reward over weights, 1 / connections]
    (zero connections count as one);
  * each generation ranks on [mean, 1/connections] with probability 0.8, else on [mean, max];
    a rank is the Pareto front, ties broken by crowding distance;
  * the bottom 20% are culled, the top 20% of the rest are kept as elites, and every other
    child is one mutation of the better of two tournament winners (tournament size 8).
"""
from __future__ import annotations

import numpy as np
from deap import base, creator, tools

if not hasattr(creator, "NetevoFitness"):
    # DEAP needs a Fitness class with weights; ours are set per call through `values`.
    creator.create("NetevoFitness", base.Fitness, weights=(1.0,))


class _Ind:
    """A minimal DEAP individual: an index and a fitness."""

    __slots__ = ("index", "fitness")

    def __init__(self, index: int, values, fitness_cls):
        self.index = index
        self.fitness = fitness_cls(values)


def _fitness_cls(k: int):
    name = f"NetevoFitness{k}"
    if not hasattr(creator, name):
        creator.create(name, base.Fitness, weights=(1.0,) * k)
    return getattr(creator, name)


def finite(objectives: np.ndarray) -> np.ndarray:
    """Non-finite values (failed individuals) become worse than every finite one, per objective,
    so fronts and crowding distances stay well defined."""
    objectives = np.array(objectives, dtype=float)
    for j in range(objectives.shape[1]):
        column = objectives[:, j]
        ok = np.isfinite(column)
        low = column[ok].min() if ok.any() else 0.0
        span = (column[ok].max() - low) if ok.any() else 1.0
        column[~ok] = low - max(span, 1.0)
    return objectives


def pareto_fronts(objectives: np.ndarray) -> list[list[int]]:
    """Indices grouped in non-dominated fronts (all objectives maximised), best front first."""
    objectives = finite(objectives)
    cls = _fitness_cls(objectives.shape[1])
    inds = [_Ind(i, tuple(row), cls) for i, row in enumerate(objectives)]
    fronts = tools.sortLogNondominated(inds, len(inds))
    return [[ind.index for ind in front] for front in fronts]


def crowding_distances(objectives: np.ndarray, front: list[int]) -> np.ndarray:
    cls = _fitness_cls(objectives.shape[1])
    inds = [_Ind(i, tuple(objectives[i]), cls) for i in front]
    tools.emo.assignCrowdingDist(inds)
    return np.array([ind.fitness.crowding_dist for ind in inds])


def nsga_rank(objectives: np.ndarray) -> np.ndarray:
    """rank[i] = position of individual i when sorted by (front, -crowding distance); 0 is best."""
    objectives = finite(objectives)
    order: list[int] = []
    for front in pareto_fronts(objectives):
        dist = crowding_distances(objectives, front)
        order += [front[j] for j in np.argsort(-dist, kind="stable")]
    rank = np.empty(len(order), dtype=int)
    rank[np.array(order, dtype=int)] = np.arange(len(order))
    return rank


def wann_objectives(mean: np.ndarray, best: np.ndarray, connections: np.ndarray) -> np.ndarray:
    conns = np.maximum(np.asarray(connections, dtype=float), 1.0)
    return np.c_[mean, best, 1.0 / conns]


def wann_rank(mean, best, connections, rng: np.random.Generator, prob_moo: float = 0.8) -> tuple[np.ndarray, str]:
    """WANN's alternating ranking; returns the rank and which pair of objectives was used."""
    objs = wann_objectives(mean, best, connections)
    if rng.random() < prob_moo:
        return nsga_rank(objs[:, [0, 2]]), "mean+connections"
    return nsga_rank(objs[:, [0, 1]]), "mean+max"


def wann_breeding_plan(rank: np.ndarray, n_children: int, rng: np.random.Generator, cull: float = 0.2,
                       elite: float = 0.2, tournament: int = 8) -> tuple[list[int], list[int]]:
    """(elite indices, parent index for each remaining child), by WANN's recombine."""
    order = list(np.argsort(rank, kind="stable"))
    n_cull = int(np.floor(cull * len(order)))
    if n_cull > 0:
        order = order[:-n_cull]
    n_elite = min(int(np.floor(len(order) * elite)), n_children)
    elites = order[:n_elite]
    n_offspring = n_children - n_elite
    a = rng.integers(len(order), size=(n_offspring, tournament)).min(axis=1)
    b = rng.integers(len(order), size=(n_offspring, tournament)).min(axis=1)
    parents = np.minimum(a, b)  # the better of the two tournament winners (lower index = better rank)
    return [int(i) for i in elites], [int(order[i]) for i in parents]


def nsga2_select(objectives: np.ndarray, k: int) -> list[int]:
    """DEAP's selNSGA2 with the log-time sort: indices of the k survivors (mu + lambda)."""
    objectives = finite(objectives)
    cls = _fitness_cls(objectives.shape[1])
    inds = [_Ind(i, tuple(row), cls) for i, row in enumerate(objectives)]
    return [ind.index for ind in tools.selNSGA2(inds, k, nd="log")]
