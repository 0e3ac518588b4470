"""A catalogue of bad specs: each gives exactly one error, with the expected code and line.

Codes are documented in docs/errors.md. Every case runs through `parse` then `check`, as `netevo check` does.
"""
import builtins
import os
import subprocess

import pytest

import netevo_dsl as ne
from netevo_dsl.cli import main
from netevo_dsl.errors import ErrorGroup, NetevoError, flatten

NET = "network n {\n  input x: [B, 3]\n  output y = linear(x, out=3)\n}\n\n"  # 5 lines: what follows is line 6
CSV_TASK = 'task csv(path="d.csv", target="y")'  # a task check cannot shape-check: any classifier fits it
XOR = "genome g: wann {\n  inputs a, b, bias\n  outputs y: tanh\n  edge a -> y\n}\n\n"  # likewise


def net(*lines):
    """A network `n` with input `x: [B, 3]` on line 2; the given statements start on line 3."""
    return "network n {\n  input x: [B, 3]\n" + "".join(f"  {s}\n" for s in lines) + "}\n"


BAD = [
    # --- syntax (E001): the parser recovers and keeps its spans
    ("syntax_missing_colon", "E001", 1, "unexpected `int`", "param width int = 3\n"),
    ("syntax_bad_character", "E001", 3, "unexpected character `$`", net("y = x $ 2")),
    ("syntax_unclosed_block", "E001", 2, "unexpected end of file", "network n {\n  input x: [B, 3]\n"),
    ("syntax_positional_after_keyword", "E001", 3, "positional argument after keyword",
     net("output y = linear(out=3, x)")),
    ("syntax_fractional_version", "E001", 1, "version is a whole number", "version 1.5\n"),
    ("syntax_number_too_large", "E001", 1, "too large", "param a: float = 1e999\n"),
    ("syntax_too_many_digits", "E001", 2, "too large", "version 1\nparam a: int = " + "9" * 5000 + "\n"),
    ("syntax_python_attribute", "E001", 1, "unexpected character `.`", 'param p: int = __import__("os").system("x")\n'),
    ("syntax_unknown_genome_kind", "E001", 1, "unknown genome kind `cnn`", "genome g: cnn {\n}\n"),
    ("syntax_unknown_edge_flag", "E001", 4, "unknown edge flag `off`",
     "genome g: wann {\n  inputs a\n  outputs y: tanh\n  edge a -> y [off]\n}\n"),
    # --- names (E020-E023)
    ("unknown_name", "E020", 3, "unknown name `z`", net("output y = relu(z)")),
    ("param_without_value", "E020", 1, "param `a` has no default and no -D value",
     "param a: int\n\n" + net("output y = linear(x, out=a)")),
    ("mutate_unknown_target", "E020", 1, "no network or genome named `nothing`",
     "mutate nothing {\n  add_node(p=0.1)\n}\n"),
    ("python_keyword_name", "E021", 3, "`class` cannot be used", net("class = relu(x)", "output y = class")),
    ("dunder_value_name", "E021", 3, "`__class__` cannot be used", net("__class__ = relu(x)", "output y = x")),
    ("dunder_param_name", "E021", 1, "`__import__` cannot be used", "param __import__: int = 1\n"),
    ("reserved_input_name", "E021", 2, "`torch` cannot be used",
     "network n {\n  input torch: [B, 3]\n  output y = relu(torch)\n}\n"),
    ("unknown_op", "E022", 3, "unknown op `lienar`", net("output y = lienar(x, out=3)")),
    ("duplicate_param", "E023", 2, "`a` is defined twice", "param a: int = 1\nparam a: int = 2\n"),
    ("duplicate_across_kinds", "E023", 3, "`n` is defined twice", "param n: int = 1\n\n" + NET),
    # --- types and op parameters (E030-E034)
    ("param_wrong_type", "E030", 1, "param `a` must be an int, got 1.5",
     "param a: int = 1.5\n\nnetwork n {\n  input x: [B, 3]\n  output y = linear(x, out=a)\n}\n"),
    ("division_by_zero", "E030", 1, "division by zero",
     "param a: int = 4 / 0\n\nnetwork n {\n  input x: [B, 3]\n  output y = linear(x, out=a)\n}\n"),
    ("repeat_count_negative", "E030", 3, "repeat count must be a non-negative integer, got -1",
     net("repeat -1 as r {", "  x = relu(x)", "}", "output y = x")),
    ("repeat_count_fractional", "E030", 3, "got 1.5", net("repeat 1.5 as r {", "  x = relu(x)", "}", "output y = x")),
    ("return_in_network", "E030", 3, "`return` belongs in a block", net("return x")),
    ("network_without_output", "E030", 1, "network `n` has no output", net("y = relu(x)")),
    ("tensor_minus_tensor", "E030", 3, "`-` between a tensor and a tensor", net("output y = x - x")),
    ("block_missing_argument", "E030", 7, "block `b` needs `c`",
     "block b(x: [B, c], c: int) -> [B, c] {\n  return relu(x)\n}\n\n" + net("output y = b(x)")),
    ("mask_unknown_kind", "E030", 1, "a mask is a mask name or one of", "mask m = randm(density=0.5)\n"),
    ("transformer_unknown_activation", "E030", 5, "unknown activation `swish`",
     "genome t: transformer {\n  vocab 8\n  context 8\n  embed 8\n  layer { heads 2 ffn 8 activation swish }\n}\n"),
    ("transformer_missing_setting", "E030", 1, "needs `embed N`",
     "genome t: transformer {\n  vocab 8\n  context 8\n  layer { heads 1 }\n}\n"),
    ("unknown_kwarg", "E031", 3, "no parameter `outt`", net("output y = linear(x, outt=3)")),
    ("mask_on_a_weightless_op", "E031", 3, "relu has no parameter `mask`", net("output y = relu(x, mask=dense())")),
    ("missing_required_param", "E032", 3, "linear needs `out`", net("output y = linear(x)")),
    ("wrong_param_type", "E033", 3, "`out` must be an integer", net('output y = linear(x, out="3")')),
    ("wrong_bool_param", "E033", 3, "`bias` must be true or false", net("output y = linear(x, out=3, bias=1)")),
    ("param_below_minimum", "E034", 3, "`k` must be at least 1",
     "network n {\n  input x: [B, 3, 8, 8]\n  output y = conv2d(x, out=4, k=0)\n}\n"),
    # --- shapes (E040, E041)
    ("add_shape_mismatch", "E040", 5, "operand 1 has shape [B, 4] but operand 0 has shape [B, 3]",
     net("a = linear(x, out=3)", "b = linear(x, out=4)", "output y = a + b")),
    ("conv_groups_not_dividing", "E040", 3, "6 is not divisible by 4",
     "network n {\n  input x: [B, 6, 8, 8]\n  output y = conv2d(x, out=4, k=3, groups=4)\n}\n"),
    ("rank_mismatch", "E040", 3, "input has rank 2, expected rank 4", net("output y = conv2d(x, out=4, k=3)")),
    ("split_sizes", "E040", 3, "split sizes add up to 5 but dim 1 has size 6",
     "network n {\n  input x: [B, 6]\n  a, b = split(x, sizes=[2, 3])\n  output y = a\n}\n"),
    ("block_argument_shape", "E040", 7, "`x` of block `b` expects shape [B, 8], got [B, 3]",
     "block b(x: [B, 8]) -> [B, 8] {\n  return relu(x)\n}\n\n" + net("output y = b(x)")),
    ("block_argument_rank", "E040", 7, "expects rank 4, got [B, 3]",
     "block b(x: [B, c, H, W], c: int) -> [B, c, H, W] {\n  return relu(x)\n}\n\n" + net("output y = b(x, c=3)")),
    ("block_return_shape", "E040", 1, "the return of block `b` expects shape [B, 3], got [B, 6]",
     "block b(x: [B, c], c: int) -> [B, c] {\n  return linear(x, out=2 * c)\n}\n\n" + net("output y = b(x, c=3)")),
    ("block_return_size_not_divisible", "E040", 1, "the return of block `down`: size `H / 2` is 16.5",
     "block down(x: [B, cin, H, W], c: int) -> [B, c, H / 2, W / 2] {\n"
     "  return conv2d(x, out=c, k=3, stride=2, pad=1)\n}\n\n"
     "network n {\n  input x: [B, 3, 33, 33]\n  output y = down(x, c=4)\n}\n"),
    ("input_size_not_whole", "E040", 2, "input `x`: size `3 / 2` is 1.5, not a whole number",
     "network n {\n  input x: [B, 3 / 2]\n  output y = relu(x)\n}\n"),
    ("attention_heads_not_dividing", "E040", 3, "10 is not divisible by 4",
     "network n {\n  input x: [B, T, 10]\n  output y = attention(x, heads=4)\n}\n"),
    ("mask_density_out_of_range", "E040", 5, "density must be in (0, 1], got 1.5",
     "mask m = random(density=1.5)\n\n" + net("output y = linear(x, out=3, mask=m)")),
    ("bits_mask_of_wrong_size", "E040", 3, "bit rows are 1 x 3, the weight is 2 x 3",
     net('output y = linear(x, out=2, mask=bits(rows=["101"]))')),
    ("transformer_heads_not_dividing_embed", "E041", 5, "4 heads do not divide the embedding size 10",
     "genome t: transformer {\n  vocab 8\n  context 8\n  embed 10\n  layer { heads 4 ffn 8 }\n}\n"),
    # --- WANN genomes (E050)
    ("genome_self_loop", "E050", 6, "has a cycle: h -> h",
     "genome g: wann {\n  inputs a, bias\n  outputs y: tanh\n  node h: sin\n  edge a -> h\n  edge h -> h [disabled]\n"
     "  edge h -> y\n}\n"),
    ("genome_unknown_activation", "E050", 4, "unknown activation `sine`",
     "genome g: wann {\n  inputs a\n  outputs y: tanh\n  node h: sine\n  edge a -> h\n  edge h -> y\n}\n"),
    ("genome_unknown_edge_endpoint", "E050", 5, "`b` is not declared",
     "genome g: wann {\n  inputs a\n  outputs y: tanh\n  edge a -> y\n  edge b -> y\n}\n"),
    ("genome_edge_into_input", "E050", 4, "points into input `b`",
     "genome g: wann {\n  inputs a, b\n  outputs y: tanh\n  edge a -> b\n}\n"),
    ("genome_weight_not_a_number", "E050", 4, "a shared weight must be a number literal",
     "genome g: wann {\n  inputs a\n  outputs y: tanh\n  weights {1, x}\n}\n"),
    # --- mutation rules (E060)
    ("unknown_mutation_operator", "E060", 7, "unknown mutation operator `widht`",
     NET + "mutate n {\n  widht(y, p=0.1)\n}\n"),
    ("rule_for_the_wrong_target_kind", "E060", 7, "`add_node` does not apply to a network",
     NET + "mutate n {\n  add_node(p=0.1)\n}\n"),
    ("rule_p_out_of_range", "E060", 7, "`p` is a probability in [0, 1]", NET + "mutate n {\n  width(y, p=1.5)\n}\n"),
    ("rule_unknown_argument", "E060", 7, "`width` has no argument `rate`",
     NET + "mutate n {\n  width(y, p=0.5, rate=0.1)\n}\n"),
    ("growth_rule_negative_rate", "E060", 7, "`rate` must be at least 0",
     NET + "mutate n {\n  prune_dead(p=0.5, rate=-0.1)\n}\n"),
    ("growth_rule_fractional_samples", "E060", 7, "`samples` is an integer",
     NET + "mutate n {\n  merge_duplicates(p=0.5, samples=2.5)\n}\n"),
    ("mask_rule_unknown_score", "E060", 7, '`score` is one of "random", "gradient", "magnitude"',
     NET + 'mutate n {\n  grow(p=0.5, score="best")\n}\n'),
    ("rule_op_filter_unknown", "E060", 7, "`op` names a registered op",
     NET + 'mutate n {\n  kernel("*", op=conv3d, p=0.5)\n}\n'),
    ("rule_unknown_activation_choice", "E060", 8, "unknown activation `swish` for a wann",
     XOR + "mutate g {\n  change_activation(p=0.5, choices={sin, swish})\n}\n"),
    ("rule_target_matches_no_node", "E061", 7, "`width` target `yy` matches no node of `n`",
     NET + "mutate n {\n  width(yy, p=0.5, choices={4, 16})\n}\n"),
    ("rule_glob_matches_no_node", "E061", 7, "`kernel` target `conv*` matches no node of `n`",
     NET + 'mutate n {\n  kernel("conv*", p=0.5)\n}\n'),
    # --- evolve blocks and tasks (E070-E073)
    ("unknown_evolve_setting", "E070", 9, "unknown evolve setting `populaton`",
     XOR + "evolve g {\n  task xor(outputs=1)\n  populaton 10\n}\n"),
    ("evolve_without_task", "E070", 7, "evolve `g` has no task", XOR + "evolve g {\n  population 10\n}\n"),
    ("unknown_selection", "E070", 9, "selection is `wann` or `nsga2`",
     XOR + "evolve g {\n  task xor(outputs=1)\n  selection random\n}\n"),
    ("unknown_task", "E071", 8, "unknown task `xr`", XOR + "evolve g {\n  task xr\n}\n"),
    ("unknown_task_parameter", "E071", 8, "task `xor` has no parameter `outputz`",
     XOR + "evolve g {\n  task xor(outputz=1)\n}\n"),
    ("objective_metric_the_task_lacks", "E072", 9, "task `xor` has no metric `accuracy`",
     XOR + "evolve g {\n  task xor(outputs=1)\n  objective maximize mean(accuracy)\n}\n"),
    ("genome_inputs_vs_task", "E073", 1, "task `swingup` gives 5 inputs but genome `g` takes 2",
     XOR + "evolve g {\n  task swingup\n}\n"),
    ("genome_outputs_vs_task", "E073", 1, "task `xor` needs 2 outputs but genome `g` has 1",
     XOR + "evolve g {\n  task xor\n}\n"),
    # --- evolve blocks of networks (E074-E079, E135-E136); CSV_TASK: no shape check, so NET fits it
    ("network_evolve_genome_setting", "E074", 7, "unknown setting `weights` for evolving a network",
     NET + "evolve n {\n  weights {1, 2}\n  train {\n    " + CSV_TASK + "\n  }\n}\n"),
    ("network_evolve_without_train", "E074", 6, "evolve `n` has no `train` part", NET + "evolve n {\n  population 4\n}\n"),
    ("train_part_for_a_genome", "E074", 9, "a `train` part is for evolving a network",
     XOR + "evolve g {\n  task xor(outputs=1)\n  train {\n    epochs 1\n  }\n}\n"),
    ("train_unknown_task", "E075", 8, "unknown training task `irs`", NET + "evolve n {\n  train {\n    task irs\n  }\n}\n"),
    ("train_csv_without_target", "E075", 8, "task `csv` needs `target`",
     NET + 'evolve n {\n  train {\n    task csv(path="d.csv")\n  }\n}\n'),
    ("train_epochs_and_steps", "E076", 10, "give the budget as epochs or as steps, not both",
     NET + "evolve n {\n  train {\n    " + CSV_TASK + "\n    epochs 1\n    steps 10\n  }\n}\n"),
    ("train_zero_batch_size", "E076", 9, "`batch_size` must be a positive integer",
     NET + "evolve n {\n  train {\n    " + CSV_TASK + "\n    batch_size 0\n  }\n}\n"),
    ("train_unknown_optimizer", "E077", 9, "unknown optimizer `LBFGS`",
     NET + "evolve n {\n  train {\n    " + CSV_TASK + "\n    optimizer LBFGS(lr=1)\n  }\n}\n"),
    ("train_unknown_optimizer_argument", "E077", 9, "`SGD` takes no argument `betas`",
     NET + "evolve n {\n  train {\n    " + CSV_TASK + "\n    optimizer sgd(lr=0.1, betas=[0.9, 0.99])\n  }\n}\n"),
    ("train_scheduler_missing_argument", "E078", 9, "`StepLR` needs `step_size`",
     NET + "evolve n {\n  train {\n    " + CSV_TASK + "\n    scheduler StepLR(gamma=0.5)\n  }\n}\n"),
    ("network_objective_unknown", "E079", 7, "`connections` is no objective for a network",
     NET + "evolve n {\n  objective minimize connections\n  train {\n    " + CSV_TASK + "\n  }\n}\n"),
    ("network_selection_unknown", "E135", 7, "selection is nsga2, aging or random, not `wann`",
     NET + "evolve n {\n  selection wann\n  train {\n    " + CSV_TASK + "\n  }\n}\n"),
    ("network_inherit_not_on_off", "E135", 7, "inherit is on or off",
     NET + "evolve n {\n  inherit maybe\n  train {\n    " + CSV_TASK + "\n  }\n}\n"),
    ("network_does_not_fit_task", "E136", 2, "task `iris` gives samples [B, 4]",
     NET + "evolve n {\n  train {\n    task iris\n  }\n}\n"),
    ("objective_params_is_no_genome_measure", "E072", 9, "task `xor` has no metric `params`",
     XOR + "evolve g {\n  task xor(outputs=1)\n  objective minimize params\n}\n"),
    # --- hostile input (issue 13; more in test_hostile_frontend.py): limits of netevo_dsl/limits.py
    ("nested_too_deep", "E003", 3, "nested more than 100 levels deep",
     net("output y = " + "relu(" * 200 + "x" + ")" * 200)),
    ("long_pipeline", "E003", 3, "nested more than 100 levels deep", net("output y = x" + " |> relu()" * 330)),
    ("block_calls_itself", "E120", 2, "block `b` calls itself: b -> b",
     "block b(x: [B, c]) -> [B, c] {\n  return b(x)\n}\n" + net("output y = b(x)")),
    ("repeat_count_too_large", "E123", 3, "repeat count 1000000000 is above the limit of 10000",
     net("repeat 1000000000 as r {", "  x = relu(x)", "}", "output y = x")),
    ("number_beyond_64_bits", "E124", 3, "is too large", net("output y = linear(x, out=" + "9" * 30 + ")")),
    ("params_squaring_past_64_bits", "E124", 3, "number 18446744073709551616 is too large",
     "param a: int = 65536\nparam b: int = a * a\nparam c: int = b * b\nparam d: int = c * c\n"),
    ("size_above_the_limit", "E125", 3, "above the limit of 2^31 - 1", net("output y = linear(x, out=4294967296)")),
    ("symbolic_size_too_complex", "E126", 2, "a term multiplies more than 16 symbols",
     "network n {\n  input x: [B, " + " * ".join(f"s{i}" for i in range(40)) + "]\n  output y = relu(x)\n}\n"),
    ("negative_input_size", "E040", 2, "input `x`: size 1 is -4, a negative size",
     "network n {\n  input x: [B, -4]\n  output y = relu(x)\n}\n"),
    ("negative_split_size", "E040", 3, "split sizes are at least 0, got -2",
     "network n {\n  input x: [B, 4]\n  a, b = split(x, sizes=[-2, 6])\n  output y = a\n}\n"),
    ("negative_reshape_size", "E040", 3, "reshape sizes are at least 0, or -1",
     "network n {\n  input x: [B, 4]\n  output y = reshape(x, shape=[-2, -2])\n}\n"),
    ("softmax_dim_out_of_range", "E040", 3, "dim 5 is out of range for rank 2", net("output y = softmax(x, dim=5)")),
    # --- issue 17's channel_scale, permute, narrow (bad params and shapes)
    ("permute_not_an_order", "E040", 3, "permute dims [0, 0] are not an order of the 2 axes",
     net("output y = permute(x, dims=[0, 0])")),
    ("narrow_past_the_end", "E040", 3, "narrow start 2 + length 2 runs past size 3 of dim 1",
     net("output y = narrow(x, dim=1, start=2, length=2)")),
    ("narrow_negative_start", "E034", 3, "`start` must be at least 0",
     net("output y = narrow(x, dim=1, start=-1, length=1)")),
    ("self_attention_heads_not_dividing", "E040", 3, "10 is not divisible by 4",
     "network n {\n  input x: [B, T, 10]\n  output y = self_attention(x, heads=4)\n}\n"),
    ("channel_scale_not_per_channel", "E040", 4, "channel_scale needs one operand of shape [B, C, 1, ...]",
     "network n {\n  input x: [B, 3, 4, 4]\n  input s: [B, 3, 4, 1]\n  output y = channel_scale(x, s)\n}\n"),
    # --- issue 17's bounded activations, pooling ceil_mode, mean, stochastic depth (bad params)
    ("clamp_without_bounds", "E040", 3, "clamp needs `min`, `max` or both", net("output y = clamp(x)")),
    ("clamp_min_above_max", "E040", 3, "clamp: min 2.0 is above max 1.0", net("output y = clamp(x, min=2.0, max=1.0)")),
    ("hardtanh_min_not_below_max", "E040", 3, "hardtanh: min 1.0 is equal to max 1.0",
     net("output y = hardtanh(x, min=1.0, max=1.0)")),
    ("mean_dim_twice", "E040", 3, "dim -1 is reduced twice", net("output y = mean(x, dims=[1, -1])")),
    ("mean_dim_out_of_range", "E040", 3, "dim 2 is out of range for rank 2", net("output y = mean(x, dims=[2])")),
    ("stochastic_depth_p_above_one", "E040", 3, "probability in [0, 1], got 1.5",
     net("output y = stochastic_depth(x, p=1.5)")),
    ("channel_dropout_without_channels", "E040", 3, "channel dropout takes [B, C, L], [B, C, H, W] or",
     net("output y = channel_dropout(x, p=0.3)")),
    ("pool_ceil_mode_not_bool", "E033", 3, "`ceil_mode` must be true or false",
     "network n {\n  input x: [B, 3, 8, 8]\n  output y = maxpool2d(x, k=2, ceil_mode=1)\n}\n"),
    ("pool_ceil_mode_symbolic_size", "E040", 3, "ceil_mode with stride 4 above k - pad = 3 needs a concrete size",
     "network n {\n  input x: [B, 3, H, H]\n  output y = maxpool2d(x, k=3, stride=4, ceil_mode=true)\n}\n"),
    # --- per-axis sizes (`k=[1, 7]`, issue 17's inception_v3) and scale(x, by)
    ("per_axis_kernel_too_many_axes", "E204", 3, "`k` gives 3 size(s) for 2 spatial axes",
     "network n {\n  input x: [B, 3, 8, 8]\n  output y = conv2d(x, out=4, k=[1, 7, 7])\n}\n"),
    ("per_axis_pool_padding_too_few_axes", "E204", 3, "`pad` gives 1 size(s) for 2 spatial axes",
     "network n {\n  input x: [B, 3, 8, 8]\n  output y = maxpool2d(x, k=3, pad=[1])\n}\n"),
    ("per_axis_stride_below_one", "E034", 3, "`stride` must be at least 1, got [1, 0]",
     "network n {\n  input x: [B, 3, 8, 8]\n  output y = conv2d(x, out=4, k=3, stride=[1, 0])\n}\n"),
    ("per_axis_kernel_not_integers", "E033", 3, "`k` must be an integer or a list of integers",
     "network n {\n  input x: [B, 3, 8, 8]\n  output y = avgpool2d(x, k=[2, 1.5])\n}\n"),
    ("scale_without_number", "E032", 3, "scale needs `by`", net("output y = scale(x)")),
    ("scale_by_a_string", "E033", 3, "scale: `by` must be a number", net('output y = scale(x, by="half")')),
    ("relative_attention_window_not_square", "E040", 3, "needs a square window: 8 positions is not size * size",
     "network n {\n  input x: [B, 4, 8, 16]\n  output y = relative_attention(x, head_dim=4)\n}\n"),
    ("swin_window_three_axes", "E205", 3, "`window` is [height, width]: two integers, at least 1",
     "network n {\n  input x: [B, 8, 8, 16]\n  output y = shifted_window_attention(x, heads=2, window=[4, 4, 4], "
     "shift=[0, 0])\n}\n"),
    ("swin_negative_shift", "E205", 3, "`shift` is [height, width]: two integers, at least 0",
     "network n {\n  input x: [B, 8, 8, 16]\n  output y = shifted_window_attention(x, heads=2, window=[4, 4], "
     "shift=[-2, 2])\n}\n"),
    ("swin_v2_window_of_one", "E205", 3, "v2 needs windows of at least 2 positions per axis",
     "network n {\n  input x: [B, 8, 8, 16]\n  output y = shifted_window_attention(x, heads=2, window=[1, 4], "
     "shift=[0, 0], v2=true)\n}\n"),
    ("swin_heads_not_dividing", "E040", 3, "channels vs heads: 16 is not divisible by 3",
     "network n {\n  input x: [B, 8, 8, 16]\n  output y = shifted_window_attention(x, heads=3, window=[4, 4], "
     "shift=[0, 0])\n}\n"),
    ("patch_merging_rank_three", "E040", 3, "patch_merging: input has rank 3, expected rank 4",
     "network n {\n  input x: [B, 8, 16]\n  output y = patch_merging(x)\n}\n"),
    ("relative_attention_head_dim_not_dividing", "E040", 3, "features vs head_dim: 16 is not divisible by 5",
     "network n {\n  input x: [B, 4, 9, 16]\n  output y = relative_attention(x, head_dim=5)\n}\n"),
    # --- issue 17's parameter, broadcasts, expand_batch, select, layernorm2d (convnext, vit)
    ("parameter_size_zero", "E040", 3, "parameter sizes are at least 1, got [3, 0]",
     net("p = parameter(shape=[3, 0])", "output y = broadcast_add(x, p)")),
    ("parameter_init_unknown", "E033", 3, '`init` must be one of "zeros", "ones", "normal"',
     net('p = parameter(shape=[3], init="uniform")', "output y = broadcast_add(x, p)")),
    ("parameter_in_a_statement_of_several_modules", "E200", 3, "`parameter` needs a statement of its own",
     net("y = linear(broadcast_add(x, parameter(shape=[3])), out=2)", "output o = y")),
    ("broadcast_sizes_differ", "E040", 4, "shapes [B, 3] and [4] do not broadcast",
     net("p = parameter(shape=[4])", "output y = broadcast_mul(x, p)")),
    ("broadcast_to_neither_shape", "E040", 4, "broadcast to [2, B, 3], the shape of neither",
     net("p = parameter(shape=[2, 1, 1])", "output y = broadcast_add(x, p)")),
    ("expand_batch_not_size_one", "E040", 3, "expand_batch repeats a tensor of size 1 on axis 0",
     net("output y = expand_batch(x, x)")),
    ("select_index_out_of_range", "E040", 3, "index 3 is out of range for size 3 of dim 1",
     net("output y = select(x, dim=1, index=3)")),
    ("layernorm2d_not_channels_first_map", "E040", 3, "input has rank 2, expected rank 4",
     net("output y = layernorm2d(x)")),
    ("name_taken_by_nn_module", "E021", 3, "torch's nn.Module already has `forward`",
     net("forward = relu(x)", "output y = forward")),
    ("task_parameter_refused", "E071", 8, "a binary task has `outputs` 1 or 2",
     XOR + "evolve g {\n  task xor(outputs=0)\n}\n"),
    # --- issue 17's GPT-2 import: sdpa (attention on per-head tensors), linear_t (Conv1D's (in, out) weight)
    ("sdpa_key_value_lengths_differ", "E040", 4, "sdpa: key and value lengths differ (6 vs 5)",
     "network n {\n  input q: [B, 2, 5, 8]\n  input k: [B, 2, 6, 8]\n  output y = sdpa(q, k, q, causal=true)\n}\n"),
    ("sdpa_head_sizes_differ", "E040", 4, "sdpa: query and key head sizes differ (8 vs 4)",
     "network n {\n  input q: [B, 2, 5, 8]\n  input k: [B, 2, 5, 4]\n  output y = sdpa(q, k, q)\n}\n"),
    ("sdpa_two_inputs", "E030", 3, "sdpa takes 3 tensor input(s), got 2",
     "network n {\n  input q: [B, 2, 5, 8]\n  output y = sdpa(q, q)\n}\n"),
    ("sdpa_rank_two", "E040", 3, "sdpa: query has rank 2, expected rank 3 or 4", net("output y = sdpa(x, x, x)")),
    ("sdpa_scale_negative", "E040", 3, "sdpa: `scale` must be positive, got -1.0",
     "network n {\n  input q: [B, 2, 5, 8]\n  output y = sdpa(q, q, q, scale=-1.0)\n}\n"),
    ("sdpa_heads_not_dividing", "E040", 3, "sdpa query width vs heads: 10 is not divisible by 4",
     "network n {\n  input q: [B, 5, 10]\n  output y = sdpa(q, q, q, heads=4)\n}\n"),
    ("linear_t_out_zero", "E034", 3, "linear_t: `out` must be at least 1, got 0", net("output y = linear_t(x, out=0)")),
]


