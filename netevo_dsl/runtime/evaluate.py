"""Batched WANN evaluation: population x shared weights x samples in one pass per level.

`evaluate` packs the population (`wann_pack`) and runs every individual at
every shared weight on every sample together: each topological level is one
gather-sum plus one call per activation, so there is no Python loop over
individuals or weights. Classification data are streamed in blocks of samples
whose outputs are scored as soon as they are computed, so memory stays bounded;
large populations are additionally split into chunks. With several torch threads
on the CPU, the blocks run on a pool of that many threads, one block per thread
(scored in sample order, the same bits), and the value buffer is kept between
evaluations.

An individual that cannot be evaluated (invalid genome, inputs/outputs that do
not fit the task, non-finite outputs) appears in `Scores.failures` with its
reason and has NaN scores; it is never silently scored 0.
"""
from __future__ import annotations

import collections
import concurrent.futures
import os
import threading

import attrs
import torch

from ..errors import GenomeError, UsageError
from ..ir import nodes as ir
from ..ir.wann import DEFAULT_WEIGHTS, shared_weights
from .tasks import make_task
from .tasks.classification import SEGMENT, Scratch
from .live_pack import LivePackPolicy
from .wann_pack import pack_population, plan_chunks
from .wann_weighted import classify_weighted, control_weighted, weighted_rows

# Samples per block: a block's temporaries (a level's sums, the outputs) stay under
# BLOCK_BYTES, because allocations much larger than that are returned to the OS on free
# and cost page faults on every block.
BLOCK_BYTES = 16 << 20
MIN_BLOCK_SAMPLES = 64  # a multiple of the scorer's SEGMENT
# On a GPU every block costs kernel launches, not cache misses: blocks take up to this
# share of the free device memory, so that a data set usually runs as one block.
GPU_FREE_MEMORY_SHARE = 8
# Budget for one chunk's value buffer; larger populations are evaluated chunk by chunk.
CHUNK_BYTES = 1 << 30
# Value buffers up to this size are kept for the next evaluation (one per thread, device and
# dtype): a buffer this large is fresh memory from the OS on every allocation, and its page
# faults cost about a tenth of an evaluation (200 digits genomes: 38 MB, ~10,000 faults).
KEPT_BUFFER_BYTES = 64 << 20
_kept = threading.local()


@attrs.define
class Scores:
    """Rewards of a population. Rows are individuals, in population order."""

    per_weight: torch.Tensor  # [P, W] reward at each shared weight (float64, CPU)
    weights: torch.Tensor  # [W]
    metrics: dict  # name -> [P, W] or [P] tensor; always includes "reward"
    failures: dict  # individual index -> reason; their scores are NaN

    @property
    def mean(self) -> torch.Tensor:
        """[P] the WANN fitness: mean reward over the shared weights."""
        return self.per_weight.mean(1)

    @property
    def max(self) -> torch.Tensor:
        """[P] best reward over the shared weights."""
        return self.per_weight.max(1).values


