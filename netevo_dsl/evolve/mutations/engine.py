"""The mutation engine: apply a spec's `mutate` rules to make children, and collect unique valid mutants.

`mutate(spec, rng)` returns `(child, description)`; the parent is never touched.

* Genomes (WANN and transformer) get exactly one mutation per child, chosen by
  roulette over the rules' `p` (the WANN protocol). Without a `mutate` block a
  WANN genome uses the published roulette: add_node 0.25, add_edge 0.20,
  enable_edge 0.05, change_activation 0.50. A rule that cannot change this
  parent (no disabled edge to enable, say) leaves the roulette, which is the
  same as re-spinning until an applicable rule comes up.
* Networks: each rule fires independently with its `p`; when none fires, one
  is chosen by roulette, so every child differs from its parent.

Every child passes `check`. `mutants(spec, n, seed)` also requires the emitted
source to run at the declared shapes (see `validate`), and returns n children
that differ from the parent and from each other by `canonical_hash`; when the
parent's one-step neighbourhood is used up it continues from earlier mutants.
"""
from __future__ import annotations

import functools
import random
from collections import OrderedDict

import attrs

from ...errors import NetevoError, RuleError, UsageError, flatten
from ...ir import nodes as ir
from ...ir.hashing import canonical_hash
from . import growth, masks, network, transformer, wann  # noqa: F401 - operator registration
from ...passes.rule_targets import NODE_TARGET_RULES
from .base import OPERATORS, Context, Rule, kind_of
from .validate import validate_ir, validate_source

DEFAULT_RULES = {
    "wann": "add_node(p=0.25) add_edge(p=0.2) enable_edge(p=0.05) change_activation(p=0.5)",
    "transformer": "heads(p=0.2) ffn(p=0.2) change_activation(p=0.3) sublayer(p=0.1) layers(p=0.1)",
    "network": "width(p=0.4) kernel(p=0.2) activation(p=0.2) insert_layer(p=0.1) remove_layer(p=0.1)",
}
MAX_CANDIDATES = 24  # candidates tried per rule before it counts as not applicable
_ANALYSES: OrderedDict = OrderedDict()  # (id(spec), network, overrides) -> (spec, NetworkAnalysis); LRU


@attrs.frozen
class Mutant:
    spec: ir.Spec
    description: str
    hash: str
    parent_hash: str
    check_result: object = attrs.field(default=None, eq=False, repr=False)


@functools.lru_cache(maxsize=256)
def parse_rules(text: str) -> tuple[Rule, ...]:
    """Rules written as in a mutate block: `width(fc1, p=0.3, choices={128, 256}) add_node(p=0.25)`."""
    from ...grammar.parser import parse

    spec = parse(f"mutate _ {{\n{text}\n}}\n")
    return tuple(Rule.from_call(c) for c in spec.items[0].rules)


@functools.lru_cache(maxsize=1024)
def _rule(call: ir.Call) -> Rule:
    return Rule.from_call(call)


def target_item(spec: ir.Spec, target: str | None = None):
    """The network or genome to mutate: named, the target of the only mutate block, or the only one."""
    items = spec.networks + spec.genomes
    if target is not None:
        item = spec.find(target, (ir.Network, ir.WannGenome, ir.TransformerGenome))
        if item is None:
            from ...errors import did_you_mean

            raise UsageError(f"no network or genome named `{target}`", None,
                             did_you_mean(target, [i.name for i in items]) or None)
        return item
    blocks = [m for m in spec.items if isinstance(m, ir.MutateBlock)]
    if len(blocks) == 1:
        return target_item(spec, blocks[0].target)
    if len(items) == 1:
        return items[0]
    raise UsageError(f"the spec has {len(items)} networks and genomes", None,
                     "pick one with target=NAME (--target NAME)")


def rules_for(spec: ir.Spec, item, rules=None) -> tuple[Rule, ...]:
    if rules is not None:
        if isinstance(rules, str):
            return parse_rules(rules)
        return tuple(r if isinstance(r, Rule) else _rule(r) for r in rules)
    blocks = [m for m in spec.all_items() if isinstance(m, ir.MutateBlock) and m.target == item.name]
    if blocks:
        return tuple(_rule(c) for b in blocks for c in b.rules)
    return parse_rules(DEFAULT_RULES[kind_of(item)])


def _item_in(spec: ir.Spec, name: str):
    return spec.find(name, (ir.Network, ir.WannGenome, ir.TransformerGenome))


