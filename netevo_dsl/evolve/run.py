"""`netevo evolve`: an evolutionary run from a spec, checkpointed as it goes.

Each generation: evaluate, select, log; then, after the first generation, the last one, a
Ctrl-C, and whenever `checkpoint_seconds` have passed since the last checkpoint: the champion
files of the generations since, and the checkpoint. Writing these every generation cost as much as
evaluating on wide genomes (printing 256 genomes of 640 edges, 10 MB fsync'ed per generation).
The checkpoint holds everything the next generation needs (population as .net text, parents'
objective values for NSGA-II, the RNG state, how many log lines are valid), and a generation
depends only on it, so a run killed at any instant and resumed finishes with exactly the same log
and champion as an uninterrupted one; a kill costs at most the generations since the last
checkpoint. `log.jsonl` holds only deterministic fields; wall-clock times go to `timing.jsonl`.
"""
from __future__ import annotations

import json
import signal
import time
from collections import OrderedDict
from pathlib import Path

import attrs
import numpy as np

from ..errors import EvolveError, NetevoError, UsageError
from ..ir import nodes as ir
from ..runtime.progress import progress_bar
from .checkpoint import (CHECKPOINT, append_lines, check_same_spec, field_error, integer, load_checkpoint, mapping,
                         number_rows, numpy_rng_state, optional, prepare_run_folder, remove_owned,
                         reporting_disk_errors, save_checkpoint, spec_fingerprint, text_list, truncate_appended,
                         write_atomic)
from .population import genome_from_text, genome_text, identity, wann_initial_population
from .selection import nsga2_select, nsga_rank, pareto_fronts, wann_breeding_plan, wann_rank
from .settings import Settings, load_settings, resolve_settings, save_settings, validate


@attrs.frozen
class RunResult:
    out_dir: Path
    champion: object  # genome IR
    champion_scores: dict
    generations: int
    report: Path | None


def objective_matrix(settings: Settings, population: list, scores) -> tuple[np.ndarray, dict]:
    """[P, k] objective values, all oriented to be maximised, and the raw values by label."""
    from ..runtime.wann_arrays import connection_count  # from the genomes' carried arrays

    cols, raw = [], {}
    for o in settings.objectives:
        if o.metric == "connections":
            v = np.array([_connections(g, connection_count) for g in population], dtype=float)
        elif o.metric == "nodes":
            v = np.array([len(getattr(g, "nodes", ())) for g in population], dtype=float)
        else:
            t = scores.per_weight if o.metric == "reward" else scores.metrics.get(o.metric)
            if t is None:
                raise EvolveError(f"the task reports no metric `{o.metric}`", None,
                                  "metrics: " + ", ".join(sorted(scores.metrics)))
            t = t.double()
            if t.dim() == 2:
                agg = o.aggregate or "mean"
                t = {"mean": t.mean(1), "max": t.max(1).values, "min": t.min(1).values}[agg]
            v = t.cpu().numpy().astype(float)
        raw[o.label] = v
        oriented = v if o.direction == "maximize" else -v
        cols.append(np.where(np.isfinite(oriented), oriented, -np.inf))
    return np.stack(cols, axis=1), raw


def _connections(genome, connection_count):
    if isinstance(genome, ir.WannGenome):
        return connection_count(genome)
    from ..compiler.transformer import config_of, masks_for

    return float(sum(int(m.sum()) for v in masks_for(config_of(genome)).values()
                     for m in (v.values() if isinstance(v, dict) else [v])))


def _summary(values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"min": None, "median": None, "max": None}
    return {"min": round(float(finite.min()), 10), "median": round(float(np.median(finite)), 10),
            "max": round(float(finite.max()), 10)}


CHECKPOINT_SECONDS = 10.0  # checkpoint at least this far apart (wall time): what a kill may cost, at least
CHECKPOINT_SHARE = 0.05  # and far enough apart that checkpoints take at most this share of the run


