"""Selection: the log-time Pareto sort agrees with DEAP's standard sort; WANN breeding counts; failures rank last."""
import warnings

import numpy as np
from deap import tools
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from netevo_dsl.evolve.selection import (
    _fitness_cls, _Ind, crowding_distances, nsga2_select, nsga_rank, pareto_fronts, wann_breeding_plan,
)


SHAPES = st.tuples(st.integers(2, 40), st.integers(2, 3))


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, SHAPES, elements=st.integers(-5, 5).map(float)))
def test_log_sort_equals_standard_sort(objs):
    """Equal fronts, ties and duplicate rows included."""
    cls = _fitness_cls(objs.shape[1])
    inds = [_Ind(i, tuple(r), cls) for i, r in enumerate(objs)]
    standard = [sorted(i.index for i in f) for f in tools.sortNondominated(inds, len(inds))]
    assert [sorted(f) for f in pareto_fronts(objs)] == standard


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, SHAPES, elements=st.floats(-5, 5, allow_nan=False, width=32), unique=True))
def test_log_sort_selection_is_a_valid_nsga2_selection(objs):
    """Whole fronts first, then the most crowded-apart of the last front; same front counts as DEAP's
    standard sort (individuals tied in crowding distance at the cut may differ)."""
    cls = _fitness_cls(objs.shape[1])
    k = len(objs) // 2
    chosen = set(nsga2_select(objs, k))
    reference = {i.index for i in tools.selNSGA2([_Ind(i, tuple(r), cls) for i, r in enumerate(objs)], k,
                                                 nd="standard")}
    fronts = pareto_fronts(objs)
    front_of = {i: f for f, members in enumerate(fronts) for i in members}
    assert sorted(front_of[i] for i in chosen) == sorted(front_of[i] for i in reference)
    cut = max(front_of[i] for i in chosen)
    last = fronts[cut]
    dist = dict(zip(last, crowding_distances(objs, last)))
    picked = [dist[i] for i in last if i in chosen]
    left = [dist[i] for i in last if i not in chosen]
    assert not left or min(picked) >= max(left)


def test_ranks_are_a_permutation_and_the_first_front_comes_first():
    objs = np.random.default_rng(0).random((50, 2))
    rank = nsga_rank(objs)
    assert sorted(rank) == list(range(50))
    first = pareto_fronts(objs)[0]
    assert max(rank[first]) == len(first) - 1


def test_wann_breeding_plan_culls_keeps_elites_and_uses_the_better_tournament_winners():
    rank = np.arange(100)[::-1].copy()  # individual 99 is best
    elites, parents = wann_breeding_plan(rank, 100, np.random.default_rng(0))
    assert len(elites) == 16 and len(parents) == 84  # cull 20 -> 80 left, 20% of 80 kept
    assert elites == list(range(99, 83, -1))
    assert all(p >= 20 for p in parents)  # culled individuals never breed
    assert np.mean(parents) > 80  # tournaments of 8 favour good ranks strongly


def test_failed_individuals_rank_last_without_warnings():
    objs = np.array([[1.0, 2.0], [-np.inf, -np.inf], [2.0, 1.0], [0.5, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rank = nsga_rank(objs)
        kept = nsga2_select(objs, 3)
    assert rank[1] == 3 and 1 not in kept