def evaluate(population, task, weights=None, device="auto", *, dtype=torch.float32,
             block_bytes: int | None = None, chunk_bytes: int = CHUNK_BYTES, metrics=None) -> Scores:
    """Score every individual at every shared weight on `task`.

    population: a list of `ir.Spec` (each with one genome) or `ir.WannGenome`; a list of specs that each
        hold one layered network goes to `evaluate_networks` (shared-weight mode, batched per group);
        a list with transformer genomes (or specs holding one) to `evaluate_transformers` (batched per shape).
    task: a registered name, a `(name, kwargs)` pair, or a task object.
    weights: shared-weight values; default the population's `weights` setting.
    device: "auto" (CUDA when available, else CPU), or any torch device.
    block_bytes: temporaries per block of samples; default `block_budget(device)`.
    chunk_bytes: the value buffer's budget; larger populations run chunk by chunk.
    metrics: names of the metrics to compute (default None: all the task reports); the reward always is,
        with the same bits whatever else is asked. Selection needs only its objectives (docs/tasks.md).
    """
    if isinstance(population, (list, tuple)) and population and all(
            isinstance(p, ir.Spec) and p.networks and not p.genomes for p in population):
        from .evaluate_networks import evaluate_networks  # layered networks, grouped by architecture

        return only_metrics(evaluate_networks(population, task, weights, device, dtype=dtype,
                                              block_bytes=block_bytes, chunk_bytes=chunk_bytes), metrics)
    from .evaluate_transformer import evaluate_transformers, is_transformer_individual

    if isinstance(population, (list, tuple)) and any(map(is_transformer_individual, population)):
        return only_metrics(evaluate_transformers(population, task, weights, device, dtype=dtype,
                                                  chunk_bytes=chunk_bytes), metrics)
    genomes, failures = wann_genomes_of(population)
    task = make_task(task)
    device = resolve_device(device)
    weights = resolve_weights(genomes, weights, dtype, device)
    wanted = wanted_metrics(metrics, getattr(task, "metric_dims", {}), task.name)
    if task.kind == "classification":
        block_bytes = block_budget(device) if block_bytes is None else block_bytes
        scores = _classification(genomes, task, weights, block_bytes, chunk_bytes, wanted)
    elif task.kind == "control":
        scores = _control(genomes, task, weights, chunk_bytes)
    else:
        raise wrong_task_kind(task)
    return only_metrics(finalize(scores, failures), metrics)


# --- shared by the batched and the reference evaluator ----------------------------------


def wann_genomes_of(population) -> tuple[list, dict[int, str]]:
    """The WANN genome of every individual; individuals without exactly one get a failure."""
    if isinstance(population, (ir.Spec, ir.WannGenome)):
        raise UsageError("evaluate takes a list of individuals", hint="wrap a single genome or spec in a list")
    genomes, failures = [], {}
    for i, individual in enumerate(population):
        genome = individual
        if isinstance(individual, ir.Spec):
            found = individual.of_kind(ir.WannGenome, ir.TransformerGenome)
            if len(found) != 1:
                failures[i] = f"a spec must hold exactly one genome to be evaluated, it holds {len(found)}"
                genomes.append(None)
                continue
            genome = found[0]
        if isinstance(genome, ir.TransformerGenome):
            raise UsageError(
                f"genome `{genome.name}` is a transformer genome; this evaluator scores WANN node/edge genomes only",
                genome.span, "evaluate transformer genomes with their own evaluator",
            )
        if isinstance(genome, ir.Network):
            raise UsageError(f"`{genome.name}` is a layered network, not a WANN genome", genome.span,
                             "train layered networks instead of evaluating them with shared weights")
        if not isinstance(genome, ir.WannGenome):
            raise UsageError(f"cannot evaluate {type(genome).__name__}", hint="pass ir.Spec or ir.WannGenome items")
        genomes.append(genome)
    return genomes, failures


def wanted_metrics(metrics, known, task_name: str | None = None) -> dict | None:
    """{metric: dims} of the metrics to compute (the reward always); None for all of them."""
    if metrics is None:
        return None
    if isinstance(metrics, str):
        metrics = [metrics]
    unknown = sorted(set(metrics) - set(known))
    if unknown:
        task = f"task `{task_name}`" if task_name else "the task"
        raise UsageError(f"{task} reports no metric `{unknown[0]}`", hint="metrics: " + ", ".join(sorted(known)),
                         code="E181")
    return {name: dims for name, dims in known.items() if name == "reward" or name in metrics}


def only_metrics(scores: Scores, metrics) -> Scores:
    """`scores` with only the asked metrics (and the reward), for evaluators that compute them all."""
    if metrics is None:
        return scores
    wanted = wanted_metrics(metrics, scores.metrics)
    scores.metrics = {name: value for name, value in scores.metrics.items() if name in wanted}
    return scores


