"""Batched shared-weight evaluation of transformer (WANN-GPT) genomes on sequence tasks.

Genomes whose models have the same shapes and the same computation graph (vocab, context, embed,
and per layer: heads, FFN width, which sublayers are on) form a group; only their masks and
activations may differ. A group runs as one batched forward pass over
[genome, shared weight, sample, position]: every matrix is stacked as w x mask [G, W, out, in]
and applied with one `bmm`; a layer whose activation differs between members applies each
activation to its members' slice. Large groups are split into chunks whose activations and
logits stay under `chunk_bytes` (a memory budget; on the CPU also under CPU_CHUNK_BYTES).

A genome that does not fit the task (invalid settings, vocabulary, context, a mask that does not
fit a matrix) or produces non-finite outputs at some weight appears in `Scores.failures` with its
reason and has NaN scores; it is never scored 0.

`reference_transformer.reference_evaluate_transformers` is the oracle: one genome, one weight
at a time, through the compiled module's ordinary forward pass. The two share only the helpers
in the first section (reading the population, fit checks, shared weights, the score table) and
the task's `score`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..compiler.transformer import DEFAULT_WEIGHTS, config_of, masks_for, matrix_shapes
from ..compiler.wann_gpt import apply_activation
from ..errors import NetevoError, UsageError
from ..ir import nodes as ir
from .evaluate import CHUNK_BYTES, Scores, nonfinite_reason, resolve_device
from .tasks import make_task

# On the CPU, chunks are also kept under this many bytes (an estimate, see `member_bytes`):
# there the work per genome already fills the matrix kernels, and larger chunks ran slower
# (cache misses, and big allocations page-fault again on every chunk): 32 genomes of
# specs/wann_gpt.net on majority took 6.0 s in 128 MiB chunks and 8.1 s in 1 GiB chunks.
CPU_CHUNK_BYTES = 128 << 20


def evaluate_transformers(population, task, weights=None, device="auto", dtype=torch.float32, *,
                          chunk_bytes: int = CHUNK_BYTES) -> Scores:
    """Score every transformer genome at every shared weight on a sequence task, a shape group at a time.

    population: a list of `ir.TransformerGenome`, or of `ir.Spec` each holding exactly one.
    weights: shared-weight values; default the genomes' `weights` setting (which must agree).
    device: "auto" (CUDA when available, else CPU), or any torch device.
    chunk_bytes: memory budget for one chunk's activations and logits (on the CPU at most
        CPU_CHUNK_BYTES); a genome too large for it runs alone.
    """
    task = sequence_task(task)
    device = resolve_device(device)
    configs, failures = fitting_configs(population, task)
    w = transformer_weights(configs.values(), weights, dtype, device)
    table = ScoreRows(len(population), w, task)
    tokens = task.tokens.to(device)
    budget = min(chunk_bytes, CPU_CHUNK_BYTES) if device.type == "cpu" else chunk_bytes
    for members in shape_groups(configs).values():
        size = member_bytes(configs[members[0]], tokens.shape, len(w), dtype)
        for chunk in plan_chunks(members, size, budget):
            logits = forward_group([configs[i] for i in chunk], tokens, w)  # [G, W, N, T, V]
            reward, metrics = task.score(logits)
            bad = ~torch.isfinite(logits).flatten(2).all(-1)  # [G, W]
            table.write(chunk, reward, metrics, bad)
    return table.finish(failures)


# --- shared by the batched and the reference evaluator ----------------------------------


def sequence_task(task):
    """The task object; transformer genomes are scored on sequence tasks only."""
    task = make_task(task)
    if task.kind != "sequence":
        raise UsageError(f"transformer genomes are scored on sequence tasks, not `{task.name}` ({task.kind})",
                         hint="use copy, reverse, majority, parity or text(path=...)")
    return task


def is_transformer_individual(item) -> bool:
    """True for a transformer genome or a spec holding one: `evaluate` routes such populations here."""
    if isinstance(item, ir.TransformerGenome):
        return True
    return isinstance(item, ir.Spec) and any(isinstance(g, ir.TransformerGenome) for g in item.genomes)


def fitting_configs(population, task) -> tuple[dict, dict]:
    """{index: TransformerConfig} of the individuals that can run on `task`, and {index: reason} of the rest."""
    if isinstance(population, (ir.Spec, ir.TransformerGenome)):
        raise UsageError("evaluate takes a list of individuals", hint="wrap a single genome or spec in a list")
    configs, failures = {}, {}
    for i, item in enumerate(population):
        try:
            configs[i] = _fitting_config(transformer_genome_of(item), task)
        except NetevoError as e:
            failures[i] = e.message
    return configs, failures


def transformer_genome_of(item) -> ir.TransformerGenome:
    """The individual's transformer genome, or a UsageError saying why it has none."""
    if isinstance(item, ir.Spec):
        found = item.genomes
        if len(found) != 1:
            raise UsageError(f"a spec must hold exactly one genome to be evaluated, it holds {len(found)}")
        item = found[0]
    if not isinstance(item, ir.TransformerGenome):
        raise UsageError(f"{type(item).__name__} `{getattr(item, 'name', '?')}` is not a transformer genome")
    return item


