"""Mutation-rule targets: which graph nodes a target names, and a check that each names one.

Pure Python (`netevo check` runs it without torch). The mutation engine matches targets with
the same `node_matches`, so a target `check` accepts is one the rule can act on.
"""
from __future__ import annotations

import fnmatch
import re

from ..errors import RuleError, did_you_mean

# Rules whose targets are graph nodes of a network (mask rules name masks, skip names statements).
NODE_TARGET_RULES = frozenset({"width", "kernel", "activation", "insert_layer", "remove_layer", "heads"})


def node_matches(name: str, pattern: str) -> bool:
    """`fc1` matches fc1 and its sub-modules (fc1.0, ...); `layer1.*` and `c*` are globs."""
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern or name.startswith(pattern + ".")


def unknown_targets(rule, graph) -> list[RuleError]:
    """E061 for each target of a node rule that matches no node of the elaborated network."""
    if rule.func not in NODE_TARGET_RULES or graph is None:
        return []
    nodes = [n.name for n in graph.nodes]
    errors = []
    for a in rule.args:
        pattern = getattr(a, "id", getattr(a, "value", None))
        if not isinstance(pattern, str):
            continue
        # a dependency group's name is its first node's, with `/i` for a cut part or `:space` inside an op
        node = pattern if any(ch in pattern for ch in "*?[") else re.split(r"[/:]", pattern)[0]
        if any(node_matches(n, node) for n in nodes):
            continue
        top = sorted({n.split(".")[0] for n in nodes})
        errors.append(RuleError(f"`{rule.func}` target `{pattern}` matches no node of `{graph.name}`", a.span,
                                did_you_mean(pattern, nodes + top) or "nodes: " + ", ".join(top[:8])
                                + (", ..." if len(top) > 8 else ""), code="E061"))
    return errors


__all__ = ["node_matches", "unknown_targets", "NODE_TARGET_RULES"]
