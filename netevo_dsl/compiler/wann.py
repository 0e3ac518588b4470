"""Compile a WANN genome to a torch module, or emit it as a standalone Python file.

Both follow the semantics in `netevo_dsl.ir.wann`: the input `bias` is 1.0,
a node is activation(w * sum of its enabled sources), and the shared weight w
gets a leading dimension so several weights run at once: ``forward(x, w)`` maps
observations [B, n_obs] and weights [W] to outputs [W, B, n_outputs].
"""
from __future__ import annotations

import keyword

import torch
from torch import nn

from ..errors import CompileError
from ..ir import nodes as ir
from ..ir.wann import (BIAS, IDENTIFIER, activation_of, incoming, observation_inputs, output_names,
                       require_valid, shared_weights, topological_levels)
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
        self.levels = []  # per level: activation groups as (name, positions in the level)
        for number, level in enumerate(topological_levels(genome)):
            edges = [(slot[src], k) for k, name in enumerate(level) for src in sources[name]]
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

    def forward(self, x: torch.Tensor, w=None) -> torch.Tensor:
        """x: [B, n_obs]; w: shared weights [W] (default: the genome's) -> [W, B, n_outputs]."""
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
        "Every enabled connection carries one shared weight w; a node's value is",
        "activation(w * sum of its sources). The input `bias` is the constant 1.",
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
    for number, level in enumerate(topological_levels(genome), start=1):
        lines.append(f"        # level {number}")
        for name in level:
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