def _fitting_config(genome: ir.TransformerGenome, task):
    """The genome's config, or a UsageError saying why it cannot run on `task`."""
    from ..ops.masks import check_mask
    from ..passes.check import check_transformer_genome

    errors = check_transformer_genome(genome)
    if errors:
        raise UsageError("; ".join(e.message for e in errors))
    cfg = config_of(genome)
    if cfg.vocab != task.vocab_size:
        raise UsageError(f"vocab {cfg.vocab} does not match the task's {task.vocab_size} tokens")
    if task.tokens.shape[1] > cfg.context:
        raise UsageError(f"context {cfg.context} is shorter than the task's {task.tokens.shape[1]} tokens")
    for path, (out, inp) in matrix_shapes(cfg).items():
        problem = check_mask(cfg.mask, out, inp)
        if problem:
            raise UsageError(f"mask of `{path}`: {problem}")
    return cfg


def transformer_weights(configs, weights, dtype, device) -> torch.Tensor:
    """[W] shared weights: `weights`, else the genomes' common `weights` setting, else the default set."""
    if weights is None:
        found = {cfg.weights for cfg in configs}
        if len(found) > 1:
            raise UsageError("the genomes declare different shared weights",
                             hint="pass weights=... to evaluate them on one set")
        weights = found.pop() if found else DEFAULT_WEIGHTS
    w = torch.as_tensor(weights, dtype=dtype).to(device).reshape(-1)
    if len(w) == 0:
        raise UsageError("no shared weights to evaluate", hint="pass e.g. weights=[-2, -1, -0.5, 0.5, 1, 2]")
    return w


class ScoreRows:
    """[P, W] rows of reward and metrics, NaN until written; failed rows end up NaN."""

    def __init__(self, n: int, weights: torch.Tensor, task):
        self.weights = weights.detach().to("cpu", torch.float64)
        names = ["reward"] + [k for k in metric_names(task) if k != "reward"]
        self.columns = {k: torch.full((n, len(weights)), float("nan"), dtype=torch.float64) for k in names}
        self.failures: dict[int, str] = {}

    def write(self, rows: list[int], reward: torch.Tensor, metrics: dict, bad: torch.Tensor) -> None:
        """Scores of population `rows` ([len(rows), W] each); bad flags non-finite outputs."""
        index = torch.as_tensor(rows, dtype=torch.long)
        self.columns["reward"][index] = reward.detach().to("cpu", torch.float64)
        for name, value in metrics.items():
            if name != "reward":
                self.columns[name][index] = value.detach().to("cpu", torch.float64)
        bad = bad.cpu()
        for k, row in enumerate(rows):
            if bool(bad[k].any()):
                self.failures[row] = nonfinite_reason(self.weights, bad[k])

    def finish(self, early_failures: dict) -> Scores:
        failures = dict(sorted({**self.failures, **early_failures}.items()))
        if failures:
            index = torch.as_tensor(list(failures), dtype=torch.long)
            for column in self.columns.values():
                column[index] = float("nan")
        return Scores(per_weight=self.columns["reward"], weights=self.weights, metrics=dict(self.columns),
                      failures=failures)


def metric_names(task) -> list[str]:
    """The metrics `task.score` reports, read from scoring no logits at all, so that they are
    present even when every individual fails."""
    n, t = task.tokens.shape
    _, metrics = task.score(torch.zeros(0, n, t, task.vocab_size))
    return list(metrics)


# --- grouping and chunking ----------------------------------------------------------------


def shape_key(cfg) -> tuple:
    """What fixes a model's tensor shapes and computation graph; masks and activations are left out."""
    return cfg.vocab, cfg.context, cfg.embed, tuple((heads, ffn, attn, mlp) for heads, ffn, _act, attn, mlp
                                                     in cfg.layers)


