"""Mutations of transformer (WANN-GPT) genomes: heads, FFN width, activation, sublayers, layers, masks.

A genome's layers are `layer { heads 4 ffn 64 activation gelu attention off }`;
missing settings take the compiler's defaults (1 head, 4 x embed, gelu, on).
Heads must divide `embed`; a layer keeps at least one of its two sublayers.
The shared `masks random(density, seed)` setting is what grow / prune /
density change.
"""
from __future__ import annotations

import attrs

from ...ir import nodes as ir
from ...ops.activations import NETWORK_BY_NAME
from .base import Context, operator, shuffled

LAYER_DEFAULTS = {"heads": 1, "activation": "gelu", "attention": "on", "mlp": "on"}


def _value(e):
    if isinstance(e, ir.Num):
        return e.value
    if isinstance(e, ir.Name):
        return e.id
    return None


def genome_setting(g: ir.TransformerGenome, key: str, default=None):
    return _value(ir.setting(g.settings, key, None)) if ir.setting(g.settings, key) is not None else default


def layer_setting(g: ir.TransformerGenome, layer: ir.TransformerLayer, key: str):
    value = ir.setting(layer.settings, key)
    if value is not None:
        return _value(value)
    if key == "ffn":
        return 4 * genome_setting(g, "embed", 0)
    return LAYER_DEFAULTS.get(key)


def with_layer_setting(layer: ir.TransformerLayer, key: str, value) -> ir.TransformerLayer:
    expr = ir.Num(value) if isinstance(value, (int, float)) else ir.Name(value)
    settings = list(layer.settings)
    for i, s in enumerate(settings):
        if s.key == key:
            settings[i] = attrs.evolve(s, value=expr)
            break
    else:
        settings.append(ir.Setting(key, expr))
    return attrs.evolve(layer, settings=tuple(settings))


def _replace_layer(ctx: Context, index: int, layer) -> ir.Spec:
    g = ctx.item
    layers = list(g.layers)
    layers[index] = layer
    return ctx.replace_item(attrs.evolve(g, layers=tuple(layers)))


def _int_choices(ctx: Context, current: int, default) -> list[int]:
    choices = ctx.rule.choices or default
    return [int(c) for c in choices if isinstance(c, int) and not isinstance(c, bool) and c > 0 and c != current]


