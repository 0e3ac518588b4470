"""Compile a WANN genome to a torch module, or emit it as a standalone Python file.

Both follow the semantics in `netevo_dsl.ir.wann`: the input `bias` is 1.0,
a node is activation(w * sum of its enabled sources), and the shared weight w
gets a leading dimension so several weights run at once: ``forward(x, w)`` maps
observations [B, n_obs] and weights [W] to outputs [W, B, n_outputs].

Edges with their own weight (``edge a -> b w=0.3``) scale their source in the gather instead:
a node is activation(sum of w_e * source), w_e the edge's weight or the shared w. The same path
takes a tensor of weights for every enabled edge (`edge_keys` order), differentiably and N
vectors at once: ``forward(x, edge_weights=[N, E])`` -> [N, B, n_outputs], with x [B, n_obs]
shared by all N or [N, B, n_obs] one batch each (the weight tuner's gradient and ES steps).
"""
from __future__ import annotations

import keyword

import torch
from torch import nn

from ..errors import CompileError
from ..ir import nodes as ir
from ..ir.wann import (BIAS, IDENTIFIER, activation_of, has_edge_weights, incoming, incoming_weights,
                       observation_inputs, output_names, require_valid, shared_weights, topological_levels)
from ..ops.activations import WANN_BY_NAME, torch_fn


class CompiledWann(nn.Module):
    """Evaluates the genome level by level; within a level, one gather and one scatter-add
    compute every node's sum (no dense adjacency: a 0 * inf would turn into NaN)."""

    def __init__(self, genome: ir.WannGenome, device=None, dtype=None):
        super().__init__()
        require_valid(genome)
        self.genome_name = genome.name
        self.input_names = tuple(observation_inputs(genome))
        self.output_names = tuple(output_names(genome))
        self.default_weights = shared_weights(genome)
        self.dtype = dtype
        slot = {name: i for i, name in enumerate(self.input_names)}
        slot[BIAS] = len(self.input_names)  # present even when the genome has no bias input
        sources, activation = incoming(genome), activation_of(genome)
        own = incoming_weights(genome)
        self.has_edge_weights = has_edge_weights(genome)
        self.edge_keys: list[tuple[str, str]] = []  # every enabled edge, in the order of `edge_weights`
        own_weights: list[float] = []  # the edges' own weights, NaN where the shared w applies
        self.edge_ranges = []  # per level: its edges' (start, stop) in edge_keys
        self.levels = []  # per level: activation groups as (name, positions in the level)
        for number, level in enumerate(topological_levels(genome)):
            edges = [(slot[src], k) for k, name in enumerate(level) for src in sources[name]]
            start = len(self.edge_keys)
            self.edge_keys += [(src, name) for name in level for src in sources[name]]
            own_weights += [float("nan") if v is None else v for name in level for v in own[name]]
            self.edge_ranges.append((start, len(self.edge_keys)))
            self.register_buffer(f"src_{number}", torch.tensor([s for s, _ in edges], dtype=torch.long, device=device))
            self.register_buffer(f"dst_{number}", torch.tensor([d for _, d in edges], dtype=torch.long, device=device))
            groups: dict[str, list[int]] = {}
            for k, name in enumerate(level):
                groups.setdefault(activation[name], []).append(k)
            for act, positions in groups.items():
                self.register_buffer(f"group_{number}_{act}", torch.tensor(positions, dtype=torch.long, device=device))
            self.levels.append((len(level), list(groups)))
            base = len(slot)
            for k, name in enumerate(level):
                slot[name] = base + k
        self.register_buffer("outputs", torch.tensor([slot[name] for name in self.output_names], dtype=torch.long,
                                                     device=device))
        self.register_buffer("own_weights", torch.tensor(own_weights, dtype=torch.float64, device=device))

    def edge_weights_at(self, w: float) -> torch.Tensor:
        """[E] float64: every enabled edge's weight when the shared weight is `w` (own weights kept)."""
        return torch.where(torch.isnan(self.own_weights), torch.full_like(self.own_weights, float(w)),
                           self.own_weights)

    def forward(self, x: torch.Tensor, w=None, edge_weights=None) -> torch.Tensor:
        """x: [B, n_obs]; w: shared weights [W] (default: the genome's) -> [W, B, n_outputs].

        edge_weights: [N, E] (or [E]) weights of every enabled edge, in `edge_keys` order; then w is
        not used, x may be [N, B, n_obs], and the result is [N, B, n_outputs], differentiable."""
        if edge_weights is not None or self.has_edge_weights:
            return self._weighted(x, w, edge_weights)
        if self.dtype is not None:
            x = x.to(self.dtype)
        w = torch.as_tensor(self.default_weights if w is None else w, dtype=x.dtype, device=x.device).reshape(-1)
        n_weights, n_samples = len(w), x.shape[0]
        values = torch.cat([x, x.new_ones(n_samples, 1)], 1).expand(n_weights, n_samples, -1)
        scale = w.view(-1, 1, 1)
        for number, (size, activations) in enumerate(self.levels):
            src, dst = getattr(self, f"src_{number}"), getattr(self, f"dst_{number}")
            total = values.new_zeros(n_weights, n_samples, size).index_add_(2, dst, values.index_select(2, src))
            pre = scale * total
            level = torch.empty_like(pre)
            for act in activations:
                positions = getattr(self, f"group_{number}_{act}")
                level[..., positions] = torch_fn(act)(pre.index_select(2, positions))
            values = torch.cat([values, level], 2)
        return values.index_select(2, self.outputs)

    def _weighted(self, x: torch.Tensor, w, edge_weights) -> torch.Tensor:
        """The per-edge path: each gathered source is scaled by its edge's weight before the sum."""
        if self.dtype is not None:
            x = x.to(self.dtype)
        if edge_weights is None:  # the genome's own weights, the shared w elsewhere: one row per w
            w = torch.as_tensor(self.default_weights if w is None else w, dtype=x.dtype, device=x.device)
            own = self.own_weights.to(x.dtype)
            scale = torch.where(torch.isnan(own), w.reshape(-1, 1), own)  # [W, E]
        else:
            scale = torch.as_tensor(edge_weights, dtype=x.dtype, device=x.device)
            scale = scale.reshape(1, -1) if scale.dim() == 1 else scale
        if scale.shape[-1] != len(self.edge_keys):
            raise ValueError(f"edge_weights has {scale.shape[-1]} weights; the genome has {len(self.edge_keys)} "
                             "enabled edges")
        n = scale.shape[0]
        if x.dim() == 2:
            x = x.expand(n, *x.shape)
        values = torch.cat([x, x.new_ones(*x.shape[:2], 1)], 2)
        for number, (size, activations) in enumerate(self.levels):
            src, dst = getattr(self, f"src_{number}"), getattr(self, f"dst_{number}")
            start, stop = self.edge_ranges[number]
            terms = values.index_select(2, src) * scale[:, None, start:stop]
            pre = values.new_zeros(n, x.shape[1], size).index_add(2, dst, terms)
            level = torch.empty_like(pre)
            for act in activations:
                positions = getattr(self, f"group_{number}_{act}")
                level[..., positions] = torch_fn(act)(pre.index_select(2, positions))
            values = torch.cat([values, level], 2)
        return values.index_select(2, self.outputs)


