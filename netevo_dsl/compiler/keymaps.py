"""State-dict key maps between netevo-compiled networks and reference implementations.

`hf_gpt2_state_dict(hf)` maps transformers' GPT2LMHeadModel keys onto a network
compiled from specs/gpt2_tiny.net (or any spec that uses its names):

    transformer.wte.weight              -> wte.weight
    transformer.wpe.weight              -> wpe.weight
    transformer.h.{i}.ln_1.*            -> h.{i}.ln_1.*
    transformer.h.{i}.attn.c_attn.*     -> h.{i}.attn.c_attn.*   (Conv1D weight transposed)
    transformer.h.{i}.attn.c_proj.*     -> h.{i}.attn.c_proj.*   (transposed)
    transformer.h.{i}.ln_2.*            -> h.{i}.ln_2.*
    transformer.h.{i}.mlp.c_fc.*        -> h.{i}.mlp.c_fc.*      (transposed)
    transformer.h.{i}.mlp.c_proj.*      -> h.{i}.mlp.c_proj.*    (transposed)
    transformer.ln_f.*                  -> ln_f.*
    lm_head.weight                      -> logits.weight         (tied to wte in GPT-2)

HF's Conv1D stores weights as (in, out); nn.Linear as (out, in). The attention
`bias` / `masked_bias` buffers of older transformers versions are dropped: the
causal mask is built into scaled_dot_product_attention.
"""
from __future__ import annotations

_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def hf_gpt2_state_dict(hf_state: dict, head: str = "logits") -> dict:
    out = {}
    for key, value in hf_state.items():
        if key.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if key == "lm_head.weight":
            out[f"{head}.weight"] = value
            continue
        new = key.removeprefix("transformer.")
        out[new] = value.t().contiguous() if new.endswith(_TRANSPOSED) else value
    return out