def errors_of(text, path="bad.net"):
    with pytest.raises(NetevoError) as info:
        ne.check(ne.parse(text, None if path is None else path))
    return flatten(info.value)


def test_the_catalogue_is_large_and_covers_every_family():
    assert len(BAD) >= 30
    assert {code[:3] for _, code, *_ in BAD} >= {"E00", "E02", "E03", "E04", "E05", "E06", "E07"}
    assert len({name for name, *_ in BAD}) == len(BAD)


@pytest.mark.parametrize("name, code, line, message, text", BAD, ids=[b[0] for b in BAD])
def test_bad_spec(name, code, line, message, text):
    errors = errors_of(text)
    assert [(e.code, e.span.line if e.span else None) for e in errors] == [(code, line)], \
        [e.render() for e in errors]
    assert message in errors[0].message
    assert errors[0].span.file == "bad.net"


def test_genome_cycle_through_two_nodes():
    text = ("genome g: wann {\n  inputs a, bias\n  outputs y: tanh\n  node h1: sin\n  node h2: sin\n  edge a -> h1\n"
            "  edge h1 -> h2\n  edge h2 -> h1\n  edge h2 -> y\n}\n")
    (err,) = errors_of(text)
    # Where the cycle is reported to start follows networkx's set order, which varies between runs.
    assert (err.code, err.span.line, err.message) in [
        ("E050", 7, "genome `g` has a cycle: h1 -> h2 -> h1"), ("E050", 8, "genome `g` has a cycle: h2 -> h1 -> h2")]


