"""`netevo evolve` for a network: a multi-objective architecture search with trained candidates.

Each generation trains `population` new candidates (children from the spec's `mutate` rules, starting
from their parent's trained weights when `inherit` is on), scores them on the validation split, selects
(nsga2, aging or random), updates the Pareto archive (every candidate evaluated so far that no other
dominates), writes the log line and the archive as .net + weights, and checkpoints. The test split is
read once, after the last generation, for the final front.

Determinism: every random choice comes from one numpy Generator whose state is checkpointed; a
candidate's initialisation and minibatch order come from a seed drawn from it; weights go to the run
folder before the checkpoint names them. So a run killed at any instant and resumed writes the same
log and the same front as an uninterrupted one (`latency`, when it is an objective, is measured and
therefore not reproducible).
"""
from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import attrs
import numpy as np

from ..errors import EvolveError, UsageError
from ..ir import nodes as ir
from ..runtime.progress import progress_bar
from .checkpoint import (CHECKPOINT, check_same_spec, load_checkpoint, prepare_run_folder, remove_owned,
                         reporting_disk_errors, save_checkpoint, spec_fingerprint, truncate_appended, write_atomic)
from .network_selection import aging_parent, hypervolume_2d, nsga2_parents, pareto_front
from .network_settings import NetworkSettings, load_network_settings, save_network_settings
from .selection import nsga2_select

GROWTH_RULES = ("prune_dead", "merge_duplicates", "widen_saturated")  # as evolve/growth_rules.py (torch-free here)


def _is_growth(call: ir.Call) -> bool:
    """Rules that need a trained candidate and data: the tracker's advice, and gradient (RigL) mask growth."""
    score = next((k.value for k in call.kwargs if k.name == "score"), None)
    return call.func in GROWTH_RULES or (call.func == "grow" and getattr(score, "value", None) == "gradient")
PARAMS_REF_FACTOR = 4  # hypervolume reference point: 4x the spec network's parameter count
OWNED = ("checkpoint.json", "config.yaml", "log.jsonl", "timing.jsonl", "test.json", "report.md", "front.png",
         "hypervolume.png", "weights", "generations", "front")
APPENDED = ("log.jsonl", "timing.jsonl")
ORIENT = {"accuracy": 1.0, "loss": -1.0, "params": -1.0, "flops": -1.0, "latency": -1.0, "density": -1.0}


@attrs.frozen
class NetworkRunResult:
    out_dir: Path
    front: list  # records of the final Pareto archive, best validation accuracy first
    test: list  # [{"id", "test_accuracy", "test_loss"}] in the order of `front`
    report: Path | None


def spec_text(spec: ir.Spec) -> str:
    from ..ir.printer import format_spec

    return format_spec(spec)


def spec_from_text(text: str) -> ir.Spec:
    from ..grammar.parser import parse

    return parse(text)


