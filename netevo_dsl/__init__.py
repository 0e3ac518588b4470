"""netevo: a genome DSL with a compiler for evolving neural networks.

The front end (parse, load, format, check) is pure Python and never imports
torch; compile_module and emit_source import the compiler lazily.
"""
from __future__ import annotations

from .errors import NetevoError

__version__ = "0.1.0"


def parse(text: str, path: str | None = None):
    """Parse .net text into a Spec (imports are followed when `path` is given)."""
    from .grammar.loader import resolve_imports
    from .grammar.parser import parse as _parse

    spec = _parse(text, path)
    return resolve_imports(spec) if path else spec


def load(path):
    """Parse a .net file and the files it imports."""
    from .grammar.loader import load as _load

    return _load(path)


def format(spec) -> str:  # noqa: A001 - the documented public name
    """Canonical text of a spec (comments of a parsed spec are kept)."""
    from .ir.printer import format_spec

    return format_spec(spec)


def check(spec, overrides: dict | None = None):
    """Run every semantic check; raises NetevoError (ErrorGroup for several). Returns the elaborated graphs."""
    from .passes.check import check as _check

    return _check(spec, overrides)


def infer_shapes(spec, network: str | None = None, overrides: dict | None = None):
    """Elaborate one network into a Graph with every shape inferred."""
    from .passes.elaborate import elaborate

    return elaborate(spec, network, overrides)


def compile_module(spec, name=None, device=None, dtype=None, overrides=None):
    """Build a torch.nn.Module for a network or genome of the spec."""
    from .compiler import compile_module as _compile

    return _compile(spec, name=name, device=device, dtype=dtype, overrides=overrides)


def emit_source(spec, name=None, overrides=None) -> str:
    """One standalone, readable Python file defining the network or genome."""
    from .compiler import emit_source as _emit

    return _emit(spec, name=name, overrides=overrides)


# The rest of the public surface, imported on first use (PEP 562) so that `import netevo_dsl`, `check` and
# `format` stay free of torch: name -> (module, attribute; None for the module itself).
_LAZY = {
    "mutate": ("netevo_dsl.evolve.mutations", "mutate"),  # one rule-driven mutation of a spec
    "mutants": ("netevo_dsl.evolve.mutations", "mutants"),  # n valid, unique mutants
    "evaluate": ("netevo_dsl.runtime.evaluate", "evaluate"),  # population x shared weights x samples, batched
    "make_task": ("netevo_dsl.runtime.tasks", "make_task"),  # a task object from a name or (name, kwargs)
    "NeuronTracker": ("netevo_dsl.runtime.tracker", "NeuronTracker"),  # streaming neuron statistics
    "run_evolution": ("netevo_dsl.evolve", "run_evolution"),  # an evolve block's run, as `netevo evolve`
    "transforms": ("netevo_dsl.evolve.transforms", None),  # permute, widen, deepen, prune_units, merge_units
    "strategies": ("netevo_dsl.testing.strategies", None),  # Hypothesis strategies for your rules
    "evolve": ("netevo_dsl.evolve", None),
    "from_module": ("netevo_dsl.importer", "from_module"),  # an nn.Module as a spec (torch.fx), docs/import.md
    "tune": ("netevo_dsl.evolve.tune", "tune"),  # a WANN champion's individual weights tuned (docs/evolve.md)
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'netevo_dsl' has no attribute '{name}'")
    import importlib

    module, attribute = _LAZY[name]
    value = importlib.import_module(module)
    return value if attribute is None else getattr(value, attribute)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["NetevoError", "parse", "load", "format", "check", "infer_shapes", "compile_module", "emit_source",
           *_LAZY]