def shape_groups(configs: dict) -> dict[tuple, list[int]]:
    """{shape_key: population indices}, each group in population order."""
    groups: dict[tuple, list[int]] = {}
    for i, cfg in configs.items():
        groups.setdefault(shape_key(cfg), []).append(i)
    return groups


def member_bytes(cfg, token_shape, n_weights: int, dtype) -> int:
    """Estimated peak bytes one genome adds to a chunk: its activations at the widest sublayer, the
    residual stream, and the logits with their float64 log-softmax while scoring."""
    n, t = token_shape
    itemsize = torch.empty(0, dtype=dtype).element_size()
    widest = max([8 * cfg.embed + heads * t if attn else 0 for heads, _f, _a, attn, _m in cfg.layers]
                 + [3 * cfg.embed + 2 * ffn if mlp else 0 for _h, ffn, _a, _at, mlp in cfg.layers])
    per_position = itemsize * (2 * cfg.embed + widest) + (itemsize + 8 + 1) * cfg.vocab
    return n_weights * n * t * per_position


def plan_chunks(members: list[int], size: int, chunk_bytes: int) -> list[list[int]]:
    """Consecutive runs of `members` of at most chunk_bytes // size genomes (at least one)."""
    per_chunk = max(1, chunk_bytes // max(1, size))
    return [members[k:k + per_chunk] for k in range(0, len(members), per_chunk)]


# --- the batched forward pass -------------------------------------------------------------


def forward_group(configs: list, tokens: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Logits [G, W, N, T, vocab] of G same-shape genomes at every shared weight, in one pass."""
    cfg = configs[0]
    weights = shared_weight_matrices(configs, w)
    t = tokens.shape[1]
    # one-hot tokens and positions times (w M)^T select columns of the matrices
    x = weights["wte"].transpose(-1, -2)[:, :, tokens] + weights["wpe"].transpose(-1, -2)[:, :, None, :t]
    for i, (heads, _ffn, _act, attn, mlp) in enumerate(cfg.layers):
        if attn:
            x = x + _attend(x, weights[f"h.{i}.c_attn"], weights[f"h.{i}.c_proj"], heads)
        if mlp:
            h = _linear(F.layer_norm(x, (cfg.embed,)), weights[f"h.{i}.c_fc"])
            h = _activate([c.layers[i][2] for c in configs], h)
            x = x + _linear(h, weights[f"h.{i}.mlp_proj"])
    return _linear(F.layer_norm(x, (cfg.embed,)), weights["lm_head"])


def shared_weight_matrices(configs: list, w: torch.Tensor) -> dict[str, torch.Tensor]:
    """{matrix path: [G, W, out, in]}: w x mask for every member and shared weight. Tiny next to the
    activations, and it saves a pass over every sublayer's output to scale it by w."""
    per_member = [_flat_masks(cfg) for cfg in configs]
    scale = w.view(1, -1, 1, 1)
    return {path: torch.stack([m[path] for m in per_member]).to(w.device, w.dtype).unsqueeze(1) * scale
            for path in per_member[0]}


def _flat_masks(cfg) -> dict[str, torch.Tensor]:
    flat = {}
    for path, value in masks_for(cfg).items():
        if isinstance(value, dict):
            flat.update({f"{path}.{name}": m for name, m in value.items()})
        else:
            flat[path] = value
    return flat


def _linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [G, W, ..., in] times weight[g, w]^T for every member g and shared weight w: one bmm."""
    g, width, *lead, n_in = x.shape
    y = torch.bmm(x.reshape(g * width, -1, n_in), weight.flatten(0, 1).transpose(1, 2))
    return y.view(g, width, *lead, -1)


def _attend(x, c_attn, c_proj, heads: int) -> torch.Tensor:
    *lead, t, c = x.shape
    q, k, v = _linear(F.layer_norm(x, (c,)), c_attn).split(c, dim=-1)
    q, k, v = (z.reshape(-1, t, heads, c // heads).transpose(1, 2) for z in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return _linear(y.transpose(1, 2).reshape(*lead, t, c), c_proj)


def _activate(names: list[str], h: torch.Tensor) -> torch.Tensor:
    """Each member's activation on its slice h[g]; one call when the group agrees."""
    if len(set(names)) == 1:
        return apply_activation(names[0], h)
    out = torch.empty_like(h)
    for name in sorted(set(names)):
        rows = torch.tensor([g for g, n in enumerate(names) if n == name], device=h.device)
        out[rows] = apply_activation(name, h[rows])
    return out
