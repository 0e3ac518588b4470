"""WANN-GPT building blocks: GPT-2 layers whose every weight matrix is w x mask.

Each matrix keeps a dense Parameter and a persistent bool mask. Called with
`w=None` the model is an ordinary (trainable, masked) GPT-2; called with a
tensor `w` of shape [W] it runs in shared-weight (WANN) mode, every enabled
connection taking the value w, and all W values are evaluated in one pass
(outputs get a leading weight dimension). Layer norms have no affine
parameters and there are no biases, so in WANN mode nothing is learned.
The emitter copies this file's classes into emitted sources.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class SharedMaskedLinear(nn.Module):
    """y = x (W * M)^T, or x (w M)^T for each shared weight w (leading dim [W, ...])."""

    def __init__(self, in_features, out_features, mask):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.normal_(self.weight, std=0.02)
        self.register_buffer("mask", mask.to(torch.bool).clone())

    def forward(self, x, w=None, add_weight_dim=False):
        """With w, x carries the leading weight dim already, unless add_weight_dim (the first layer)."""
        if w is None:
            return F.linear(x, self.weight * self.mask)
        lead = x.dim() if add_weight_dim else x.dim() - 1
        # x (w M)^T == (x M^T) w: one matmul for all shared weights.
        return torch.matmul(x, self.mask.to(x.dtype).t()) * w.to(x.dtype).view(-1, *([1] * lead))


class WannBlock(nn.Module):
    """Pre-norm GPT-2 block; attention and the feed-forward sublayer can each be switched off."""

    def __init__(self, embed, heads, ffn, activation, attention, mlp, masks):
        super().__init__()
        self.heads, self.use_attention, self.use_mlp = heads, attention, mlp
        self.activation = activation
        if attention:
            self.c_attn = SharedMaskedLinear(embed, 3 * embed, masks["c_attn"])
            self.c_proj = SharedMaskedLinear(embed, embed, masks["c_proj"])
        if mlp:
            self.c_fc = SharedMaskedLinear(embed, ffn, masks["c_fc"])
            self.mlp_proj = SharedMaskedLinear(ffn, embed, masks["mlp_proj"])

    def attend(self, x, w):
        *lead, T, C = x.shape
        q, k, v = self.c_attn(F.layer_norm(x, (C,)), w).split(C, dim=-1)
        shape = (-1, T, self.heads, C // self.heads)
        q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(*lead, T, C)
        return self.c_proj(y, w)

    def forward(self, x, w=None):
        if self.use_attention:
            x = x + self.attend(x, w)
        if self.use_mlp:
            h = self.c_fc(F.layer_norm(x, (x.shape[-1],)), w)
            x = x + self.mlp_proj(apply_activation(self.activation, h), w)
        return x


def apply_activation(name, x):
    if name == "gelu":
        return F.gelu(x)
    if name == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    if name == "relu":
        return torch.relu(x)
    if name == "silu":
        return F.silu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "sin":
        return torch.sin(math.pi * x)
    if name == "cos":
        return torch.cos(math.pi * x)
    if name == "gauss":
        return torch.exp(-x * x / 2.0)
    if name == "step":
        return (x > 0).to(x.dtype)
    if name == "abs":
        return torch.abs(x)
    if name == "inverse":
        return -x
    if name == "square":
        return x * x
    if name == "identity":
        return x
    if name == "relu6":
        return F.relu6(x)
    if name == "hardswish":
        return F.hardswish(x)
    if name == "hardsigmoid":
        return F.hardsigmoid(x)
    raise ValueError(f"unknown activation {name}")


class WannGPT(nn.Module):
    """A WANN-GPT genome: token and position embeddings, blocks, and a head, all w x mask."""

    def __init__(self, vocab, context, embed, layers, masks):
        super().__init__()
        self.context = context
        self.wte = SharedMaskedLinear(vocab, embed, masks["wte"])  # one-hot tokens times (w M)^T
        self.wpe = SharedMaskedLinear(context, embed, masks["wpe"])
        self.h = nn.ModuleList([WannBlock(embed, *cfg, masks=masks[f"h.{i}"]) for i, cfg in enumerate(layers)])
        self.lm_head = SharedMaskedLinear(embed, vocab, masks["lm_head"])

    def forward(self, idx, w=None):
        B, T = idx.shape
        if T > self.context:
            raise ValueError(f"sequence length {T} exceeds the context {self.context}")
        dtype = self.wte.weight.dtype
        tokens = F.one_hot(idx, self.wte.mask.shape[1]).to(dtype)
        positions = torch.eye(self.context, dtype=dtype, device=idx.device)[:T]
        x = self.wte(tokens, w, add_weight_dim=True) + self.wpe(positions, w, add_weight_dim=True).unsqueeze(-3)
        for block in self.h:
            x = block(x, w)
        return self.lm_head(F.layer_norm(x, (x.shape[-1],)), w)
