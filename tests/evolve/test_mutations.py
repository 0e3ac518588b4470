"""Network, mask and transformer mutations; the engine; canonical hashes; DEAP; `netevo mutate`."""
from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import pytest

import netevo_dsl as ne
from netevo_dsl.errors import NetevoError, RuleError, UsageError
from netevo_dsl.evolve.mutations import mutants, mutate, validate_source
from netevo_dsl.evolve.mutations.base import Rule
from netevo_dsl.ir import nodes as ir
from netevo_dsl.ir.hashing import canonical_hash
from netevo_dsl.ops.masks import make_mask

SPECS = Path(__file__).resolve().parents[2] / "specs"
SHIPPED = sorted(SPECS.glob("*.net"))


def load(name):
    return ne.load(SPECS / f"{name}.net")


def graph(spec):
    return ne.infer_shapes(spec)


def outputs(spec):
    g = graph(spec)
    return [(name, str(g.shape_of(ref))) for name, ref in g.outputs]


def child(spec, rules, seed=0, **kw):
    new, text = mutate(spec, seed, rules=rules, **kw)
    assert ne.parse(ne.format(new)) == new, "the printer round-trips every mutant"
    ne.check(new)
    return new, text


# --- width ---------------------------------------------------------------------------------


def test_width_changes_one_group_from_the_choices():
    spec = load("mlp")
    for seed in range(8):
        new, text = child(spec, "width(fc1, choices={128, 512})", seed)
        fc1, fc2 = graph(new).node("fc1"), graph(new).node("fc2")
        assert fc1.param_dict["out"] in (128, 512) and fc2.param_dict["out"] == 128
        assert "fc1" in text and outputs(new) == outputs(spec)


def test_width_of_a_residual_group_moves_every_coupled_layer_and_block_argument():
    spec = load("resnet18")
    new, text = child(spec, 'width("layer1.*", choices={96})')
    g = graph(new)
    for name in ("conv1", "layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2"):
        assert g.node(name).param_dict["out"] == 96, name
    assert g.node("layer2.0.conv1").param_dict["out"] == 128, "the next stage only reads the group"
    assert outputs(new) == outputs(spec)
    body = ne.format(new)
    assert "basic(c=96) |> basic(c=96)" in body and "block basic(x: [B, c, H, W], c: int)" in body
    validate_source(new)


def test_width_never_resizes_a_network_output():
    spec = load("mlp")
    with pytest.raises(RuleError):
        mutate(spec, 0, rules="width(logits, choices={5, 20})")


def test_width_keeps_attention_heads_dividing_the_embedding():
    spec = load("gpt2_tiny")  # 4 heads: 30 and 66 are not divisible by 4, 8 is
    for seed in range(5):
        new, _ = child(spec, "width(wte, choices={30, 66, 8})", seed)
        assert graph(new).node("wte").param_dict["dim"] == 8


def test_width_follows_a_param_by_writing_a_literal_where_the_layer_is():
    spec = load("mlp")  # fc2 = linear(act1, out=hidden / 2)
    new, _ = child(spec, "width(fc2, choices={64})")
    assert graph(new).node("fc2").param_dict["out"] == 64
    assert graph(new).node("fc1").param_dict["out"] == 256, "the param keeps its other uses"


# --- kernel --------------------------------------------------------------------------------