class Evolution:
    """One run. `execute()` runs (or resumes) it to the end and writes the report.

    checkpoint_seconds: checkpoint once this long has passed since the last one, or longer where the
        last checkpoint took more than CHECKPOINT_SHARE of the time since (0: every generation).
    stop_when: `stop_when(generation, champion, champion_scores) -> bool`, called after each generation's
        log line; True makes that generation the run's last (checkpointed, then the report), as a
        fitness threshold does (benchmarks/bench_xor_vs_neat.py times runs to a solution this way)."""

    def __init__(self, spec: ir.Spec, settings: Settings, out_dir: Path, *, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, report: bool = True,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS, stop_when=None):
        """Everything is validated before the run folder is touched: the genome, the memory the
        settings need, the task; then the folder (new, or resumed: see `_open_resumed`)."""
        self.spec, self.settings, self.out = spec, settings, Path(out_dir)
        self.checkpoint_seconds, self.stop_when = float(checkpoint_seconds), stop_when
        self.progress, self.make_report = progress, report
        self.seed_genome = spec.find(settings.target, (ir.WannGenome, ir.TransformerGenome))
        if self.seed_genome is None:
            raise EvolveError(f"no genome named `{settings.target}` to evolve", None,
                              "netevo evolves `genome` items (wann or transformer)")
        from ..runtime.tasks import make_task
        from .resources import check_memory

        check_memory(self.seed_genome, settings)
        self.task = make_task((settings.task, settings.task_params))
        known = getattr(self.task, "metric_dims", None)
        for o in settings.objectives:
            if known is not None and isinstance(self.seed_genome, ir.WannGenome) and \
                    o.metric not in known and o.metric not in ("connections", "nodes"):
                raise EvolveError(f"the task reports no metric `{o.metric}`", None,
                                  "metrics: " + ", ".join(sorted([*known, "connections", "nodes"])), code="E072")
        self.resume = resume and self._open_resumed()
        if not self.resume:
            prepare_run_folder(self.out, RUN_FILES, overwrite=overwrite or resume)
        with reporting_disk_errors(self.out):
            (self.out / "champions").mkdir(exist_ok=True)
        self._interrupted = False
        self.draw: dict = {}  # what this generation's evaluation drew (minibatch, starting states), for the log
        self._checkpointed = 0  # generations in the last checkpoint written or read
        self._pending_champions: list = []  # (generation, champion) not yet written: the next checkpoint writes them
        self._rules, self._trust_children = None, False  # a WANN run's mutation rules, resolved once (`child_of`)

    def _open_resumed(self) -> bool:
        """True when `out` holds a checkpoint to resume. A folder that a run left before its first
        checkpoint (only the run's own files, or nothing) starts afresh; anything else is an error."""
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--resume {self.out} is a file, not a run folder", code="E115")
        if not self.out.is_dir():
            raise UsageError(f"no run folder at {self.out}", hint="start a new run with --out", code="E115")
        if (self.out / CHECKPOINT).exists():
            return True
        foreign = [e.name for e in self.out.iterdir() if e.name not in RUN_FILES and not e.name.endswith(".tmp")]
        if foreign:
            raise UsageError(f"{self.out} has no checkpoint.json to resume and holds files of no run "
                             f"({', '.join(sorted(foreign)[:3])})", hint="start a new run with --out", code="E115")
        return False  # killed before its first checkpoint: start again from generation 0

    # --- evaluation -----------------------------------------------------------------------
    def evaluate(self, population: list, generation: int):
        # the minibatch / starting states depend on the run's seed and the generation only
        draw = getattr(self.task, "start_generation", None)
        self.draw = draw(self.settings.seed, generation) if draw else {}
        weights = self.settings.weights
        # selection reads only the objectives; the report evaluates the champion for every metric
        metrics = [o.metric for o in self.settings.objectives if o.metric not in ("connections", "nodes")]
        if self.settings.backend == "ray":
            from .ray_backend import evaluate_on_ray

            return evaluate_on_ray(population, self.task, weights, self.settings, metrics)
        return evaluate_population(population, self.task, weights, self.settings.device, metrics)

    # --- mutation -------------------------------------------------------------------------
    def child_of(self, genome, rng: np.random.Generator):
        from .mutations.engine import mutate_genome

        if not isinstance(genome, ir.WannGenome):
            rules = next((m for m in self.spec.of_kind(ir.MutateBlock) if m.target == self.settings.target), None)
            return mutate_genome(genome, rng, rules)
        if self._rules is None:  # the task's activation pool where the rules name none; the same for every parent
            from ..ops.activations import WANN_BY_NAME
            from ..ops.tasks import get_task_spec
            from .mutations.engine import rules_for
            from .mutations.wann import with_activation_pool

            block = next((m for m in self.spec.of_kind(ir.MutateBlock) if m.target == self.settings.target), None)
            rules = rules_for(ir.Spec((genome,)), genome, None if block is None else block.rules)
            self._rules = with_activation_pool(rules, get_task_spec(self.settings.task).activations)
            self._trust_children = all(str(c) in WANN_BY_NAME for r in self._rules for c in (r.choices or ()))
        # WANN operators keep a valid genome valid (tests/evolve/test_wann_mutations.py), and every parent is
        # valid (the checked seed genome, its initial population, children, or a resumed checkpoint's genomes,
        # validated on loading), so the per-child `check` is skipped when the activation pool is known:
        # it was a fifth of a digits generation
        return mutate_genome(genome, rng, self._rules, check_child=not self._trust_children)

    def initial_population(self, rng) -> list:
        s = self.settings
        if isinstance(self.seed_genome, ir.WannGenome) and s.init == "wann":
            return wann_initial_population(self.seed_genome, s.population, rng, s.init_density)
        return [self.seed_genome] + [self.child_of(self.seed_genome, rng) for _ in range(s.population - 1)]

    # --- the loop ---------------------------------------------------------------------------
    def execute(self) -> RunResult:
        with reporting_disk_errors(self.out, lambda: self._checkpointed):
            return self._execute()

    def _execute(self) -> RunResult:
        s = self.settings
        if self.resume:
            state = self._resumed_state()
            self._checkpointed = state["generation"]
            rng = np.random.default_rng()
            rng.bit_generator.state = state["rng"]
            population = [_genome(t, self.out / CHECKPOINT, f"population[{i}]") for i, t in enumerate(state["population"])]
            parent_objs = np.array(state["objectives"], dtype=float) if state.get("objectives") else None
            start, evaluations, log_lines = state["generation"], state["evaluations"], state["log_lines"]
            self.appended = dict(state["appended"])
            truncate_appended(self.out, self.appended, self.out / CHECKPOINT)
            remove_owned(self.out, ())  # temporary files of writes a kill cut short
            for stale in (self.out / "champions").iterdir():  # from a generation redone now
                number = stale.stem[4:] if stale.name.startswith("gen_") else ""
                if stale.name.endswith(".tmp") or (number.isdigit() and int(number) >= start):
                    stale.unlink()
            save_settings(s, self.out / "config.yaml")  # `generations` may have been raised
        else:
            save_settings(s, self.out / "config.yaml")
            for name in APPENDED:
                write_atomic(self.out / name, "")
            rng = np.random.default_rng(s.seed)
            population = self.initial_population(rng)
            parent_objs, start, evaluations, log_lines = None, 0, 0, 0
            self.appended = {name: 0 for name in APPENDED}
            state = {}
        fingerprint = spec_fingerprint(self.spec)
        last, last_population = state.get("last"), None
        checkpointed_at, interval = time.perf_counter(), self.checkpoint_seconds
        bar = progress_bar(s.generations, self.progress, unit="gen", desc="evolve", initial=start)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            for generation in range(start, s.generations):
                t0 = time.perf_counter()
                if s.selection == "wann":
                    population, evaluated, raw, ranking, front, scores = self._wann_generation(population, generation, rng)
                    evaluations += len(evaluated)
                    parent_objs = None
                else:
                    population, parent_objs, evaluated, raw, front, scores, n_eval = self._nsga2_generation(
                        population, parent_objs, generation, rng)
                    evaluations += n_eval
                    ranking = "nsga2"
                champion_index = _champion(raw, s)
                champion = evaluated[champion_index]
                line = {"generation": generation, "evaluations": evaluations, "ranking": ranking,
                        "front_size": front, "failures": len(scores.failures),
                        "objectives": {k: _summary(v) for k, v in raw.items()},
                        "champion": {"id": identity(champion), **{k: _round(v[champion_index]) for k, v in raw.items()}},
                        **({"draw": self.draw} if self.draw else {})}
                self._write_generation(generation, line, champion, scores, evaluated)
                log_lines += 1
                last_population = evaluated
                stop = self.stop_when is not None and bool(self.stop_when(
                    generation, champion, {k: _round(v[champion_index]) for k, v in raw.items()}))
                now = time.perf_counter()
                due = (generation == start or generation + 1 == s.generations or self._interrupted or stop
                       or now - checkpointed_at >= interval)
                self._append("timing.jsonl", [json.dumps({"generation": generation, "seconds": round(now - t0, 4)})])
                if due:
                    self._write_champions()
                    last = {"population": [_text(g) for g in evaluated],
                            "objectives": {k: [_round(x) for x in v] for k, v in raw.items()},
                            "champion": champion_index}
                    save_checkpoint(self.out / CHECKPOINT, {
                        "generation": generation + 1, "population": [_text(g) for g in population],
                        "objectives": parent_objs.tolist() if parent_objs is not None else None,
                        "rng": rng.bit_generator.state, "log_lines": log_lines, "evaluations": evaluations,
                        "last": last, "appended": self.appended, **fingerprint}, kind=RUN_KIND)
                    self._checkpointed = generation + 1
                    checkpointed_at = time.perf_counter()
                    if self.checkpoint_seconds > 0:
                        interval = max(self.checkpoint_seconds, (checkpointed_at - now) / CHECKPOINT_SHARE)
                bar.update(1)
                bar.set_postfix_str(" ".join(f"{k}={_round(v[champion_index])}" for k, v in list(raw.items())[:2]))
                if self._interrupted:
                    bar.close()
                    raise KeyboardInterrupt
                if stop:
                    break
        finally:
            # once interrupted, later Ctrl-Cs must not cut the way out short (exit status 130, not -2)
            signal.signal(signal.SIGINT, signal.SIG_IGN if self._interrupted else previous)
            bar.close()
        return self.finish(last, last_population)

    def _resumed_state(self) -> dict:
        """The checkpoint, validated: its fields, the spec it was started from, and its agreement
        with the settings and the run folder."""
        path, s = self.out / CHECKPOINT, self.settings
        state = load_checkpoint(path, WANN_FIELDS, kind=RUN_KIND)
        check_same_spec(state, self.spec, path)
        saved = load_settings(self.out / "config.yaml")
        if {**saved.to_dict(), "generations": 0} != {**s.to_dict(), "generations": 0}:
            raise UsageError("the settings differ from the run being resumed",
                             hint="resume without changing flags; the run's settings are in config.yaml", code="E117")

        def inconsistent(message):
            return UsageError(f"{path}: {message}", hint="the checkpoint was edited or belongs to another run; "
                              "restore it, or start a new run", code="E113")

        if state["generation"] > s.generations:
            raise inconsistent(f"field `generation` is {state['generation']}, beyond the run's {s.generations} "
                               "generations" if s.generations == saved.generations else
                               f"the run has done {state['generation']} generations; --generations "
                               f"{s.generations} cannot take it back")
        if state["log_lines"] != state["generation"] or state["appended"].get("log.jsonl") != state["log_lines"]:
            raise inconsistent(f"field `log_lines` is {state['log_lines']}, but {state['generation']} generations "
                               f"wrote {state['generation']} log lines")
        if set(state["appended"]) != set(APPENDED):
            raise field_error(path, "appended", f"must count the lines of {', '.join(APPENDED)}")
        if len(state["population"]) != s.population:
            raise inconsistent(f"field `population` holds {len(state['population'])} individuals, "
                               f"the run has {s.population}")
        if state["objectives"] is not None and len(state["objectives"]) != s.population:
            raise inconsistent("field `objectives` does not have one row per individual")
        last = state["last"]
        if (last is None) != (state["generation"] == 0):
            raise field_error(path, "last", "must hold the last generation once one is done, and only then")
        if last is not None:
            for key, check in (("population", text_list(1)), ("objectives", mapping),
                               ("champion", integer(0, len(last.get("population") or ()) - 1))):
                problem = check(last.get(key)) if key in last else "is missing"
                if problem:
                    raise field_error(path, f"last.{key}", problem)
            labels = {o.label for o in s.objectives}
            if set(last["objectives"]) != labels:
                raise field_error(path, "last.objectives", f"must hold {', '.join(sorted(labels))}")
        return state

    def _on_sigint(self, signum, frame):
        if self._interrupted:  # a second Ctrl-C stops at once; the last checkpoint stays valid
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # and a third cannot cut the exit short
            raise KeyboardInterrupt
        self._interrupted = True
        print("\nstopping after this generation's checkpoint (Ctrl-C again to stop now)")

    def _wann_generation(self, population, generation, rng):
        from ..runtime.wann_arrays import connection_count

        s = self.settings
        scores = self.evaluate(population, generation)
        objs, raw = objective_matrix(s, population, scores)
        mean = objs[:, 0]
        best = objs[:, 1] if objs.shape[1] > 1 else mean
        counted = next((raw[o.label] for o in s.objectives if o.metric == "connections"), None)
        conns = counted if counted is not None else np.array([connection_count(g) for g in population], dtype=float)
        rank, used = wann_rank(mean, best, conns, rng, s.prob_moo)
        pair = np.c_[mean, 1 / np.maximum(conns, 1)] if used == "mean+connections" else np.c_[mean, best]
        front = len(pareto_fronts(pair)[0])
        elites, parents = wann_breeding_plan(rank, s.population, rng, s.cull, s.elite, s.tournament)
        children = [population[i] for i in elites] + [self.child_of(population[i], rng) for i in parents]
        return children, population, raw, used, front, scores

    def _nsga2_generation(self, population, parent_objs, generation, rng):
        s = self.settings
        if parent_objs is None:  # the first generation evaluates the initial population itself
            scores = self.evaluate(population, generation)
            objs, raw = objective_matrix(s, population, scores)
            front = len(pareto_fronts(objs)[0])
            return population, objs, population, raw, front, scores, len(population)
        rank = nsga_rank(parent_objs)
        picks = np.minimum(rng.integers(len(population), size=len(population)),
                           rng.integers(len(population), size=len(population)))
        order = np.argsort(rank, kind="stable")
        offspring = [self.child_of(population[order[i]], rng) for i in picks]
        scores = self.evaluate(offspring, generation)
        child_objs, _ = objective_matrix(s, offspring, scores)
        combined = population + offspring
        all_objs = np.vstack([parent_objs, child_objs])
        keep = nsga2_select(all_objs, s.population)
        survivors = [combined[i] for i in keep]
        survivor_objs = all_objs[keep]
        raw = {o.label: (survivor_objs[:, j] if o.direction == "maximize" else -survivor_objs[:, j])
               for j, o in enumerate(s.objectives)}
        front = len(pareto_fronts(survivor_objs)[0])
        return survivors, survivor_objs, survivors, raw, front, scores, len(offspring)

    # --- outputs ----------------------------------------------------------------------------
    def _append(self, name: str, lines: list[str]) -> None:
        append_lines(self.out / name, lines)
        self.appended[name] += len(lines)

    def _write_generation(self, generation, line, champion, scores, evaluated):
        """The generation's log line and failures now (the checkpoint counts them), its champion files
        with the next checkpoint (`_write_champions`)."""
        self._append("log.jsonl", [json.dumps(line, sort_keys=True)])
        self._append("failures.jsonl", [
            json.dumps({"generation": generation, "id": identity(evaluated[i]), "reason": reason})
            for i, reason in sorted(scores.failures.items()) if i < len(evaluated)])
        self._pending_champions.append((generation, champion))

    def _write_champions(self):
        """The champion files of the generations since the last checkpoint, before the checkpoint
        that counts those generations (on resume, files of later generations are removed)."""
        for generation, champion in self._pending_champions:
            stem = self.out / "champions" / f"gen_{generation:04d}"
            write_atomic(stem.with_suffix(".net"), _text(champion))
            write_atomic(stem.with_suffix(".py"), _source(champion))
        self._pending_champions = []

    def finish(self, last: dict | None, population: list | None = None) -> RunResult:
        """Pareto front, champion and report from the last evaluated generation (parsed back only on resume)."""
        if last is None:
            raise EvolveError("the run has no evaluated generation", None, "run at least one generation")
        s = self.settings
        if population is None:
            population = [_genome(t, self.out / CHECKPOINT, f"last.population[{i}]")
                          for i, t in enumerate(last["population"])]
        raw = {k: np.array([np.nan if v is None else v for v in vals], dtype=float) for k, vals in last["objectives"].items()}
        oriented = np.stack([np.nan_to_num(raw[o.label] if o.direction == "maximize" else -raw[o.label], nan=-np.inf)
                             for o in s.objectives], axis=1)
        front_dir = self.out / "pareto"
        if front_dir.exists():
            remove_owned(front_dir, tuple(p.name for p in front_dir.glob("front_*.net")))
        front_dir.mkdir(exist_ok=True)
        front = sorted(pareto_fronts(oriented)[0], key=lambda i: -oriented[i, 0])
        for k, i in enumerate(front):
            write_atomic(front_dir / f"front_{k:03d}.net", genome_text(population[i]))
        champion = population[last["champion"]]
        write_atomic(self.out / "champion.net", genome_text(champion))
        write_atomic(self.out / "champion.py", _source(champion))
        report = None
        if self.make_report:
            from .report import write_report

            report = write_report(self.out, s, champion, self.task, population, oriented, front)
        return RunResult(self.out, champion, {k: _round(v[last["champion"]]) for k, v in raw.items()},
                         self._checkpointed, report)