def resolve_device(device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def block_budget(device: torch.device) -> int:
    """Bytes of temporaries for one block of samples: on the CPU the size that runs fastest
    (larger blocks leave the cache and cost page faults), on a GPU a share of its free memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(BLOCK_BYTES, free // GPU_FREE_MEMORY_SHARE)
    return BLOCK_BYTES


def resolve_weights(genomes: list, weights, dtype, device) -> torch.Tensor:
    if weights is None:
        found = set()
        for genome in genomes:
            if genome is None:
                continue
            try:
                found.add(shared_weights(genome))
            except GenomeError:
                continue  # reported as that genome's failure
        if len(found) > 1:
            raise UsageError("the genomes declare different shared weights",
                             hint="pass weights=... to evaluate them on one set")
        weights = found.pop() if found else DEFAULT_WEIGHTS
    weights = torch.as_tensor(weights, dtype=dtype).to(device).reshape(-1)
    if len(weights) == 0:
        raise UsageError("no shared weights to evaluate", hint="pass e.g. weights=[-2, -1, -0.5, 0.5, 1, 2]")
    return weights


def wrong_task_kind(task) -> UsageError:
    return UsageError(
        f"task `{task.name}` is a {task.kind} task; WANN genomes are scored on classification and control tasks",
        hint="sequence tasks are for transformer genomes",
    )


def nonfinite_reason(weights: torch.Tensor, bad: torch.Tensor) -> str:
    values = ", ".join(f"{w:g}" for w in weights[bad.to(weights.device)].tolist())
    return f"non-finite outputs (overflow or NaN) at shared weight(s) {values}"


@attrs.define
class ScoreTable:
    """Scores being assembled: rows of individuals not yet written stay NaN."""

    per_weight: torch.Tensor
    weights: torch.Tensor
    metrics: dict
    failures: dict

    @classmethod
    def empty(cls, n: int, weights: torch.Tensor, metric_dims: dict, repeats: int = 1) -> "ScoreTable":
        """NaN everywhere; `metric_dims` maps each metric to 3 ([n, W, repeats]: per episode),
        2 ([n, W]) or 1 ([n])."""
        nan = float("nan")
        metrics = {name: torch.full((n, len(weights), repeats)[:dims], nan, dtype=torch.float64)
                   for name, dims in metric_dims.items() if name != "reward"}
        return cls(torch.full((n, len(weights)), nan, dtype=torch.float64), weights.cpu(), metrics, {})

    def write(self, rows: list[int], reward: torch.Tensor, metrics: dict, bad: torch.Tensor) -> None:
        """Store scores for population `rows`; bad [len(rows), W] flags non-finite outputs."""
        index = torch.as_tensor(rows, dtype=torch.long)
        self.per_weight[index] = reward.detach().to("cpu", torch.float64)
        for name, value in metrics.items():
            if name == "reward" or name not in self.metrics:  # a metric not asked for
                continue
            self.metrics[name][index] = value.detach().to("cpu", torch.float64)
        bad = bad.cpu()
        for k in torch.nonzero(bad.any(1)).flatten().tolist():
            self.failures[rows[k]] = nonfinite_reason(self.weights, bad[k])


def finalize(partial: ScoreTable, early_failures: dict[int, str]) -> Scores:
    failures = {**partial.failures, **early_failures}
    if failures:
        rows = torch.as_tensor(sorted(failures), dtype=torch.long)
        partial.per_weight[rows] = float("nan")
        for value in partial.metrics.values():
            value[rows] = float("nan")
    metrics = dict(partial.metrics)
    metrics["reward"] = partial.per_weight
    return Scores(partial.per_weight, partial.weights, metrics, dict(sorted(failures.items())))


# --- batched drivers --------------------------------------------------------------------


def _chunks(genomes: list, weights: torch.Tensor, min_samples: int, chunk_bytes: int):
    """Population chunks whose value buffer for `min_samples` samples fits `chunk_bytes`."""
    usable = [i for i, g in enumerate(genomes) if g is not None]
    if not usable:
        return []
    rows = max(len(genomes[i].nodes) + len(genomes[i].outputs) for i in usable)
    itemsize = torch.empty(0, dtype=weights.dtype).element_size()
    return [[usable[k] for k in r] for r in plan_chunks(len(usable), rows, len(weights), min_samples, itemsize,
                                                          chunk_bytes)]


def _classification(genomes, task, weights, block_bytes: int, chunk_bytes: int, wanted=None) -> ScoreTable:
    result = ScoreTable.empty(len(genomes), weights, task.metric_dims if wanted is None else wanted)
    features = task.features.to(weights.device, weights.dtype)
    batch_mask = task.next_batch_mask()
    n = task.n_samples
    genomes = _weighted_apart(genomes, lambda rows: classify_weighted(genomes, rows, task, weights, batch_mask,
                                                                     result))
    for chunk in _chunks(genomes, weights, MIN_BLOCK_SAMPLES, chunk_bytes):
        pack, failures = pack_population([genomes[i] for i in chunk], task.n_inputs, task.n_outputs, weights,
                                         shared_inputs=True, indices=chunk)
        result.failures.update(failures)
        if not pack.members:
            continue
        block = block_samples(pack, n, task.n_outputs, weights, block_bytes, chunk_bytes)
        scorer = task.scorer(len(pack.members), weights, batch_mask, None if wanted is None else list(wanted))
        blocks = [slice(first, min(first + block, n)) for first in range(0, n, block)]
        workers = min(torch.get_num_threads(), len(blocks)) if weights.device.type == "cpu" else 1
        if workers > 1:
            _blocks_on_threads(pack, features, blocks, block, scorer, workers)
        else:
            storage = value_storage(pack.n_rows * len(weights) * block, weights)
            for samples in blocks:
                scorer.add(pack.forward(features[samples], _values(storage, pack, samples)), samples)
        reward, metrics = scorer.finish()
        result.write(pack.members, reward, metrics, scorer.nonfinite)
    return result


def _values(storage: torch.Tensor, pack, samples: slice) -> torch.Tensor:
    W = pack.n_weights
    return storage[: pack.n_rows * W * (samples.stop - samples.start)].view(pack.n_rows, W, -1)


def _blocks_on_threads(pack, features, blocks: list[slice], block: int, scorer, workers: int) -> None:
    """The sample blocks' forward and scoring on `workers` threads, each block on one thread with
    one intra-op thread, scored in sample order. Splitting every operation over the threads
    instead pays a fork and a join per operation (a level costs dozens, most of them small)
    and moves a block's values between the cores' caches. The bits are the same: every
    operation is elementwise, a fixed-order sum or an exact count, whatever the thread."""
    threads = torch.get_num_threads()

    def score(samples: slice) -> dict:
        storage = value_storage(pack.n_rows * pack.n_weights * block, pack.weights)
        outputs = pack.forward(features[samples], _values(storage, pack, samples), fresh_outputs=True)
        return scorer.block_scores(outputs, samples, _thread_scratch())

    try:
        # This thread only accepts the blocks' scores (small operations) on one intra-op thread:
        # split over OpenMP threads, each one left a worker spinning on a core that the pool's
        # threads need (process CPU time 232-270 -> 159-175 ms for 200 digits genomes at 2 threads).
        torch.set_num_threads(1)
        pending = collections.deque()
        for samples in blocks:
            pending.append((samples, _block_pool(workers).submit(score, samples)))
            if len(pending) > workers:  # at most one block waits to be accepted per thread
                done, future = pending.popleft()
                scorer.accept(future.result(), done)
        while pending:
            done, future = pending.popleft()
            scorer.accept(future.result(), done)
    finally:
        # the pool's threads set torch's thread count to 1 for themselves; the count that new
        # threads start with is the caller's again
        torch.set_num_threads(threads)


_pool_lock = threading.Lock()
_pool: tuple[int, int, concurrent.futures.ThreadPoolExecutor] | None = None  # (process id, size, pool)


def _block_pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    """Threads kept from one evaluation to the next, each with one intra-op thread (and its own
    kept value buffer and scratch space). A forked child makes its own: it has none of its
    parent's threads."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] < workers:
            _pool = (os.getpid(), workers, concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix="netevo-blocks", initializer=torch.set_num_threads, initargs=(1,)))
        return _pool[2]


