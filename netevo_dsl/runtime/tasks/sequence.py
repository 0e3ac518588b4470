"""Sequence tasks for transformer genomes, generated offline from a seed.

Every task is next-token prediction: `tokens[n, t]` is the model's input and
`targets[n, t]` the token it should predict there, or IGNORE where the task
does not grade (e.g. while the sequence to copy is still being read).

copy      x1..xL SEP x1..xL        graded on the second half
reverse   x1..xL SEP xL..x1        graded on the second half
majority  b1..bL SEP m             m = the more frequent bit (L is odd)
parity    b1..bL SEP p             p = xor of all bits
text      characters of a local UTF-8 file, graded everywhere
"""
from __future__ import annotations

import math

import torch

from ...errors import UsageError

IGNORE = -100


class SequenceTask:
    kind = "sequence"

    def __init__(self, name: str, tokens: torch.Tensor, targets: torch.Tensor, vocab_size: int, params: dict):
        self.name = name
        self.tokens = tokens  # [N, T] long
        self.targets = targets  # [N, T] long, IGNORE where ungraded
        self.vocab_size = vocab_size
        self.n_inputs = self.n_outputs = vocab_size
        self.params = dict(params)

    def score(self, logits: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """logits [..., N, T, vocab] -> reward [...] (minus mean cross-entropy) and metrics."""
        return score_next_tokens(logits, self.targets.to(logits.device))


def score_next_tokens(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    graded = targets != IGNORE
    safe = torch.where(graded, targets, torch.zeros_like(targets))
    logp = torch.log_softmax(logits.to(torch.float64), -1)
    target_logp = logp.gather(-1, safe.expand(*logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    n_graded = graded.sum()
    reward = (target_logp * graded).sum((-2, -1)) / n_graded
    hit = (logits.argmax(-1) == safe) | ~graded
    metrics = {
        "reward": reward,
        "token_accuracy": ((hit & graded).sum((-2, -1)).to(torch.float64) / n_graded),
        "sequence_accuracy": hit.all(-1).to(torch.float64).mean(-1),
        "bits_per_char": -reward / math.log(2.0),
    }
    return reward, metrics


def _with_separator(first: torch.Tensor, second: torch.Tensor, separator: int) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens/targets for `first SEP second`, grading only the prediction of `second`."""
    n, length = first.shape
    sep = torch.full((n, 1), separator, dtype=torch.long)
    sequence = torch.cat([first, sep, second], 1)
    tokens, targets = sequence[:, :-1], sequence[:, 1:].clone()
    targets[:, : length] = IGNORE
    return tokens.contiguous(), targets


def make_sequence_task(name: str, params: dict) -> SequenceTask:
    gen = torch.Generator().manual_seed(int(params["seed"]))
    n, length = int(params["samples"]), int(params["length"])
    if n < 1 or length < 1:
        raise UsageError(f"task `{name}` needs samples >= 1 and length >= 1")
    if name in ("copy", "reverse"):
        symbols = int(params["symbols"])
        if symbols < 2:
            raise UsageError(f"task `{name}` needs at least 2 symbols")
        x = torch.randint(0, symbols, (n, length), generator=gen)
        tokens, targets = _with_separator(x, x if name == "copy" else x.flip(1), separator=symbols)
        return SequenceTask(name, tokens, targets, symbols + 1, params)
    bits = torch.randint(0, 2, (n, length), generator=gen)
    if name == "majority":
        if length % 2 == 0:
            raise UsageError("task `majority` needs an odd length", hint="so that there is never a tie")
        answer = (bits.sum(1, keepdim=True) * 2 > length).long()
    else:
        answer = bits.sum(1, keepdim=True) % 2
    tokens, targets = _with_separator(bits, answer, separator=2)
    return SequenceTask(name, tokens, targets, 3, params)


def load_text_task(params: dict) -> SequenceTask:
    """Character-level windows of `context` characters; the last (1 - train_fraction) is held out."""
    path = params["path"]
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as error:
        raise UsageError(f"task `text` cannot read {path!r}: {error.strerror}", hint="give an existing UTF-8 file")
    context = int(params["context"])
    if len(text) < context + 1:
        raise UsageError(f"task `text`: {path!r} has {len(text)} characters, fewer than context + 1 = {context + 1}")
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    windows = ids[: (len(ids) - 1) // context * context + 1]
    n_windows = (len(windows) - 1) // context
    tokens = windows[:-1].view(n_windows, context)
    targets = windows[1:].view(n_windows, context)
    task = SequenceTask("text", tokens, targets, len(vocab), params)
    task.vocabulary = "".join(vocab)
    # the first windows train, the rest are held out for validation
    task.n_train = min(n_windows, max(1, int(round(n_windows * float(params["train_fraction"])))))
    return task