def test_kernel_keeps_same_padding_and_every_shape():
    spec = load("resnet18")
    old = {n.name: n for n in graph(spec).nodes}
    for seed in range(4):
        new, text = child(spec, 'kernel("*conv1", choices={3, 5})', seed)
        nodes = graph(new).nodes
        assert {n.name: n.shape for n in nodes} == {n.name: n.shape for n in old.values()}, text
        changed = [n for n in nodes if n.param_dict.get("k") != old[n.name].param_dict.get("k")]
        assert changed and all(n.param_dict["pad"] == (n.param_dict["k"] - 1) // 2 for n in changed)


def test_kernel_without_same_padding_leaves_the_padding():
    spec = load("lenet5")
    new, _ = child(spec, "kernel(c1, op=conv2d, choices={3})")
    conv = graph(new).node("c1.0").param_dict
    assert conv["k"] == 3 and conv["pad"] == 0
    assert outputs(new) == outputs(spec)


# --- activation, insert, remove, skip, repeat, heads -----------------------------------------


def test_activation_swaps_the_op_for_one_of_the_choices():
    spec = load("mlp")
    for seed in range(6):
        new, _ = child(spec, "activation(act1, act2, choices={gelu, tanh})", seed)
        ops = {graph(new).node(n).op for n in ("act1", "act2")}
        assert ops - {"relu"} <= {"gelu", "tanh"} and ops != {"relu"}


def test_insert_and_remove_layers_keep_the_output_shape():
    spec = load("mlp")
    n_nodes = len(graph(spec).nodes)
    grown, text = child(spec, "insert_layer(fc1, choices={linear, tanh})")
    assert len(graph(grown).nodes) == n_nodes + 1 and outputs(grown) == outputs(spec), text
    shrunk, text = child(spec, "remove_layer(act1)")
    assert [n.op for n in graph(shrunk).nodes].count("relu") == 1 and outputs(shrunk) == outputs(spec)
    with pytest.raises(RuleError):  # fc1 maps 784 to 256: not shape-preserving
        mutate(spec, 0, rules="remove_layer(fc1)")


def test_an_inserted_width_layer_uses_the_block_parameter_inside_a_block():
    spec = load("resnet18")
    new, _ = child(spec, 'insert_layer("layer1.0.conv1", choices={conv2d})')
    assert "conv2d(out=c" in ne.format(new), "block bodies take sizes from block parameters, not literals"
    validate_source(new)


def test_skip_connections_are_added_and_removed():
    spec = load("mlp")
    added, text = child(spec, "skip(act2)")
    assert "act2 = fc2 + relu(fc2)" in ne.format(added) and text.startswith("skip act2: add")
    resnet = load("resnet18")
    adds = sum(n.op == "add" for n in graph(resnet).nodes)
    removed, text = child(resnet, 'skip("basic.return")')
    assert "return relu(bn2)" in ne.format(removed) and "remove `x`" in text
    assert sum(n.op == "add" for n in graph(removed).nodes) == adds - 5, "every instance of the block"
    grown, _ = child(resnet, "skip(layer1)")
    assert "layer1 = maxpool + (maxpool |> basic(c=64) |> basic(c=64))" in ne.format(grown)


def test_repeat_changes_a_repeat_count():
    # `repeat` is a grammar keyword, so the rule is spelled `repeat_count`.
    spec = load("gpt2_tiny")
    new, text = child(spec, "repeat_count(h, choices={3})")
    assert "repeat 3 as h" in ne.format(new) and text == "repeat h: 2 -> 3"
    assert {n.name.split(".")[1] for n in graph(new).nodes if n.name.startswith("h.")} == {"0", "1", "2"}


def test_heads_keep_divisibility():
    spec = load("gpt2_tiny")  # embedding 64
    seen = set()
    for seed in range(10):
        new, _ = child(spec, "heads(choices={3, 6, 8})", seed)
        seen.add(graph(new).node("h.0.attn").param_dict["heads"])
    assert seen == {8}


# --- masks -----------------------------------------------------------------------------------


def _bits(spec, node):
    n = graph(spec).node(node)
    in_f = graph(spec).shape_of(n.inputs[0])[-1]
    return make_mask(n.param_dict["mask"], int(n.param_dict["out"]), int(in_f))


def test_grow_adds_connections_to_the_existing_mask():
    spec = load("sparse_mlp")
    old = _bits(spec, "logits")
    new, text = child(spec, "grow(sparse10, rate=0.05)")
    grown = _bits(new, "logits")
    k = int(round(0.05 * old.sum()))  # SET / RigL: the rate is a share of the live connections
    assert grown.sum() == old.sum() + k and (grown | ~old).all(), "every old connection is kept"
    assert "bits(rows=" in ne.format(new) and "random" in text


def test_prune_by_magnitude_removes_the_smallest_weights():
    spec = load("sparse_mlp")
    old = _bits(spec, "logits")
    weights = np.random.default_rng(0).normal(size=old.shape)
    new, text = child(spec, "prune(sparse10, rate=0.01, score=\"magnitude\")", weights={"logits": weights})
    pruned = _bits(new, "logits")
    removed = old & ~pruned
    assert removed.sum() == max(1, int(round(0.01 * old.sum()))) and "magnitude" in text
    assert np.abs(weights[removed]).max() <= np.abs(weights[pruned]).min()


def test_rates_are_shares_of_the_live_connections_as_in_set_and_rigl():
    """Issue 15: prune(rate=0.05) on a 20%-dense mask removed 25% of its connections (5% of all positions).
    SET's zeta and RigL's drop fraction are shares of the connections a layer has."""
    spec = ne.parse("mask m = bits(rows=[\"1111000000\", \"1111000000\", \"0000000000\", \"0000000000\", "
                    "\"0000000000\"] )\nnetwork n {\n  input x: [B, 10]\n  output y = linear(x, out=5, mask=m)\n}\n")
    old = _bits(spec, "y")
    assert old.mean() == pytest.approx(0.16) and old.sum() == 8
    pruned = _bits(child(spec, "prune(m, rate=0.25)")[0], "y")
    assert pruned.sum() == 6 and (old | ~pruned).all()  # 25% of 8 live connections, not 25% of 50 positions
    new, text = child(spec, "grow(m, rate=0.5)")
    assert _bits(new, "y").sum() == 12 and text.startswith("grow ") and "0.5 of 8 live" in text


def test_density_on_an_explicit_mask_says_density():
    spec = ne.parse("mask m = bits(rows=[\"1100\", \"1000\", \"0000\", \"0000\"])\n"
                    "network n {\n  input x: [B, 4]\n  output y = linear(x, out=4, mask=m)\n}\n")
    new, text = child(spec, "density(m, choices={0.5})")
    assert _bits(new, "y").sum() == 8 and text.startswith("density ") and "grew 5" in text


def test_magnitude_without_weights_falls_back_to_random_and_says_so():
    _, text = child(load("sparse_mlp"), "prune(sparse10, rate=0.01, score=\"magnitude\")")
    assert "none given: random" in text


def test_gradient_growth_picks_the_largest_gradients():
    spec = load("sparse_mlp")
    old = _bits(spec, "logits")
    grads = np.random.default_rng(1).normal(size=old.shape)
    new, _ = child(spec, "grow(logits, rate=0.02, score=\"gradient\")", grads={"logits": grads})
    added = _bits(new, "logits") & ~old
    assert np.abs(grads[added]).min() >= np.abs(grads[~old & ~added]).max()


def test_density_edits_a_random_mask():
    new, _ = child(load("sparse_mlp"), "density(sparse30, choices={0.5})")
    assert "mask sparse30 = random(density=0.5, seed=11)" in ne.format(new)


# --- transformer genomes -------------------------------------------------------------------------


def test_transformer_mutations_keep_heads_dividing_and_a_sublayer_on():
    spec = load("wann_gpt")
    for seed in range(12):
        new, text = child(spec, None, seed)
        g = new.genomes[0]
        embed = ir.setting(g.settings, "embed").value
        for layer in g.layers:
            s = {x.key: x.value for x in layer.settings}
            assert embed % s["heads"].value == 0
            assert not (getattr(s.get("attention"), "id", "on") == "off" and getattr(s.get("mlp"), "id", "on") == "off")
        if seed % 4 == 0:
            validate_source(new)


def test_transformer_layers_are_added_and_removed():
    spec = load("wann_gpt")
    more, _ = child(spec, "layers(choices={3})")
    fewer, _ = child(spec, "layers(choices={1})")
    assert len(more.genomes[0].layers) == 3 and len(fewer.genomes[0].layers) == 1


# --- engine ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_mutation_never_touches_the_original(path):
    spec = ne.load(path)
    before, items = canonical_hash(spec), spec.items
    for seed in range(3):
        new, _ = mutate(spec, seed)
        assert canonical_hash(new) != before
    assert canonical_hash(spec) == before and spec.items is items and ne.load(path) == spec


def test_mutants_are_valid_unique_and_differ_from_the_parent():
    spec = load("lenet5")
    stats = {}
    # lenet5's rules reach 2 (c1 kernel) x 2 (c3 kernel) x 3 (c1 width) - 1 = 11 networks (pools keep their k)
    found = mutants(spec, 10, seed=3, stats=stats)
    hashes = [m.hash for m in found]
    assert len(set(hashes)) == 10 and canonical_hash(spec) not in hashes
    assert hashes == [canonical_hash(m.spec) for m in found]
    for m in found:
        validate_source(m.spec)
        assert outputs(m.spec) == outputs(spec)
    assert stats["attempts"] >= 10


def test_mutants_that_mean_the_parent_or_each_other_are_duplicates():
    # digits_mlp: h1 = linear(out=hidden), hidden = 128; a walk 128 -> 256 -> 128 writes `out=128`, a
    # different text for the parent's network
    spec = load("digits_mlp")
    found = mutants(spec, 5, seed=0, rules="width(h1, p=1, choices={64, 128, 256})", strict=False)
    widths = sorted(dict(m.check_result.graphs["digits_mlp"].node("h1.0").params)["out"] for m in found)
    assert widths == [64, 256]


def test_too_few_possible_mutants_is_an_error_unless_asked_otherwise():
    spec = load("gpt2_tiny")
    heads_only = 'heads("h.*", choices={1, 2, 4, 8})'  # heads of both layers change together: 3 children
    with pytest.raises(RuleError):
        mutants(spec, 5, seed=0, rules=heads_only)
    assert len(mutants(spec, 5, seed=0, rules=heads_only, strict=False)) == 3


def test_target_and_rule_errors_are_netevo_errors():
    with pytest.raises(UsageError):
        mutate(load("mlp"), 0, target="nope")
    with pytest.raises(RuleError):
        mutate(load("mlp"), 0, rules="add_node(p=1)")  # a WANN rule on a network
    with pytest.raises(RuleError):
        mutate(load("mlp"), 0, rules="width(nothing_matches, choices={8})")


def test_glob_targets_and_op_filters_select_nodes():
    spec = load("resnet18")
    for seed in range(4):
        _, text = child(spec, 'kernel("layer2.*", op=conv2d, choices={5})', seed)
        assert text.startswith("kernel layer2.")


def test_canonical_hash_ignores_layout_and_comments_but_not_content():
    spec = load("mlp")
    text = ne.format(spec)
    relaid = ne.parse("// a comment\n" + text.replace("  ", "    "))
    assert canonical_hash(relaid) == canonical_hash(spec)
    assert canonical_hash(ne.parse(text.replace("out=10", "out=11"))) != canonical_hash(spec)
    assert canonical_hash(ir.Num(2)) == canonical_hash(ir.Num(2.0)) and ir.Num(2) == ir.Num(2.0)
    assert canonical_hash(ir.Bool(True)) != canonical_hash(ir.Num(1))


# --- DEAP ------------------------------------------------------------------------------------------


def test_deap_individuals_work_with_nsga2():
    from deap import base, tools

    from netevo_dsl.evolve.deap_ops import register_operators

    toolbox = base.Toolbox()
    register_operators(toolbox, load("mlp"), weights=(1.0, -1.0), seed=1)
    pop = toolbox.population(n=5)
    assert len({ind.hash for ind in pop}) == 5
    offspring = [toolbox.mutate(toolbox.clone(ind))[0] for ind in pop]
    rng = random.Random(0)
    for ind in pop + offspring:
        ind.fitness.values = (rng.random(), rng.random())
    clone = toolbox.clone(pop[0])
    del clone.fitness.values
    assert pop[0].fitness.valid, "a clone has its own fitness"
    chosen = tools.selNSGA2(pop + offspring, 5)
    assert len(chosen) == 5 and all(c in pop + offspring for c in chosen)
    assert not hasattr(toolbox, "mate"), "no crossover: WANN genomes have no innovation numbers"


# --- netevo mutate -----------------------------------------------------------------------------


def _run_cli(argv):
    from netevo_dsl.evolve.mutate_cli import add_parser

    parser = argparse.ArgumentParser(prog="netevo")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("path", [p for p in SHIPPED if ne.load(p).of_kind(ir.MutateBlock)], ids=lambda p: p.stem)
def test_netevo_mutate_writes_valid_unique_mutants(path, tmp_path, capsys):
    assert _run_cli(["mutate", str(path), "-n", "3", "--seed", "1", "-o", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    files = sorted(tmp_path.glob("*.net"))
    assert len(lines) == len(files) == 3
    written = [ne.load(f) for f in files]
    assert len({canonical_hash(s) for s in written}) == 3
    for line, f, s in zip(lines, files, written):
        ne.check(s)
        assert line.startswith(str(f)) and canonical_hash(s)[:12] in line
        assert f.read_text().startswith(f"// mutant")


def test_netevo_mutate_user_errors_are_netevo_errors(tmp_path):
    with pytest.raises(NetevoError):
        _run_cli(["mutate", str(tmp_path / "missing.net")])
    with pytest.raises(UsageError):
        _run_cli(["mutate", str(SPECS / "mlp.net"), "-n", "0"])
    with pytest.raises(NetevoError):
        _run_cli(["mutate", str(SPECS / "mlp.net"), "-D", "nope=1", "-o", str(tmp_path)])