def _thread_scratch() -> Scratch:
    scratch = getattr(_kept, "scratch", None)
    if scratch is None:
        scratch = _kept.scratch = Scratch()
    return scratch


def value_storage(numel: int, like: torch.Tensor) -> torch.Tensor:
    """A flat buffer of `numel` elements of `like`'s dtype and device, its contents undefined: the
    one kept from an earlier evaluation on this thread when it is large enough, else a new one
    (kept in turn when at most KEPT_BUFFER_BYTES)."""
    key = (like.device, like.dtype)
    kept = getattr(_kept, "buffers", None)
    if kept is None:
        kept = _kept.buffers = {}
    buffer = kept.get(key)
    if buffer is None or buffer.numel() < numel:
        buffer = torch.empty(numel, dtype=like.dtype, device=like.device)
        if numel * like.element_size() <= KEPT_BUFFER_BYTES:
            kept[key] = buffer
        else:
            kept.pop(key, None)
    return buffer[:numel]


def _weighted_apart(genomes: list, score) -> list:
    """Genomes with edge weights of their own are scored by `score(rows)` (runtime/wann_weighted.py);
    the rest, with those rows left empty, go on to the packed evaluator."""
    rows = weighted_rows(genomes)
    if not rows:
        return genomes
    score(rows)
    apart = set(rows)
    return [None if i in apart else g for i, g in enumerate(genomes)]