def compile_wann(genome: ir.WannGenome, device=None, dtype=None) -> CompiledWann:
    return CompiledWann(genome, device=device, dtype=dtype)


# --- source emission --------------------------------------------------------------------

_FIXED_NAMES = {"torch", "math", "nn", "x", "w", "zero", "self", "INPUTS", "OUTPUTS", "WEIGHTS"}
_LINE = 100


def emit_wann_source(genome: ir.WannGenome) -> str:
    """A standalone, readable Python file (imports only torch and math) defining the genome
    as an nn.Module. Identifiers come only from validated genome names; numbers are literals."""
    require_valid(genome)
    if not IDENTIFIER.match(genome.name) or keyword.iskeyword(genome.name):
        raise CompileError(f"genome name `{genome.name}` is not a Python identifier", genome.span)
    class_name = "".join(part[:1].upper() + part[1:] for part in genome.name.split("_") if part) or "Genome"
    if not class_name[0].isalpha():
        class_name = "Genome" + class_name
    activation = activation_of(genome)
    used = sorted(set(activation.values()))
    variable = _variable_names(genome, reserved=_FIXED_NAMES | set(used) | {class_name})
    sources = incoming(genome)
    observed = observation_inputs(genome)
    lines = [
        f'"""WANN genome `{genome.name}`, emitted by netevo.',
        "",
        *(["A connection carries its own weight where one is written, else the shared weight w;",
           "a node's value is activation(sum of weight * source). The input `bias` is the constant 1."]
          if has_edge_weights(genome) else
          ["Every enabled connection carries one shared weight w; a node's value is",
           "activation(w * sum of its sources). The input `bias` is the constant 1."]),
        f"{class_name}()(x, w) maps observations x [B, {len(observed)}] and shared weights w [W]",
        f"to outputs [W, B, {len(genome.outputs)}].",
        '"""',
        "import math",
        "",
        "import torch",
        "from torch import nn",
        "",
        f"INPUTS = {_tuple_literal(observed)}  # observation features, in this order",
        f"OUTPUTS = {_tuple_literal(output_names(genome))}",
        f"WEIGHTS = {_tuple_literal([float(v) for v in shared_weights(genome)])}",
        "",
    ]
    for act in used:
        lines += ["", f"def {act}(x):", f"    return {WANN_BY_NAME[act].torch_expr}", ""]
    lines += [
        "",
        f"class {class_name}(nn.Module):",
        "    def forward(self, x, w=WEIGHTS):",
        "        w = torch.as_tensor(w, dtype=x.dtype, device=x.device).reshape(-1, 1)",
        "        zero = torch.zeros(w.shape[0], x.shape[0], dtype=x.dtype, device=x.device)",
    ]
    for i, name in enumerate(observed):
        lines.append(f"        {variable[name]} = zero + x[:, {i}]")
    if BIAS in genome.inputs:
        lines.append(f"        {variable[BIAS]} = zero + 1.0")
    weighted = has_edge_weights(genome)
    own = incoming_weights(genome)
    for number, level in enumerate(topological_levels(genome), start=1):
        lines.append(f"        # level {number}")
        for name in level:
            if weighted:  # each source times its own weight, or w: act(0.3 * a - 1.5 * b + w * c)
                terms = [_weighted_term(variable[s], v, k == 0) for k, (s, v) in enumerate(zip(sources[name], own[name]))]
                lines += _wrap_terms(f"        {variable[name]} = {activation[name]}(", terms or ["zero"], ")")
                continue
            terms = [variable[s] for s in sources[name]] or ["zero"]
            total = f"({' + '.join(terms)})" if len(terms) > 1 else terms[0]
            lines += _wrap(f"        {variable[name]} = {activation[name]}(w * {total})")
    outputs = ", ".join(variable[name] for name in output_names(genome))
    lines += [f"        return torch.stack([{outputs}], dim=-1)", ""]
    return "\n".join(lines)