def test_unknown_op_suggests_the_closest_name():
    (err,) = errors_of(net("output y = lienar(x, out=3)"))
    assert err.hint == "did you mean `linear`?"


def test_unknown_kwarg_suggests_the_closest_name():
    (err,) = errors_of(net("output y = linear(x, outt=3)"))
    assert err.hint == "did you mean `out`?"


def test_add_shape_mismatch_names_both_ops_in_notes():
    (err,) = errors_of(net("a = linear(x, out=3)", "b = linear(x, out=4)", "output y = a + b"))
    notes = [(span.line, text) for span, text in err.notes]
    assert notes == [(3, "input 0 `linear `a`` has shape [B, 3]"), (4, "input 1 `linear `b`` has shape [B, 4]")]


def test_duplicate_name_notes_the_first_definition():
    (err,) = errors_of("param a: int = 1\nparam a: int = 2\n")
    assert [(s.line, text) for s, text in err.notes] == [(1, "first defined here")]


def test_import_cycle(tmp_path):
    (tmp_path / "a.net").write_text('import "b.net"\n')
    (tmp_path / "b.net").write_text('version 1\nimport "a.net"\n')
    with pytest.raises(NetevoError) as info:
        ne.load(tmp_path / "a.net")
    err = info.value
    assert err.code == "E011" and "a.net -> b.net -> a.net" in err.message
    assert err.span.file == str((tmp_path / "b.net").resolve()) and err.span.line == 2