def resume_settings(spec: ir.Spec, out: Path, flags: dict, target=None, config=None, preset=None) -> Settings:
    """The settings of the run in `out`: its config.yaml, where only `generations` may be changed
    (raised to extend a run, or lowered while not below the generations done). A run killed before
    its first checkpoint (no checkpoint, no readable config.yaml) starts again from the spec and flags."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--resume {out} is a file, not a run folder", code="E115")
    if not out.is_dir():
        raise UsageError(f"no run folder at {out}", hint="start a new run with --out", code="E115")
    try:
        settings = load_settings(out / "config.yaml")
    except UsageError:
        if (out / CHECKPOINT).exists():
            raise
        return resolve_settings(spec, target, config, preset, flags)
    changed = {k: v for k, v in flags.items() if v is not None and k != "generations" and getattr(settings, k) != v}
    if changed:
        raise UsageError(f"--resume keeps the run's settings; these flags differ: {', '.join(changed)}",
                         hint="only --generations may change (to extend the run); or start a new run with --out",
                         code="E117")
    if flags.get("generations") is not None:
        settings = validate({**settings.to_dict(), "generations": flags["generations"]})
    return settings


def evaluate_population(population, task, weights, device, metrics=None):
    """Scores of a population of WANN or transformer genomes (`evaluate` picks the evaluator);
    `metrics` as `evaluate`'s (default: all)."""
    from ..runtime.evaluate import evaluate

    return evaluate(population, task, weights, device, metrics=metrics)


