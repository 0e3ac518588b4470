"""DEAP integration: individuals that wrap spec IR, and toolbox operators from a spec's `mutate` rules.

    from deap import base, tools
    toolbox = base.Toolbox()
    register_operators(toolbox, spec, weights=(1.0, -1.0))   # maximise accuracy, minimise params
    pop = toolbox.population(n=16)                            # the parent and 15 unique valid mutants
    for ind in pop:
        ind.fitness.values = evaluate(ind.spec)
    offspring = [toolbox.mutate(toolbox.clone(ind))[0] for ind in pop]
    ...
    pop = tools.selNSGA2(pop + offspring, 16)

An individual's spec is immutable IR: `toolbox.mutate` returns a new individual
(as the 1-tuple DEAP expects) and `clone` copies only the fitness.

No `mate` is registered. Crossover is unsound here: WANN genomes carry no
innovation numbers (NEAT's historical markings), so node `h3` in one genome
and `h3` in another are unrelated and aligning them would wire unrelated
structure together; the WANN protocol itself uses no crossover. Run DEAP's
algorithms with `cxpb=0`.
"""
from __future__ import annotations

import random

from deap import base, creator

from ..ir import nodes as ir
from ..ir.hashing import canonical_hash


def fitness_class(weights: tuple) -> type:
    """A DEAP Fitness subclass with these weights (one per objective; +1 maximise, -1 minimise)."""
    name = "SpecFitness_" + "_".join(("p" if w >= 0 else "m") + str(abs(w)).replace(".", "d") for w in weights)
    if not hasattr(creator, name):
        creator.create(name, base.Fitness, weights=tuple(float(w) for w in weights))
    return getattr(creator, name)


class SpecIndividual:
    """A DEAP individual: an immutable spec, what made it, and a fitness."""

    __slots__ = ("spec", "description", "hash", "fitness")

    def __init__(self, spec: ir.Spec, fitness_cls: type, description: str = "", hash: str | None = None):
        self.spec = spec
        self.description = description
        self.hash = hash or canonical_hash(spec)
        self.fitness = fitness_cls()

    def __deepcopy__(self, memo):
        twin = SpecIndividual(self.spec, type(self.fitness), self.description, self.hash)
        if self.fitness.valid:
            twin.fitness.values = self.fitness.values
        return twin

    def __eq__(self, other):
        return isinstance(other, SpecIndividual) and other.hash == self.hash

    def __hash__(self):
        return hash(self.hash)

    def __repr__(self):
        values = self.fitness.values if self.fitness.valid else "unevaluated"
        return f"SpecIndividual({self.hash[:12]}, {values}, {self.description!r})"


def register_operators(toolbox: base.Toolbox, spec: ir.Spec, *, target: str | None = None, rules=None,
                       weights: tuple = (1.0,), seed: int = 0, validate: str = "source", overrides=None):
    """Register individual, population, mutate, clone and select (NSGA-II) on `toolbox`.

    mutate applies the spec's rules (or `rules`) to an individual's spec; every child passes
    `check`, and with validate="source" its emitted source must also run at the declared shapes
    (a child that does not is replaced by another). population(n) is the parent plus n - 1
    unique valid mutants.
    """
    from deap import tools

    from .mutations.engine import Mutator, mutants, target_item
    from .mutations.validate import validate_source

    fitness = fitness_class(weights)
    name = target_item(spec, target).name
    rng = random.Random(seed)
    engine = Mutator(overrides)

    def individual(s: ir.Spec = spec, description: str = "") -> SpecIndividual:
        return SpecIndividual(s, fitness, description)

    def population(n: int) -> list[SpecIndividual]:
        found = mutants(spec, max(n - 1, 0), rng.randrange(2 ** 31), target=name, rules=rules,
                        validate=validate if validate in ("source", "ir", "check") else "check",
                        overrides=overrides)
        return ([individual()] + [SpecIndividual(m.spec, fitness, m.description, m.hash) for m in found])[:n]

    def mutate(ind: SpecIndividual, attempts: int = 8):
        for _ in range(attempts):
            child, text = engine.mutate(ind.spec, rng, name, rules)
            if validate == "source":
                try:
                    validate_source(child, name, overrides, check_result=engine.last_check)
                except Exception as e:  # noqa: BLE001 - replaced by another child, and recorded
                    mutate.failures.append(f"{text}: {type(e).__name__}: {e}")
                    continue
            return (SpecIndividual(child, fitness, text),)
        raise RuntimeError(f"no valid child of `{name}` in {attempts} attempts; last: {mutate.failures[-1]}")

    mutate.failures = []  # children that passed check but whose emitted source failed

    toolbox.register("individual", individual)
    toolbox.register("population", population)
    toolbox.register("mutate", mutate)
    toolbox.register("clone", lambda ind: ind.__deepcopy__({}))
    toolbox.register("select", tools.selNSGA2)
    return toolbox


__all__ = ["SpecIndividual", "fitness_class", "register_operators"]
