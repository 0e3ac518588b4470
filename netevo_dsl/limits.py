"""The front end's limits: what a spec may ask for before `check` refuses it.

A spec is untrusted input (`netevo check` runs on every keystroke in an editor, on
files from anyone). Each limit turns what would be a traceback, a hang or a memory
blow-up into a `NetevoError` with its own code and a hint. The numbers are far above
what a real network needs; docs/language.md ("Limits") lists them.
"""
from __future__ import annotations

from .errors import NetevoError

MAX_SPEC_BYTES = 4 * 1024 * 1024  # E013: one spec file (the top file or an import)
MAX_NESTING = 100  # E003: levels of nesting inside one top-level item (calls, operators, pipelines, repeats)
MAX_ELABORATION_DEPTH = 200  # E121: nested expression evaluations plus 4 per block call being inlined
BLOCK_CALL_DEPTH_COST = 4
MAX_ELABORATED_OPS = 20_000  # E122: ops, block instances and repeat copies made while elaborating one network
MAX_REPEAT = 10_000  # E123: the count of one `repeat`
MAX_INT = 2**63 - 1  # E124: any integer value (torch sizes and seeds are int64)
MAX_SIZE = 2**31 - 1  # E125: one concrete tensor dimension
MAX_DIM_TERMS = 64  # E126: terms of one symbolic size (`a * b + c` has 2)
MAX_DIM_FACTORS = 16  # E126: symbols multiplied in one term of a symbolic size
MAX_DIM_NESTING = 8  # E126: divisions that do not simplify, nested inside each other (`(a / b) / c`...)
MAX_EDGE_WEIGHT = 1e6  # E193: |w| of one WANN edge's own weight (`edge a -> b w=0.3`)

# A spec name that would become an attribute of a torch `nn.Module` (a module path component:
# statement targets, outputs, repeat names) may not collide with what nn.Module already has:
# `add_module("forward", ...)` raises KeyError, `training = ...` would replace the train flag.
# Pure data, so `check` never imports torch; tests/grammar/test_hostile_frontend.py compares it
# with the installed torch (every attribute of a fresh nn.Module and of a compiled network).
NN_MODULE_ATTRIBUTES = frozenset({
    # public methods and attributes
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters",
    "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook",
    "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory",
    "state_dict", "to", "to_empty", "train", "training", "type", "xpu", "zero_grad",
    # set on torch.nn.Module at run time by transformers when it initialises a model's weights
    "smart_apply",
    # its private machinery (`_modules = ...` would replace the module table)
    "_apply", "_backward_hooks", "_backward_pre_hooks", "_buffers", "_call_impl", "_compiled_call_impl",
    "_forward_hooks", "_forward_hooks_always_called", "_forward_hooks_with_kwargs", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_get_backward_hooks", "_get_backward_pre_hooks", "_get_name",
    "_is_full_backward_hook", "_load_from_state_dict", "_load_state_dict_post_hooks", "_load_state_dict_pre_hooks",
    "_maybe_warn_non_full_backward_hook", "_modules", "_named_members", "_non_persistent_buffers_set",
    "_parameters", "_register_load_state_dict_pre_hook", "_register_state_dict_hook", "_replicate_for_data_parallel",
    "_save_to_state_dict", "_slow_forward", "_state_dict_hooks", "_state_dict_pre_hooks", "_version",
    "_wrapped_call_impl",
    # what compiler/build.py's CompiledNetwork adds
    "_inputs", "_lookup", "_modules_by_name", "_output_names", "_outputs", "_plan", "_run_plan", "_steps",
    "check_inputs", "graph_name", "neuron_sites",
})


class LimitError(NetevoError):
    """A limit was reached: elaboration stops here (going on would repeat the cost)."""


def int_in_range(value: int) -> bool:
    return -MAX_INT <= value <= MAX_INT