class Mutator:
    """Makes children: caches network analyses across calls (per parent spec) and checks candidates.

    `mutate(spec, rng, target, rules, avoid=None)` -> (child, description); `last_check` holds
    the child's CheckResult, `last_hash` its canonical hash when `avoid` (a set of hashes) was given.
    """

    def __init__(self, overrides=None, weights=None, grads=None, check_children: bool = True):
        self.overrides, self.weights, self.grads = overrides, weights, grads
        self.check_children = check_children  # False: trust operators that keep a valid genome valid (WANN)
        self.last_check = None
        self.checked = self.rejected = 0  # candidates checked, and rejected by check
        self.refusals: list = []

    def analysis_for(self, spec, item):
        """The network's analysis, shared by every call on the same spec object (parents repeat)."""
        key = (id(spec), item.name, repr(sorted((self.overrides or {}).items())))
        hit = _ANALYSES.get(key)
        if hit is not None and hit[0] is spec:
            _ANALYSES.move_to_end(key)
            return hit[1]
        from .analysis import NetworkAnalysis

        a = NetworkAnalysis(spec, item.name, self.overrides)
        _ANALYSES[key] = (spec, a)
        while len(_ANALYSES) > 16:
            _ANALYSES.popitem(last=False)
        return a

    def apply(self, spec, rule: Rule, rng, siblings, avoid=None):
        """The first candidate of `rule` that passes check (and is not in `avoid`), as (child, description)."""
        from ...passes.check import check

        item = _item_in(spec, self._target)
        kind = kind_of(item)
        op = OPERATORS.get((kind, rule.name))
        if op is None:
            raise RuleError(f"`{rule.name}` does not apply to a {kind}", rule.call.span if rule.call else None)
        ctx = Context(spec, item, rule, rng, self.weights, self.grads, self.overrides, siblings)
        if kind == "network":
            ctx._analysis = self.analysis_for(spec, item)
        known = failed = 0
        first_failure = None
        for i, (child, text) in enumerate(op(ctx)):
            if i >= MAX_CANDIDATES:
                break
            h = canonical_hash(child) if avoid is not None else None
            if h is not None and h in avoid:
                known += 1
                continue  # cheaper than checking a child that is already known
            if not self.check_children and kind == "wann":
                self.last_check, self.last_hash = None, h
                return child, text
            self.checked += 1
            try:
                try:
                    result = check(child, self.overrides)
                except NetevoError as e:
                    child = _without_stale_targets(child, e)  # a removed node leaves its rules' targets behind
                    h = canonical_hash(child) if h is not None else None
                    result = check(child, self.overrides)
            except NetevoError as e:
                self.rejected += 1
                failed += 1
                first_failure = first_failure or f"{text}: {e.message}"
                continue
            if not _sizes_positive(result):
                self.rejected += 1
                failed += 1
                first_failure = first_failure or f"{text}: a size below 1"
                continue
            self.last_check, self.last_hash = result, h
            return child, text
        why = list(ctx.refusals)
        if not why and kind == "network" and rule.targets and rule.name in NODE_TARGET_RULES \
                and not ctx.analysis.match(rule.targets, rule.option("op")):
            why.append(("matches no node", None))
        if known:
            why.append((f"its {known} possible change(s) give children already found", None))
        if failed:
            why.append((f"{failed} candidate(s) failed check (first: {first_failure})", None))
        self.refusals.append((rule, why or [("none of its targets and choices makes a change here", None)]))
        return None

    def mutate(self, spec, rng, target, rules, avoid=None):
        item = target_item(spec, target)
        self._target = item.name
        self.last_hash = None
        self.refusals = []  # (rule, [(why, hint)]) for each rule that made no child
        kind = kind_of(item)
        rule_list = [r for r in rules_for(spec, item, rules) if r.p > 0]
        if not rule_list:
            raise RuleError(f"`mutate {item.name}` has no rule with p > 0")
        if kind in ("wann", "transformer"):
            result = self._roulette(spec, rule_list, rng, rule_list, avoid)
        else:
            fired = [r for r in rule_list if rng.random() < r.p]
            child, texts = spec, []
            for i, rule in enumerate(fired):
                step = self.apply(child, rule, rng, tuple(rule_list), avoid if i == len(fired) - 1 else None)
                if step is not None:
                    child, text = step
                    texts.append(text)
            result = (child, "; ".join(texts)) if texts else None
            if result is not None and avoid is not None and self.last_hash is None:
                self.last_hash = canonical_hash(child)
                if self.last_hash in avoid:
                    result = None
            if result is None:
                result = self._roulette(spec, rule_list, rng, rule_list, avoid)
        if result is None:
            raise refusal(f"no rule can change `{item.name}`" + (" into a new child" if avoid else ""), item.span,
                          self.refusals)
        return result

    def _roulette(self, spec, rules, rng, siblings, avoid=None):
        left = list(rules)
        while left:
            spin = rng.random() * sum(r.p for r in left)
            for rule in left:
                spin -= rule.p
                if spin < 0:
                    break
            result = self.apply(spec, rule, rng, tuple(siblings), avoid)
            if result is not None:
                return result
            left.remove(rule)
        return None