def test_missing_import(tmp_path):
    (tmp_path / "a.net").write_text('version 1\n\nimport "nowhere.net"\n')
    with pytest.raises(NetevoError) as info:
        ne.load(tmp_path / "a.net")
    assert info.value.code == "E010" and info.value.span.line == 3
    assert "nowhere.net" in info.value.message


def test_imports_bring_in_blocks(tmp_path):
    (tmp_path / "blocks.net").write_text("block twice(x: [B, c]) -> [B, c] {\n  return relu(x) + x\n}\n")
    (tmp_path / "main.net").write_text('import "blocks.net"\n\n' + net("output y = twice(x)"))
    spec = ne.load(tmp_path / "main.net")
    assert [b.name for b in spec.imported] == ["twice"]
    assert ne.check(spec).graphs["n"].node("y.out").op == "relu"


def test_define_for_an_unknown_param():
    spec = ne.parse("param width: int = 3\n\n" + net("output y = linear(x, out=width)"))
    with pytest.raises(NetevoError) as info:
        ne.check(spec, {"widht": 5})
    (err,) = flatten(info.value)
    assert err.code == "E020" and err.span is None
    assert "-D widht" in err.message and err.hint == "did you mean `width`?"


def test_define_overrides_a_param():
    spec = ne.parse("param width: int = 3\n\n" + net("output y = linear(x, out=width)"))
    assert ne.check(spec, {"width": 5}).graphs["n"].node("y").shape[-1] == 5


