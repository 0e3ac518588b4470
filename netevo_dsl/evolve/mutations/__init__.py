"""Mutations: pure functions from spec IR to new spec IR, driven by a spec's `mutate` rules.

One module per family: `network` (width, kernel, activation, insert/remove a
layer, repeat, skip, heads), `masks` (grow, prune, density), `wann` (the WANN
protocol's four mutations), `transformer` (WANN-GPT genomes). `engine` applies
rules (`mutate`) and collects unique valid mutants (`mutants`); `validate`
decides validity; `analysis` maps graph nodes back to the spec text.
"""
from .base import OPERATORS, Rule
from .engine import DEFAULT_RULES, Mutant, Mutator, mutants, mutate, mutate_genome, parse_rules
from .validate import InvalidMutant, validate_ir, validate_source

__all__ = ["mutate", "mutate_genome", "mutants", "Mutant", "Mutator", "Rule", "OPERATORS", "DEFAULT_RULES",
           "parse_rules", "validate_ir", "validate_source", "InvalidMutant"]