def _rule_label(rule: Rule) -> str:
    return f"{rule.name}({', '.join(str(t) for t in rule.targets)})"


def refusal(message: str, span, refusals) -> RuleError:
    """E060 listing each rule tried and why it could not apply (as notes at the rules' lines)."""
    notes, hints, seen = [], [], set()
    for rule, why in refusals:
        if rule in seen:
            continue
        seen.add(rule)
        notes.append((rule.call.span if rule.call is not None else None,
                      f"`{_rule_label(rule)}`: " + "; ".join(w for w, _ in why)))
        hints += [h for _, h in why if h and h not in hints]
    return RuleError(message, span, " ".join(hints) or None, notes)


def _without_stale_targets(spec: ir.Spec, error: NetevoError) -> ir.Spec:
    """The child with rule targets that match no node any more (E061) removed, and rules left without
    targets dropped; re-raises `error` when it holds anything else."""
    errors = flatten(error)
    if any(e.code != "E061" for e in errors):
        raise error
    stale = {id(e.span) for e in errors}
    items = []
    for item in spec.items:
        if isinstance(item, ir.MutateBlock):
            rules = []
            for call in item.rules:
                args = tuple(a for a in call.args if id(a.span) not in stale)
                if args or not call.args:
                    rules.append(call if len(args) == len(call.args) else attrs.evolve(call, args=args))
            item = attrs.evolve(item, rules=tuple(rules))
        items.append(item)
    return attrs.evolve(spec, items=tuple(items))


def _sizes_positive(result) -> bool:
    """Every concrete size of every elaborated node is at least 1 (a shape rule may let 0 through)."""
    for graph in result.graphs.values():
        for node in graph.nodes:
            shapes = node.shape if node.shape and isinstance(node.shape[0], tuple) else (node.shape,)
            for shape in shapes:
                for d in shape:
                    if getattr(d, "is_concrete", False) and d.value < 1:
                        return False
    return True


def _as_rng(rng) -> random.Random:
    """A random.Random from one, from an int seed, or drawn from a numpy Generator (one draw)."""
    if isinstance(rng, random.Random):
        return rng
    if rng is None or isinstance(rng, int):
        return random.Random(rng)
    if hasattr(rng, "integers"):
        return random.Random(int(rng.integers(2 ** 63)))
    raise UsageError("rng is a random.Random, a numpy Generator or an integer seed")


def mutate(spec: ir.Spec, rng=None, target: str | None = None, rules=None, *, weights=None, grads=None,
           overrides=None) -> tuple[ir.Spec, str]:
    """One child of `spec` and what changed. `rules`: Rules, Calls or rule text; default the spec's own.

    `weights` / `grads` map node names (or state-dict keys) to arrays, for magnitude / gradient mask scores.
    """
    engine = Mutator(overrides, weights, grads)
    return engine.mutate(spec, _as_rng(rng), target, rules)


def mutate_genome(genome, rng=None, rules=None, *, check_child: bool = True):
    """One child of a WANN or transformer genome (for the evolution loop): exactly one mutation.

    rules: the genome's `MutateBlock`, rules (Rules, Calls or text), or None for the defaults
    (for WANN genomes, the published roulette).
    check_child: False skips `check` on a WANN child; only for a parent known to be valid, since the
    WANN operators keep validity (acyclic, fresh names, known activations; tested under Hypothesis).
    """
    if isinstance(rules, ir.MutateBlock):
        rules = rules.rules
    child, _ = Mutator(check_children=check_child).mutate(ir.Spec((genome,)), _as_rng(rng), genome.name, rules)
    return child.items[0]