def test_several_errors_in_one_run():
    text = ("param a int = 1\n"  # syntax error: the parser recovers at the next item
            "param b: int = 2\n"
            "network n {\n  input x: [B, 3]\n  y = = 2\n}\n")
    with pytest.raises(ErrorGroup) as info:
        ne.parse(text)
    assert [(e.code, e.span.line) for e in info.value.errors] == [("E001", 1), ("E001", 5)]

    text = net("a = lienar(x, out=3)", "b = conv2d(x, out=4, k=3)", "c = relu(z)", "output y = a + b + c")
    errors = errors_of(text)
    assert [(e.code, e.span.line) for e in errors] == [("E022", 3), ("E040", 4), ("E020", 5)]  # no follow-on errors


def test_rendering_shows_location_caret_and_help():
    text = net("output y = lienar(x, out=3)")
    (err,) = errors_of(text, "model.net")
    rendered = err.render({"model.net": text})
    assert rendered.splitlines() == [
        "model.net:3:14: error[E022]: unknown op `lienar`",
        "   3 |   output y = lienar(x, out=3)",
        " " * 20 + "^" * len("lienar(x, out=3)"),  # under the call, after the 7-character gutter
        "help: did you mean `linear`?",
    ]


def test_cli_renders_every_error(tmp_path, capsys):
    path = tmp_path / "bad.net"
    path.write_text(net("a = lienar(x, out=3)", "output y = relu(z)"))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:3:7: error[E022]" in err and f"{path}:4:19: error[E020]" in err
    assert err.count("^") >= 2 and "help: did you mean `linear`?" in err