@operator("transformer", "heads")
def heads(ctx: Context):
    g = ctx.item
    embed = genome_setting(g, "embed")
    for i in shuffled(ctx.rng, range(len(g.layers))):
        current = layer_setting(g, g.layers[i], "heads")
        default = (max(1, current // 2), current * 2)
        for h in shuffled(ctx.rng, _int_choices(ctx, current, default)):
            if embed % h:  # heads partition the embedding: divisibility is kept, never broken
                continue
            yield _replace_layer(ctx, i, with_layer_setting(g.layers[i], "heads", h)), \
                f"heads layer {i}: {current} -> {h}"


@operator("transformer", "ffn")
def ffn(ctx: Context):
    g = ctx.item
    for i in shuffled(ctx.rng, range(len(g.layers))):
        current = layer_setting(g, g.layers[i], "ffn")
        for f in shuffled(ctx.rng, _int_choices(ctx, current, (max(1, current // 2), current * 2))):
            yield _replace_layer(ctx, i, with_layer_setting(g.layers[i], "ffn", f)), f"ffn layer {i}: {current} -> {f}"


@operator("transformer", "change_activation")
def change_activation(ctx: Context):
    g = ctx.item
    pool = [str(c) for c in (ctx.rule.choices or ("relu", "gelu", "tanh", "sin", "gauss", "sigmoid"))]
    for i in shuffled(ctx.rng, range(len(g.layers))):
        current = layer_setting(g, g.layers[i], "activation")
        options = [a for a in pool if a != current and a in NETWORK_BY_NAME]
        if options:
            act = ctx.rng.choice(options)
            yield _replace_layer(ctx, i, with_layer_setting(g.layers[i], "activation", act)), \
                f"change_activation layer {i}: {current} -> {act}"


@operator("transformer", "sublayer")
def sublayer(ctx: Context):
    g = ctx.item
    options = [(i, key) for i in range(len(g.layers)) for key in ("attention", "mlp")]
    for i, key in shuffled(ctx.rng, options):
        layer = g.layers[i]
        current = layer_setting(g, layer, key)
        other = layer_setting(g, layer, "mlp" if key == "attention" else "attention")
        if current == "on" and other == "off":
            continue  # a layer with neither sublayer would be an identity
        new = "off" if current == "on" else "on"
        yield _replace_layer(ctx, i, with_layer_setting(layer, key, new)), \
            f"sublayer layer {i}: {key} {current} -> {new}"


@operator("transformer", "layers")
def layers(ctx: Context):
    g = ctx.item
    n = len(g.layers)
    for target in shuffled(ctx.rng, _int_choices(ctx, n, (n - 1, n + 1))):
        new_layers = list(g.layers)
        if target > n:
            added = []
            for _ in range(target - n):  # copies of random layers, at random places
                src = ctx.rng.randrange(len(new_layers))
                at = ctx.rng.randrange(len(new_layers) + 1)
                new_layers.insert(at, attrs.evolve(new_layers[src], span=None))
                added.append(f"copy of layer {src} at {at}")
            what = ", ".join(added)
        else:
            removed = []
            for _ in range(n - target):
                at = ctx.rng.randrange(len(new_layers))
                del new_layers[at]
                removed.append(str(at))
            what = "removed " + ", ".join(removed)
        yield ctx.replace_item(attrs.evolve(g, layers=tuple(new_layers))), f"layers {n} -> {target} ({what})"


# --- the shared mask ---------------------------------------------------------------------------


def _mask_call(g):
    call = ir.setting(g.settings, "masks")
    return call if isinstance(call, ir.Call) and call.func == "random" else None


def _with_density(ctx: Context, call: ir.Call, density: float) -> ir.Spec:
    g = ctx.item
    density = round(float(density), 6)
    kwargs = [k for k in call.kwargs if k.name != "density"]
    new_call = attrs.evolve(call, kwargs=(ir.KwArg("density", ir.Num(density)),) + tuple(kwargs))
    settings = tuple(attrs.evolve(s, value=new_call) if s.key == "masks" else s for s in g.settings)
    return ctx.replace_item(attrs.evolve(g, settings=settings))


def _density(call) -> float:
    return float(_value(call.kwarg("density")))


@operator("transformer", "grow")
def grow(ctx: Context):
    call = _mask_call(ctx.item)
    if call is None or _density(call) >= 1.0:
        return
    old = _density(call)
    new = min(1.0, old * (1 + float(ctx.rule.option("rate", 0.01))))  # rate: a share of the live connections
    # Every matrix draws its own random mask from (density, seed): growing re-draws them at the new density.
    yield _with_density(ctx, call, new), f"grow masks: density {old} -> {round(new, 6)} (random, same seed)"


@operator("transformer", "prune")
def prune(ctx: Context):
    call = _mask_call(ctx.item)
    if call is None:
        return
    old = _density(call)
    new = old * (1 - float(ctx.rule.option("rate", 0.01)))  # rate: a share of the live connections
    if new <= 0 or new == old:
        return
    yield _with_density(ctx, call, new), f"prune masks: density {old} -> {round(new, 6)} (random, same seed)"


@operator("transformer", "density")
def density(ctx: Context):
    call = _mask_call(ctx.item)
    if call is None:
        return
    old = _density(call)
    choices = [float(c) for c in (ctx.rule.choices or ()) if 0.0 < float(c) <= 1.0 and float(c) != old]
    for d in shuffled(ctx.rng, choices):
        yield _with_density(ctx, call, d), f"density masks: {old} -> {d}"


__all__ = ["heads", "ffn", "change_activation", "sublayer", "layers", "grow", "prune", "density"]