def _variable_names(genome: ir.WannGenome, reserved: set[str]) -> dict[str, str]:
    """Node name -> Python variable: the name itself unless it would shadow the file's own names."""
    taken = set(reserved)
    names = {}
    all_names = list(genome.inputs) + [n.name for n in genome.nodes] + [o.name for o in genome.outputs]
    for name in all_names:
        if name not in taken:
            names[name] = name
            taken.add(name)
    for name in all_names:
        if name not in names:
            candidate = name + "_"
            while candidate in taken or candidate in all_names:
                candidate += "_"
            names[name] = candidate
            taken.add(candidate)
    return names


def _tuple_literal(items) -> str:
    return "(" + ", ".join(repr(item) for item in items) + ("," if len(items) == 1 else "") + ")"


def _weighted_term(variable: str, weight: float | None, first: bool) -> str:
    """`0.3 * a`, `w * a`; after the first term a negative weight reads `- 1.5 * a` (sign joined by _wrap_terms)."""
    if weight is None:
        return ("" if first else "+ ") + f"w * {variable}"
    text = repr(float(weight))
    if first:
        return f"{text} * {variable}"
    return (f"- {text[1:]}" if text.startswith("-") else f"+ {text}") + f" * {variable}"


def _wrap_terms(head: str, terms: list[str], tail: str) -> list[str]:
    """`head` + terms joined by spaces + `tail`, broken before a `+`/`-` where a line would pass _LINE."""
    out, current = [], head
    for k, term in enumerate(terms):
        piece = (" " if k else "") + term
        if len(current) + len(piece) > _LINE and k:
            out.append(current)
            current, piece = " " * 12, term
        current += piece
    out.append(current + tail)
    return out


def _wrap(line: str) -> list[str]:
    """Break a long `name = act(w * (a + b + ...))` after `+` signs, inside the parentheses."""
    if len(line) <= _LINE:
        return [line]
    head, _, terms = line.partition("(w * (")
    terms = terms[: -len("))")].split(" + ")
    out, current = [], head + "(w * ("
    for k, term in enumerate(terms):
        piece = term + (" + " if k < len(terms) - 1 else "")
        if len(current) + len(piece) > _LINE and current.strip():
            out.append(current.rstrip())
            current = " " * 12
        current += piece
    out.append(current + "))")
    return out