def mutants(spec: ir.Spec, n: int, seed: int = 0, *, target: str | None = None, rules=None,
            validate: str = "source", device: str = "cpu", max_attempts: int | None = None,
            overrides=None, stats: dict | None = None, strict: bool = True,
            on_mutant=None, on_invalid=None) -> list[Mutant]:
    """n valid mutants, unique by canonical hash and different from `spec`.

    validate: "source" (check + emitted source runs at the declared shapes), "ir"
    (check + meta-device module) or "check". Children that fail validation are
    dropped and counted in `stats` (attempts, invalid, duplicates, failures; checked and
    rejected_by_check count the operators' candidates).
    When fewer than n distinct valid mutants can be found: RuleError if
    `strict`, else the ones found. `on_mutant(mutant)` is called as each is found and
    `on_invalid(description, hash, reason)` for each child that failed validation, so a
    caller can stream them.
    """
    if n < 0:
        raise UsageError("the number of mutants cannot be negative")
    if validate not in ("source", "ir", "check"):
        raise UsageError(f"validate is source, ir or check, not {validate!r}")
    rng = random.Random(seed)
    engine = Mutator(overrides)
    item = target_item(spec, target)
    root = canonical_hash(spec)
    seen = {root}
    # Texts can differ and mean the same network (`out=128` where the parent wrote `out=hidden`, with
    # hidden = 128): networks are also compared elaborated, with every param resolved.
    networks = [_elaborated(spec, item.name, overrides)] if isinstance(item, ir.Network) else []
    found: list[Mutant] = []
    counts = stats if stats is not None else {}
    counts.update(attempts=0, invalid=0, duplicates=0, failures=[])
    budget = max_attempts if max_attempts is not None else 10 * n + 20
    dead: set[str] = set()  # bases with no new child left (seen only grows, so they stay dead)
    while len(found) < n and counts["attempts"] < budget:
        counts["attempts"] += 1
        # Children of the parent while it has new ones; then children of earlier mutants (a random walk).
        alive = [m for m in found if m.hash not in dead]
        if root not in dead:
            base = None
        elif alive:
            base = rng.choice(alive)
        else:
            break
        base_spec = spec if base is None else base.spec
        try:
            child, text = engine.mutate(base_spec, rng, item.name, rules, avoid=seen)
        except RuleError as e:
            dead.add(root if base is None else base.hash)
            if base is None:
                counts["refusal"] = e  # why the parent itself has no (new) child
            continue
        h = engine.last_hash or canonical_hash(child)
        if h in seen:
            counts["duplicates"] += 1
            continue
        seen.add(h)
        if networks:
            graph = engine.last_check.graphs.get(item.name) if engine.last_check else None
            if graph is None:
                graph = _elaborated(child, item.name, overrides)
            if graph in networks:
                counts["duplicates"] += 1
                continue
            networks.append(graph)
        try:
            if validate == "source":
                validate_source(child, item.name, overrides, device=device, check_result=engine.last_check)
            elif validate == "ir":
                validate_ir(child, item.name, overrides, check_result=engine.last_check)
        except Exception as e:  # noqa: BLE001 - any failure of the emitted code makes the mutant invalid; recorded
            counts["invalid"] += 1
            counts["failures"].append(f"{text}: {type(e).__name__}: {e}")
            if on_invalid is not None:
                on_invalid(text if base is None else f"{base.description}; then {text}", h,
                           f"{type(e).__name__}: {e}")
            continue
        if base is not None:
            text = f"{base.description}; then {text}"
        found.append(Mutant(child, text, h, root if base is None else base.hash, engine.last_check))
        if on_mutant is not None:
            on_mutant(found[-1])
    counts.update(checked=engine.checked, rejected_by_check=engine.rejected)
    if len(found) < n and strict:
        why = counts.get("refusal")
        raise RuleError(f"found {len(found)} distinct valid mutants of `{item.name}` in {counts['attempts']} "
                        f"attempts, {n} asked for", None,
                        (why.hint + " " if why is not None and why.hint else "")
                        + "give the rules more choices or ask for fewer mutants", why.notes if why else ())
    return found


def _elaborated(spec: ir.Spec, name: str, overrides):
    from ...passes.check import check

    return check(spec, overrides).graphs[name]


__all__ = ["mutate", "mutate_genome", "mutants", "Mutant", "Mutator", "parse_rules", "rules_for", "target_item",
           "DEFAULT_RULES"]