class NetworkEvolution:
    """One network search. `execute()` runs (or resumes) it to the end, evaluates the front on the
    test split and writes the report."""

    def __init__(self, spec: ir.Spec, settings: NetworkSettings, out_dir: Path, *, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, report: bool = True, final_test: bool = True):
        self.spec, self.settings, self.out = spec, settings, Path(out_dir)
        self.progress, self.make_report, self.final_test = progress, report, final_test
        self.network = settings.target
        if spec.find(self.network, (ir.Network,)) is None:
            raise EvolveError(f"no network named `{self.network}` to evolve", None)
        if resume:
            if not (self.out / CHECKPOINT).exists():
                raise UsageError(f"{self.out} has no checkpoint.json to resume", hint="start a new run with --out")
        else:
            prepare_run_folder(self.out, OWNED, overwrite=overwrite)
        self.resume = resume
        for sub in ("weights", "generations", "front"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        self.seed_spec = self._strip_evolve(spec)
        self.rules, self.growth = self._rules()
        self._data = None
        self._interrupted = False
        self.params_ref = PARAMS_REF_FACTOR * self._measure(self.seed_spec)["params"]

    # --- inputs ---------------------------------------------------------------------------------
    @staticmethod
    def _strip_evolve(spec: ir.Spec) -> ir.Spec:
        """The spec without its evolve blocks: candidates carry their network, params, blocks and rules."""
        return attrs.evolve(spec, items=tuple(i for i in spec.items if not isinstance(i, ir.EvolveBlock)))

    def _rules(self):
        blocks = [m for m in self.spec.of_kind(ir.MutateBlock) if m.target == self.network]
        calls = [c for b in blocks for c in b.rules]
        growth = [c for c in calls if _is_growth(c)]
        plain = [c for c in calls if not _is_growth(c)]
        if not calls:
            return None, growth  # the engine's default network rules
        if not plain:
            from .mutations.engine import DEFAULT_RULES

            return DEFAULT_RULES["network"], growth
        return plain, growth

    @property
    def data(self):
        if self._data is None:
            from ..runtime.datasets import load_training_data
            from ..runtime.train_networks import network_graph

            graph = network_graph(self.seed_spec, self.network)
            shape = tuple(int(d.value) for d in graph.inputs[0].shape[1:])
            self._data = load_training_data(self.settings.task, dict(self.settings.task_params), shape,
                                            seed=self.settings.seed)
        return self._data

    # --- measures and training -------------------------------------------------------------------
    def _measure(self, spec: ir.Spec) -> dict:
        from ..passes import measures
        from ..runtime.train_networks import network_graph

        graph = network_graph(spec, self.network)
        out = {"params": float(measures.param_count(graph))}
        if "flops" in self.settings.metrics:
            out["flops"] = float(measures.flops(graph))
        if "density" in self.settings.metrics:
            out["density"] = float(measures.density(graph))
        return out

    def _latency(self, spec, state) -> float:
        from ..runtime.measures import latency
        from ..runtime.train_networks import Candidate, build_model

        model = build_model(Candidate(spec, self.network, state=state)).eval()
        return float(latency(model, (self.data.x_val[:1],)))

    def train(self, candidates: list) -> list:
        cfg = self.settings.train_config()
        if self.settings.backend == "ray":
            from .ray_backend import train_on_ray

            return train_on_ray(candidates, self.data, cfg, self.settings)
        from ..runtime.train_networks import train_candidates

        return train_candidates(candidates, self.data, cfg, batched=self.settings.batched)

    # --- children ---------------------------------------------------------------------------------
    def _mutate(self, spec: ir.Spec, rng, steps: int = 1) -> tuple[ir.Spec, str]:
        from .mutations.engine import mutate

        texts = []
        for _ in range(steps):
            spec, text = mutate(spec, rng, self.network, self.rules)
            texts.append(text)
        return spec, "; ".join(texts)

    def _child(self, parent: dict, rng) -> dict:
        """A child of a trained parent: a growth rule (tracker advice) or a mutation, with inherited weights."""
        from ..runtime.weights_io import load_weights

        parent_spec = spec_from_text(parent["text"])
        seed = int(rng.integers(2 ** 31))
        state, opt_state = load_weights(self.out / parent["weights"]) if self.settings.inherit or self.growth \
            else (None, None)
        weights = [_p(c) for c in self.growth]
        if self.growth and rng.random() < sum(weights):  # a growth rule fires; which one: roulette over p
            rule = self.growth[int(np.searchsorted(np.cumsum(weights), rng.random() * sum(weights), side="right"))
                               if sum(weights) > 0 else 0]
            from .growth_rules import apply_growth_rule

            args = {k.name: _kw(k.value) for k in rule.kwargs if k.name != "p"}
            args["targets"] = tuple(_kw(a) for a in rule.args)
            grown = apply_growth_rule(rule.func, args, parent_spec, self.network, state, opt_state, self.data,
                                      seed=seed)
            if grown is not None:
                child_spec, inh = grown
                return {"spec": child_spec, "state": inh.state, "opt_state": inh.opt_state, "seed": seed,
                        "parent": parent["id"], "how": f"{rule.func} ({inh.how})"}
        child_spec, text = self._mutate(parent_spec, rng)
        if not self.settings.inherit:
            return {"spec": child_spec, "state": None, "opt_state": None, "seed": seed, "parent": parent["id"],
                    "how": text}
        from .inherit import inherit

        inh = inherit(parent_spec, state, opt_state, child_spec, self.network, seed=seed)
        return {"spec": child_spec, "state": inh.state, "opt_state": inh.opt_state, "seed": seed,
                "parent": parent["id"], "how": f"{text} ({inh.how})"}

    def _walk(self, rng) -> dict:
        """Random search's candidate: `walk` rule applications from the spec's network, trained from scratch."""
        spec, text = self._mutate(self.seed_spec, rng, self.settings.walk)
        return {"spec": spec, "state": None, "opt_state": None, "seed": int(rng.integers(2 ** 31)), "parent": None,
                "how": text}

    def _initial(self, rng) -> list[dict]:
        seed = {"spec": self.seed_spec, "state": None, "opt_state": None, "seed": int(rng.integers(2 ** 31)),
                "parent": None, "how": "the spec's network"}
        return [seed] + [self._walk(rng) for _ in range(self.settings.population - 1)]

    # --- one batch of candidates --------------------------------------------------------------------
    def evaluate(self, drafts: list[dict], generation: int, counter: int) -> list[dict]:
        """Train the drafts together, measure them, save their weights; returns their records."""
        from ..runtime.train_networks import Candidate
        from ..runtime.weights_io import save_weights

        cands = [Candidate(d["spec"], self.network, state=d["state"], opt_state=d["opt_state"], seed=d["seed"])
                 for d in drafts]
        trained = self.train(cands)
        records = []
        for k, (d, t) in enumerate(zip(drafts, trained)):
            cid = counter + k
            path = Path("weights") / f"c{cid:06d}.pt"
            save_weights(self.out / path, t.state, t.opt_state)
            metrics = {"accuracy": _round(t.val_accuracy), "loss": _round(t.val_loss), **self._measure(d["spec"])}
            if "latency" in self.settings.metrics:
                metrics["latency"] = self._latency(d["spec"], t.state)
            records.append({"id": cid, "text": spec_text(d["spec"]), "parent": d["parent"], "how": d["how"],
                            "born": generation, "weights": str(path), "metrics": metrics, "steps": t.steps})
        return records

    def objectives(self, records: list[dict]) -> np.ndarray:
        cols = []
        for _, m in self.settings.objectives:
            v = np.array([np.nan if r["metrics"].get(m) is None else r["metrics"][m] for r in records], dtype=float)
            v = ORIENT[m] * v
            cols.append(np.where(np.isfinite(v), v, -np.inf))
        return np.stack(cols, axis=1) if records else np.zeros((0, len(cols)))

    # --- the loop -------------------------------------------------------------------------------------
    def execute(self) -> NetworkRunResult:
        with reporting_disk_errors(self.out):
            return self._execute()

    def _execute(self) -> NetworkRunResult:
        s = self.settings
        fingerprint = spec_fingerprint(self.spec)
        if self.resume:
            state = load_checkpoint(self.out / CHECKPOINT, kind="network")
            check_same_spec(state, self.spec, self.out / CHECKPOINT)
            saved = load_network_settings(self.out / "config.yaml")
            if saved.to_dict() != s.to_dict():
                raise UsageError("the settings differ from the run being resumed",
                                 hint="resume without changing flags; the run's settings are in config.yaml")
            rng = np.random.default_rng()
            rng.bit_generator.state = state["rng"]
            population, archive = state["population"], state["archive"]
            start, counter, log_lines = state["generation"], state["counter"], state["log_lines"]
            trained_steps = state["trained_steps"]
            truncate_appended(self.out, {name: log_lines for name in APPENDED}, self.out / CHECKPOINT)
            remove_owned(self.out, ())  # temporary files of writes a kill cut short
        else:
            save_network_settings(s, self.out / "config.yaml")
            for name in APPENDED:
                write_atomic(self.out / name, "")
            rng = np.random.default_rng(s.seed)
            population, archive, start, counter, log_lines, trained_steps = [], [], 0, 0, 0, 0
        bar = progress_bar(s.generations, self.progress, unit="gen", desc=f"evolve {self.network}", initial=start)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            for generation in range(start, s.generations):
                t0 = time.perf_counter()
                population, new = self._generation(population, generation, rng, counter)
                counter += len(new)
                trained_steps += sum(r["steps"] for r in new)
                archive = self._archive(archive + new)
                line = self._log_line(generation, counter, trained_steps, population, new, archive)
                self._write_generation(generation, line, archive)
                log_lines += 1
                save_checkpoint(self.out / CHECKPOINT, {
                    "generation": generation + 1, "population": population, "archive": archive,
                    "rng": rng.bit_generator.state, "log_lines": log_lines, "counter": counter,
                    "trained_steps": trained_steps, **fingerprint}, kind="network")
                self._collect_weights(population, archive)
                with open(self.out / "timing.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps({"generation": generation, "seconds": round(time.perf_counter() - t0, 4)}) + "\n")
                bar.update(1)
                bar.set_postfix_str(f"best acc={line['best_accuracy']:.4f} front={len(archive)}")
                if self._interrupted:
                    bar.close()
                    raise KeyboardInterrupt
        finally:
            signal.signal(signal.SIGINT, previous)
            bar.close()
        return self.finish(archive)

    def _on_sigint(self, signum, frame):
        if self._interrupted:
            raise KeyboardInterrupt
        self._interrupted = True
        print("\nstopping after this generation's checkpoint (Ctrl-C again to stop now)")

    def _generation(self, population: list, generation: int, rng, counter: int) -> tuple[list, list]:
        """(the population after selection, the records trained this generation)."""
        s = self.settings
        if generation == 0:
            new = self.evaluate(self._initial(rng), generation, counter)
            return new, new
        if s.selection == "random":
            new = self.evaluate([self._walk(rng) for _ in range(s.population)], generation, counter)
            return new, new
        if s.selection == "nsga2":
            parents = nsga2_parents(self.objectives(population), s.population, rng)
            new = self.evaluate([self._child(population[i], rng) for i in parents], generation, counter)
            combined = population + new
            keep = nsga2_select(self.objectives(combined), s.population)
            return [combined[i] for i in sorted(keep)], new
        # aging: two half batches (think of population/2 workers); each child's parent is the best of a
        # sample by the first objective; children join at the young end, the same number of oldest die.
        new = []
        for half in (s.population // 2, s.population - s.population // 2):
            fitness = self.objectives(population)[:, 0]
            drafts = [self._child(population[aging_parent(fitness, s.sample, rng)], rng) for _ in range(half)]
            batch = self.evaluate(drafts, generation, counter + len(new))
            new += batch
            population = (population + batch)[len(batch):]
        return population, new

    def _archive(self, records: list[dict]) -> list[dict]:
        """Records no other record dominates; equal objective vectors keep the earliest id."""
        front = pareto_front(self.objectives(records))
        seen, out = set(), []
        objs = self.objectives(records)
        for i in sorted(front, key=lambda i: records[i]["id"]):
            key = tuple(objs[i])
            if key not in seen:
                seen.add(key)
                out.append(records[i])
        return sorted(out, key=lambda r: (-(r["metrics"]["accuracy"] or 0.0), r["metrics"]["params"], r["id"]))

    def _log_line(self, generation, counter, trained_steps, population, new, archive) -> dict:
        acc = [r["metrics"]["accuracy"] for r in archive]
        par = [r["metrics"]["params"] for r in archive]
        best = archive[0]
        cfg = self.settings.train_config()
        from ..runtime.train_networks import steps_per_epoch

        per_epoch = steps_per_epoch(len(self.data.y_train), cfg.batch_size)
        line = {"generation": generation, "trained": counter, "trained_epochs": round(trained_steps / per_epoch, 6),
                "best_accuracy": best["metrics"]["accuracy"],
                "hypervolume": round(hypervolume_2d(acc, par, self.params_ref), 10),
                "front": [{"id": r["id"], **{m: r["metrics"].get(m) for m in ("accuracy", "params")}} for r in archive],
                "population": [r["id"] for r in population],
                "new": [{"id": r["id"], "parent": r["parent"], "how": r["how"],
                         **{m: v for m, v in r["metrics"].items() if m != "latency"}} for r in new]}
        return line

    def _write_generation(self, generation: int, line: dict, archive: list) -> None:
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(line, sort_keys=True) + "\n")
        folder = self.out / "generations" / f"gen_{generation:04d}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for k, r in enumerate(archive):
            write_atomic(folder / f"front_{k:03d}.net", r["text"])
            shutil.copyfile(self.out / r["weights"], folder / f"front_{k:03d}.pt")

    def _collect_weights(self, population: list, archive: list) -> None:
        """Delete weight files no checkpointed record names (the checkpoint is already written)."""
        keep = {Path(r["weights"]).name for r in population + archive}
        for f in (self.out / "weights").glob("c*.pt"):
            if f.name not in keep:
                f.unlink()

    # --- the end ----------------------------------------------------------------------------------------
    def finish(self, archive: list) -> NetworkRunResult:
        if not archive:
            raise EvolveError("the run has no evaluated generation", None, "run at least one generation")
        from ..compiler import emit_source
        from ..runtime.train_networks import Candidate, score_candidates
        from ..runtime.weights_io import load_weights

        front_dir = self.out / "front"
        shutil.rmtree(front_dir, ignore_errors=True)
        front_dir.mkdir()
        cands = []
        for k, r in enumerate(archive):
            spec = spec_from_text(r["text"])
            write_atomic(front_dir / f"champion_{k:03d}.net", r["text"])
            write_atomic(front_dir / f"champion_{k:03d}.py", emit_source(spec, self.network))
            shutil.copyfile(self.out / r["weights"], front_dir / f"champion_{k:03d}.pt")
            cands.append(Candidate(spec, self.network, state=load_weights(self.out / r["weights"])[0]))
        test = []
        if self.final_test:
            self.data.unlock_test()  # the only place the test split is read
            x, y = self.data.test_split()
            for r, (acc, loss) in zip(archive, score_candidates(cands, x, y)):
                test.append({"id": r["id"], "test_accuracy": _round(acc), "test_loss": _round(loss)})
            write_atomic(self.out / "test.json", json.dumps({"front": test}, indent=1, sort_keys=True) + "\n")
        report = None
        if self.make_report:
            from .network_report import write_network_report

            s = self.settings
            random_run = self.out.parent / f"{s.target}-random-seed{s.seed}"  # the CLI's folder for `--selection random`
            report = write_network_report(self.out, s, archive, test, self.params_ref,
                                          random_run if s.selection != "random" and random_run != self.out else None)
        return NetworkRunResult(self.out, archive, test, report)


def _p(call: ir.Call) -> float:
    for k in call.kwargs:
        if k.name == "p":
            return float(k.value.value)
    return 1.0


def _kw(e):
    from .mutations.base import literal

    return literal(e)


def _round(x) -> float | None:
    x = float(x)
    return round(x, 10) if np.isfinite(x) else None