def block_samples(pack, n: int, n_outputs: int, weights: torch.Tensor, block_bytes: int, chunk_bytes: int) -> int:
    """Samples per block: the widest level's temporaries within `block_bytes`, the value buffer
    within `chunk_bytes`, and at least MIN_BLOCK_SAMPLES (a chunk is planned to afford them)."""
    per_sample = len(weights) * weights.element_size()
    widest = max([len(pack.members) * n_outputs] + [lv.stop - lv.start for lv in pack.levels])
    fits = min(block_bytes // (widest * per_sample), chunk_bytes // (pack.n_rows * per_sample))
    # whole summation segments, so that no score depends on where a block ends (see SEGMENT)
    return int(min(n, max(MIN_BLOCK_SAMPLES, fits // SEGMENT * SEGMENT)))


def _control(genomes, task, weights, chunk_bytes: int) -> ScoreTable:
    result = ScoreTable.empty(len(genomes), weights, task.metric_dims, task.repeats)
    genomes = _weighted_apart(genomes, lambda rows: control_weighted(genomes, rows, task, weights, result))
    for chunk in _chunks(genomes, weights, task.repeats, chunk_bytes):
        pack, failures = pack_population([genomes[i] for i in chunk], task.n_inputs, task.n_outputs, weights,
                                         shared_inputs=False, indices=chunk)
        result.failures.update(failures)
        if not pack.members:
            continue
        # finished episodes leave the batch (live_pack.py); the results are the same bits
        policy = LivePackPolicy(pack, [genomes[i] for i in pack.members], task.n_inputs, task.n_outputs, weights,
                                task.repeats)
        outcome = task.rollout(policy, (len(pack.members), len(weights)), weights.dtype, weights.device)
        result.write(pack.members, outcome["reward"], task.metrics_of(outcome), outcome["nonfinite"])
    return result