_TEXTS: "OrderedDict[int, tuple[object, str]]" = OrderedDict()  # id(genome) -> (genome, text)


def _text(genome) -> str:
    """A genome's .net text; elites and repeated parents are printed once.

    Cached by identity, not by value: hashing a genome walks all its edges (with WANN's initial
    population, hundreds of disabled ones) and cost as much as printing it. An entry holds its
    genome, so an id cannot be reused while it is cached."""
    hit = _TEXTS.get(id(genome))
    if hit is not None and hit[0] is genome:
        _TEXTS.move_to_end(id(genome))
        return hit[1]
    text = genome_text(genome)
    _TEXTS[id(genome)] = (genome, text)
    if len(_TEXTS) > 8192:
        _TEXTS.popitem(last=False)
    return text


def _source(genome) -> str:
    from ..compiler import emit_source

    return emit_source(genome)


def _champion(raw: dict, settings: Settings) -> int:
    first = settings.objectives[0]
    v = raw[first.label] if first.direction == "maximize" else -raw[first.label]
    v = np.where(np.isfinite(v), v, -np.inf)
    return int(np.argmax(v))


def _round(x) -> float | None:
    x = float(x)
    return round(x, 10) if np.isfinite(x) else None


def _genome(text: str, path: Path, field: str):
    """A genome from a checkpoint's text; a bad one is an error naming the file and the field."""
    try:
        genome = genome_from_text(text)
    except NetevoError as e:
        raise field_error(path, field, f"is not a genome: {e.message}") from None
    except IndexError:
        raise field_error(path, field, "is not a genome: it holds no item") from None
    if not isinstance(genome, (ir.WannGenome, ir.TransformerGenome)):
        raise field_error(path, field, f"is not a genome: it holds a {type(genome).__name__}")
    if isinstance(genome, ir.WannGenome):  # children of resumed genomes are not checked (`child_of`)
        from ..ir.wann import validate_genome

        problems = validate_genome(genome)
        if problems:
            raise field_error(path, field, f"is not a valid genome: {problems[0].message}")
    return genome


RUN_KIND = "genomes"
APPENDED = ("log.jsonl", "timing.jsonl", "failures.jsonl")  # append-only, cut back to the checkpoint on resume
# what a run writes in its folder: --overwrite and a restart remove these, nothing else
RUN_FILES = ("config.yaml", CHECKPOINT, *APPENDED, "champions", "pareto", "plots", "champion.net",
             "champion.py", "report.md")
WANN_FIELDS = {
    "generation": integer(0), "population": text_list(2), "objectives": optional(number_rows),
    "rng": numpy_rng_state, "log_lines": integer(0), "evaluations": integer(0), "last": optional(mapping),
}
