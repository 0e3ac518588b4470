"""PyTorch building blocks used by compiled networks.

The emitter copies the source of the classes a network needs into the emitted
file (via `inspect.getsource`), so the directly compiled module and the emitted
one run the very same code. Keep each class small and self-contained: it may
use only `torch`, `nn`, `F` and `math` (and `make_mask` the pure-Python
`random_keep`, which the emitter copies alongside it).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.masks import random_keep


class Scope(nn.Module):
    """A container for modules under a dotted path (`r.0.conv1`); `scope[0]` and `scope.conv1` both work."""

    def __init__(self, **modules):
        super().__init__()
        for name, module in modules.items():  # a `parameter` op's tensor sits beside the modules
            if isinstance(module, nn.Parameter):
                self.register_parameter(name, module)
            else:
                self.add_module(name, module)

    def __getitem__(self, key):
        return self._modules[str(key)]

    def __len__(self):
        return len(self._modules)


class MaskedLinear(nn.Linear):
    """A linear layer whose effective weight is weight * mask (a persistent bool buffer).

    With `shared_weight` set (a 1-D tensor of W values), the layer runs in WANN
    mode: the effective weight is w * mask for each w, and inputs and outputs
    carry a leading weight dimension [W, ...].
    """

    def __init__(self, in_features, out_features, bias=True, mask=None):
        super().__init__(in_features, out_features, bias=bias)
        if mask is None:
            mask = torch.ones(out_features, in_features, dtype=torch.bool)
        self.register_buffer("mask", mask.to(torch.bool).clone())
        self.shared_weight = None
        self.weight.register_hook(lambda grad: grad * self.mask)

    def forward(self, x):
        if self.shared_weight is not None:
            w = self.shared_weight.to(x.dtype).view(-1, *([1] * (x.dim() - 2)), 1, 1)
            return torch.matmul(x, (w * self.mask.to(x.dtype)).transpose(-1, -2))
        return F.linear(x, self.weight * self.mask, self.bias)

    @property
    def density(self):
        return self.mask.float().mean().item()

    @property
    def nnz(self):
        return int(self.mask.sum())

    @torch.no_grad()
    def apply_mask_(self):
        self.weight.mul_(self.mask)

    @torch.no_grad()
    def grow(self, idx, value=0.0):
        """Enable connections at flat indices `idx` (new weights start at `value`)."""
        flat = self.mask.view(-1)
        flat[idx] = True
        self.weight.view(-1)[idx] = value

    @torch.no_grad()
    def prune(self, idx):
        """Disable connections at flat indices `idx`."""
        self.mask.view(-1)[idx] = False
        self.weight.view(-1)[idx] = 0.0


class MaskedConv(nn.Module):
    """The mask logic shared by MaskedConv1d and MaskedConv2d: a bool mask over
    (out_channels, in_channels / groups) connectivity, broadcast over the kernel."""

    def _init_mask(self, mask):
        if mask is None:
            mask = torch.ones(self.weight.shape[:2], dtype=torch.bool)
        self.register_buffer("mask", mask.to(torch.bool).clone())
        self.weight.register_hook(lambda grad: grad * self.kernel_mask())

    def kernel_mask(self):
        return self.mask.view(*self.mask.shape, *([1] * (self.weight.dim() - 2)))

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.kernel_mask(), self.bias)

    @property
    def density(self):
        return self.mask.float().mean().item()

    @property
    def nnz(self):
        return int(self.mask.sum())

    @torch.no_grad()
    def apply_mask_(self):
        self.weight.mul_(self.kernel_mask())

    @torch.no_grad()
    def grow(self, idx, value=0.0):
        self.mask.view(-1)[idx] = True
        self.weight.view(self.mask.numel(), -1)[idx] = value

    @torch.no_grad()
    def prune(self, idx):
        self.mask.view(-1)[idx] = False
        self.weight.view(self.mask.numel(), -1)[idx] = 0.0


class MaskedConv1d(MaskedConv, nn.Conv1d):
    """Conv1d with a bool connectivity mask (see MaskedConv)."""

    def __init__(self, *args, mask=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_mask(mask)


class MaskedConv2d(MaskedConv, nn.Conv2d):
    """Conv2d with a bool connectivity mask (see MaskedConv)."""

    def __init__(self, *args, mask=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_mask(mask)


class Activation(nn.Module):
    """A named elementwise activation; an explicit module so hooks see post-activation values."""

    def __init__(self, name):
        super().__init__()
        self.name = name

    def forward(self, x):
        if self.name == "identity":
            return x
        if self.name == "step":
            return (x > 0).to(x.dtype)
        if self.name == "sin":
            return torch.sin(math.pi * x)
        if self.name == "cos":
            return torch.cos(math.pi * x)
        if self.name == "gauss":
            return torch.exp(-x * x / 2.0)
        if self.name == "inverse":
            return -x
        if self.name == "abs":
            return torch.abs(x)
        if self.name == "square":
            return x * x
        if self.name == "gelu_tanh":
            return F.gelu(x, approximate="tanh")
        if self.name == "gelu":
            return F.gelu(x)
        if self.name == "relu":
            return torch.relu(x)
        if self.name == "silu":
            return F.silu(x)
        if self.name == "tanh":
            return torch.tanh(x)
        if self.name == "sigmoid":
            return torch.sigmoid(x)
        if self.name == "relu6":
            return F.relu6(x)
        if self.name == "hardswish":
            return F.hardswish(x)
        if self.name == "hardsigmoid":
            return F.hardsigmoid(x)
        raise ValueError(f"unknown activation {self.name}")

    def extra_repr(self):
        return self.name


class StochasticDepth(nn.Module):
    """Stochastic depth (Huang et al. 2016), as torchvision.ops.StochasticDepth: the identity in eval mode; in
    training each row ("row": each sample) or the whole batch ("batch") is zeroed with probability p and the
    rest scaled by 1 / (1 - p)."""

    def __init__(self, p, mode="row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * (noise / keep if keep > 0.0 else noise)

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode}"


class LayerNorm2d(nn.LayerNorm):
    """Layer normalisation of [B, C, H, W] over the channels at each position (torchvision's convnext LayerNorm2d):
    the keys `weight`, `bias` of nn.LayerNorm(C)."""

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class PositionalEmbedding(nn.Module):
    """Adds a learned position embedding (GPT-2's wpe) to x of shape [B, T, E]."""

    def __init__(self, context, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(context, dim))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        return x + self.weight[: x.shape[-2]]


class CausalSelfAttention(nn.Module):
    """GPT-2 causal multi-head self-attention: one fused qkv projection, one output projection."""

    def __init__(self, dim, heads, bias=True, dropout=0.0):
        super().__init__()
        assert dim % heads == 0, "heads must divide the embedding size"
        self.heads = heads
        self.c_attn = nn.Linear(dim, 3 * dim, bias=bias)
        self.c_proj = nn.Linear(dim, dim, bias=bias)
        self.dropout = dropout

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention on one [B, T, E] tensor as query, key and value (batch first, no mask); its
    state-dict keys are torch's own (in_proj_weight, out_proj.weight, ...)."""

    def __init__(self, dim, heads, bias=True, dropout=0.0):
        super().__init__(dim, heads, dropout=dropout, bias=bias, batch_first=True)

    def forward(self, x):
        return super().forward(x, x, x, need_weights=False)[0]


class GPT2MLP(nn.Module):
    """GPT-2 feed-forward: c_fc, activation (an explicit module), c_proj."""

    def __init__(self, dim, hidden, activation="gelu_tanh", bias=True):
        super().__init__()
        self.c_fc = nn.Linear(dim, hidden, bias=bias)
        self.act = Activation(activation)
        self.c_proj = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class TransposedLinear(nn.Module):
    """y = x W + b with W stored (in, out), the layout of transformers' Conv1D (GPT-2), whose weights load as they are."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        nn.init.normal_(self.weight, std=0.02)
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight.t(), self.bias)


def make_mask(kind, out, fan_in, **p):
    """Connectivity mask (out x fan_in, bool): the same bits as netevo's ops.masks.make_mask."""
    if kind == "random":
        n = out * fan_in
        flat = torch.zeros(n, dtype=torch.bool)
        flat[random_keep(n, int(round(float(p["density"]) * n)), int(p.get("seed", 0)))] = True
        return flat.reshape(out, fan_in)
    if kind == "band":
        i = torch.arange(out, dtype=torch.float64)[:, None] * (fan_in / out)
        return (i - torch.arange(fan_in)[None, :]).abs() <= int(p["halfwidth"])
    if kind == "block":
        b = int(p["blocks"])
        return (torch.arange(out)[:, None] // (out // b)) == (torch.arange(fan_in)[None, :] // (fan_in // b))
    if kind == "bits":
        return torch.tensor([[c == "1" for c in row] for row in p["rows"]], dtype=torch.bool).reshape(out, fan_in)
    return torch.ones(out, fan_in, dtype=torch.bool)


class RelativePositionAttention(nn.Module):
    """Multi-head self-attention within windows of P = size * size positions, [B, G, P, D] -> [B, G, P, D], with a
    learned bias per head and relative offset (maxvit's window and grid attention; Shaw et al. 2018, Liu et al.
    2021). Keys as torchvision's: relative_position_bias_table ((2 size - 1)^2, heads), relative_position_index
    (P, P), to_qkv, merge. Keys are scaled by D ** -0.5, D the feature size (not the head size), as there."""

    def __init__(self, dim, head_dim, positions):
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        size = math.isqrt(positions)
        self.to_qkv = nn.Linear(dim, 3 * self.heads * head_dim)
        self.merge = nn.Linear(self.heads * head_dim, dim)
        self.scale = dim ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.empty((2 * size - 1) ** 2, self.heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        rows, cols = torch.arange(positions) // size, torch.arange(positions) % size
        offset = (rows[:, None] - rows[None, :] + size - 1) * (2 * size - 1) + cols[:, None] - cols[None, :] + size - 1
        self.register_buffer("relative_position_index", offset)

    def forward(self, x):
        b, g, p, d = x.shape
        q, k, v = self.to_qkv(x).reshape(b, g, p, 3, self.heads, self.head_dim).permute(3, 0, 1, 4, 2, 5)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)].reshape(p, p, -1)
        weights = torch.softmax(q @ (k * self.scale).transpose(-2, -1) + bias.permute(2, 0, 1), dim=-1)
        return self.merge((weights @ v).permute(0, 1, 3, 2, 4).reshape(b, g, p, d))


class ShiftedWindowAttention(nn.Module):
    """Swin's (shifted) window attention on [B, H, W, C] (Liu et al. 2021; v2: Liu et al. 2022, cosine attention
    with a learned logit scale and a bias from a small MLP over log-spaced relative coordinates). The input is
    padded to whole windows, rolled by -shift, attended within each window with a bias per head and relative
    offset (and -100 between positions from different regions of a shifted window), then rolled back and cut.
    Keys as torchvision's ShiftedWindowAttention(V2)."""

    def __init__(self, dim, window, shift, heads, qkv_bias=True, proj_bias=True, attention_dropout=0.0,
                 dropout=0.0, v2=False):
        super().__init__()
        self.window, self.shift, self.heads, self.v2 = tuple(window), tuple(shift), heads, v2
        self.attention_dropout, self.dropout = attention_dropout, dropout
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        wh, ww = self.window
        if v2:
            offsets = torch.stack(torch.meshgrid(torch.arange(1 - wh, wh, dtype=torch.float32),
                                                 torch.arange(1 - ww, ww, dtype=torch.float32), indexing="ij"), -1)
            offsets = offsets / torch.tensor([wh - 1, ww - 1], dtype=torch.float32) * 8
            self.register_buffer("relative_coords_table",
                                 (torch.sign(offsets) * torch.log2(offsets.abs() + 1.0) / 3.0).unsqueeze(0))
        else:
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        rows, cols = torch.arange(wh * ww) // ww, torch.arange(wh * ww) % ww
        index = (rows[:, None] - rows[None, :] + wh - 1) * (2 * ww - 1) + (cols[:, None] - cols[None, :] + ww - 1)
        self.register_buffer("relative_position_index", index.flatten())
        if v2:
            self.logit_scale = nn.Parameter(torch.log(10 * torch.ones((heads, 1, 1))))
            self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, heads, bias=False))

    def position_bias(self):
        n = self.window[0] * self.window[1]
        table = self.cpb_mlp(self.relative_coords_table).reshape(-1, self.heads) if self.v2 \
            else self.relative_position_bias_table
        bias = table[self.relative_position_index].reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        return 16 * torch.sigmoid(bias) if self.v2 else bias

    def region_mask(self, height, width, shift, like):
        """0 between positions of one region of a rolled window, -100 between regions, per window: (nW, N, N)."""
        (wh, ww), label = self.window, like.new_zeros((height, width))
        bounds = [((0, -w), (-w, -s), (-s, None)) for w, s in zip(self.window, shift)]
        for i, (h0, h1) in enumerate(bounds[0]):
            for j, (w0, w1) in enumerate(bounds[1]):
                label[h0:h1, w0:w1] = 3 * i + j
        label = label.reshape(height // wh, wh, width // ww, ww).transpose(1, 2).reshape(-1, wh * ww)
        differs = label[:, None, :] != label[:, :, None]
        return differs.to(like.dtype) * -100.0

    def forward(self, x):
        b, height, width, c = x.shape
        (wh, ww), heads = self.window, self.heads
        x = F.pad(x, (0, 0, 0, (ww - width % ww) % ww, 0, (wh - height % wh) % wh))
        ph, pw = x.shape[1], x.shape[2]
        shift = [0 if w >= size else s for w, s, size in zip(self.window, self.shift, (ph, pw))]
        if sum(shift) > 0:
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        windows = (ph // wh) * (pw // ww)
        x = x.reshape(b, ph // wh, wh, pw // ww, ww, c).transpose(2, 3).reshape(b * windows, wh * ww, c)
        qkv_bias = self.qkv.bias
        if self.v2 and qkv_bias is not None:  # v2 has no key bias: its middle third is held at zero
            qkv_bias = torch.cat([qkv_bias[:c], torch.zeros_like(qkv_bias[c:2 * c]), qkv_bias[2 * c:]])
        q, k, v = F.linear(x, self.qkv.weight, qkv_bias).reshape(x.shape[0], x.shape[1], 3, heads, c // heads) \
            .permute(2, 0, 3, 1, 4)
        if self.v2:
            scale = torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
            attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * scale
        else:
            attn = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
        attn = attn + self.position_bias()
        if sum(shift) > 0:
            n = attn.shape[-1]
            attn = (attn.reshape(b, windows, heads, n, n) + self.region_mask(ph, pw, shift, x)[None, :, None]) \
                .reshape(-1, heads, n, n)
        attn = F.dropout(F.softmax(attn, dim=-1), p=self.attention_dropout, training=self.training)
        x = (attn @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], c)
        x = F.dropout(F.linear(x, self.proj.weight, self.proj.bias), p=self.dropout, training=self.training)
        x = x.reshape(b, ph // wh, pw // ww, wh, ww, c).transpose(2, 3).reshape(b, ph, pw, c)
        if sum(shift) > 0:
            x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
        return x[:, :height, :width, :].contiguous()


class PatchMerging(nn.Module):
    """Swin's patch merging on [..., H, W, C]: each 2x2 patch's four positions side by side (odd sizes padded with
    zeros), [..., ceil(H/2), ceil(W/2), 4C], then LayerNorm and a linear map to 2C (v2: the linear map first).
    Keys as torchvision's PatchMerging(V2): reduction, norm."""

    def __init__(self, dim, eps=1e-5, v2=False):
        super().__init__()
        self.v2 = v2
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim if v2 else 4 * dim, eps=eps)

    def forward(self, x):
        height, width = x.shape[-3], x.shape[-2]
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[..., i::2, j::2, :] for j in (0, 1) for i in (0, 1)], -1)
        return self.norm(self.reduction(x)) if self.v2 else self.reduction(self.norm(x))