# --- nothing in a spec is ever evaluated as Python ------------------------------------------------

EVIL = [
    'param p: int = __import__("os").system("touch pwned")\n',
    'param p: int = __import__("os")\n\n' + net("output y = linear(x, out=p)"),
    net('output y = eval("1")'),
    net('output y = exec("import os")'),
    net("output y = x.__class__"),
    net("__class__ = relu(x)", "output y = __class__"),
    'mask m = __import__(name="os")\n',
    "network __init__ {\n  input x: [B, 3]\n  output y = relu(x)\n}\n",
    'genome g: wann {\n  inputs __builtins__\n  outputs y: tanh\n  edge __builtins__ -> y\n}\n',
    XOR + 'evolve g {\n  task __import__("os")\n}\n',
]


@pytest.mark.parametrize("text", EVIL)
def test_no_construct_evaluates_python(text, monkeypatch, tmp_path):
    calls = []

    def refuse(name):
        def fail(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called")
        return fail

    monkeypatch.setattr(os, "system", refuse("os.system"))
    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    monkeypatch.setattr(builtins, "eval", refuse("eval"))
    monkeypatch.setattr(builtins, "exec", refuse("exec"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NetevoError):
        ne.check(ne.parse(text))
    assert calls == [] and not (tmp_path / "pwned").exists()
