"""Spec text from matched fx nodes, with every module path kept (docs/language.md, "Names").

The module tree decides the structure: a layer `conv1` of the module being written becomes the statement
`conv1 = ...`; a child `nn.Sequential` called as a whole becomes a pipeline `features = x |> ... |> ...`
(`features.0`, `features.1`); any other child module becomes a block call `layer = name(x)` whose body is
written the same way, one level down (`layer.conv1`). Identical block bodies share one block. A path that
these rules cannot express is refused (E161); keys are never renamed afterwards.
"""
from __future__ import annotations

import re

import attrs

from ..ops.registry import REQUIRED, get_op
from ..errors import NetevoError
from ..ir.printer import value_name
from ..passes.elaborate import check_value_name
from ..passes.guards import check_module_name
from .blocks import DEFAULT, MARK, Instance, hole, input_dims, resolve
from .errors import import_error, identifier, fresh


@attrs.define
class Unit:
    """One step of a module's forward: a matched call (`node`), or a child module's whole call (`nodes`)."""

    child: str  # the name in the module being written ("" for a function call)
    node: object = None
    nodes: list = attrs.Factory(list)


def enclosing_modules(node) -> list[str]:
    """The module paths around a call, outermost first; a layer's own path is not among them."""
    if node.op in ("call_module", "get_attr"):  # a layer, or a parameter read in forward: its path is its own
        parts = str(node.target).split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts))]
    # with every container on the way, called or not: `blocks` of `for block in self.blocks` (an nn.ModuleList),
    # as a layer's own path gives it
    around: list[str] = []
    for path in node.meta.get("nn_module_stack") or {}:
        parts = path.split(".")
        around += [p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if p not in around]
    return around


class SpecWriter:
    def __init__(self, root, matched, inputs_of, shape_of):
        self.root = root  # the original module (the GraphModule keeps only the layers it calls)
        self.matched = matched  # node -> (op name, params)
        self.inputs_of = inputs_of  # node -> its tensor input nodes, in call order
        self.shape_of = shape_of  # node -> "[B, 3, 32, 32]"
        self.instances: dict[int, Instance] = {}  # block instances, written by `finish` (blocks.py)
        self.blocks: dict[str, str] = {}  # block name -> itself, once `finish` has run
        self.block_text: list[str] = []

    # --- structure --------------------------------------------------------------------------------

    def units(self, path: str, nodes) -> list[Unit]:
        depth = len(path.split(".")) if path else 0
        units: list[Unit] = []
        for node in nodes:
            around = enclosing_modules(node)
            if len(around) > depth:
                child = around[depth].rpartition(".")[2]
                if units and units[-1].node is None and units[-1].child == child:
                    units[-1].nodes.append(node)
                    continue
                if any(u.node is None and u.child == child for u in units):
                    raise import_error("E165", f"module `{around[depth]}` is called more than once", node,
                                       "a spec block instance is called once; shared modules are not imported")
                units.append(Unit(child, nodes=[node]))
            else:
                own = node.op in ("call_module", "get_attr")
                units.append(Unit(str(node.target).rpartition(".")[2] if own else "", node))
        return units

    def outside(self, nodes):
        """The tensors a group of calls reads from outside it (first use first), and the ones it gives back."""
        inside = set(nodes)
        ins = []
        for n in nodes:
            for a in self.inputs_of[n]:
                if a not in inside and a not in ins:
                    ins.append(a)
        outs = [n for n in nodes if any(u not in inside and (u in self.matched or u.op == "output")
                                        for u in n.users)]
        return ins, outs

    # --- text -------------------------------------------------------------------------------------

    def body(self, path: str, units, local: dict, used: set) -> list[str]:
        lines = []
        for unit in units:
            full = f"{path}.{unit.child}" if path else unit.child
            if unit.node is not None:
                op, params = self.matched[unit.node]
                args = tuple(self._name(local, a, unit.node) for a in self.inputs_of[unit.node])
                name = unit.child if unit.child else fresh(op, used)
                if unit.child:
                    _check_nameable(full, name, unit.node)
                    if name in local.values():  # a second call of a layer without weights (`self.relu`)
                        name = fresh(name if identifier(name) else f"{op}_", used)
                    used.add(name)
                lines.append(f"  {value_name(name)} = {call(op, args, params)}")
                local[unit.node] = name
                continue
            ins, outs = self.outside(unit.nodes)
            if not outs:  # a branch whose value nothing uses: an auxiliary classifier (training_branches.py)
                outs = [n for n in unit.nodes if not n.users][-1:]
            if len(outs) != 1:
                raise import_error("E161", f"module `{full}` gives {len(outs)} tensors to the rest of the model",
                                   unit.nodes[0], "a block returns one tensor")
            _check_nameable(full, unit.child, unit.nodes[0])
            if unit.child in local.values():
                raise import_error("E161", f"module path `{full}` cannot be named in a spec: `{unit.child}` is "
                                   "taken there", unit.nodes[0])
            used.add(unit.child)
            module = self.root.get_submodule(full)
            args = [self._name(local, a, unit.nodes[0]) for a in ins]
            if _numbered_sequential(module) and identifier(unit.child):
                if len(args) != 1:
                    raise import_error("E161", f"`{full}` takes {len(args)} tensors", unit.nodes[0])
                lines.append(f"  {unit.child} = {args[0]} |> " + " |> ".join(self.stages(full, unit.nodes)))
            else:
                lines.append(f"  {value_name(unit.child)} = {self.block(full, module, unit.nodes, ins, outs[0], args)}")
            local[outs[0]] = unit.child
        return lines

    def stages(self, path, nodes) -> list[str]:
        stages = []
        for position, unit in enumerate(self.units(path, nodes)):
            full = f"{path}.{unit.child}"
            first = unit.node if unit.node is not None else unit.nodes[0]
            if unit.child != str(position):
                raise import_error("E161", f"module path `{full}` cannot be named in a spec: the children of "
                                   f"`{path}` are not called once each, in order", first,
                                   "call an nn.Sequential as a whole")
            if unit.node is not None:
                op, params = self.matched[unit.node]
                stages.append(call(op, (), params))
                if not get_op(op).module:  # a module-less stage holds the place of its index
                    stages.append("identity()")
                continue
            module = self.root.get_submodule(full)
            ins, outs = self.outside(unit.nodes)
            if len(ins) != 1 or len(outs) != 1:  # a nested nn.Sequential is a block of `0` = ..., `1` = ...
                raise import_error("E161", f"module path `{full}` cannot be named in a spec yet: a child of an "
                                   "nn.Sequential taking or giving several tensors", first)
            stages.append(self.block(full, module, unit.nodes, ins, outs[0], []))
        return stages

    def block(self, path, module, nodes, ins, out, args) -> str:
        """The call of a block for this child (a hole until `finish` knows every instance of its class)."""
        used = {n for n, _ in module.named_children()} | {n for n, _ in module.named_parameters(recurse=False)} \
            | {n for n, _ in module.named_buffers(recurse=False)}
        local, inputs = {}, []
        for a in ins:
            local[a] = fresh("x", used)
            sizes = [int(d) for d in self.shape_of(a)[1:-1].split(", ")[1:]]
            inputs.append((local[a], input_dims(len(sizes), used), sizes))
        lines = self.body(path, self.units(path, nodes), local, used)
        instance = Instance(len(self.instances), type(module).__name__.lower(), inputs, lines,
                            value_name(local[out]), list(args),
                            {int(i) for line in lines for i in re.findall(r"\x01(\d+)\x01", line)})
        self.instances[instance.id] = instance
        return hole(instance.id)

    def finish(self, lines: list[str]) -> list[str]:
        """Write the blocks (one per class and shape of body, with parameters); the network's lines filled in."""
        self.block_text, names, lines = resolve(self.instances, lines)
        self.blocks = {name: name for name in names}
        return lines

    @staticmethod
    def _name(local, node, at):
        if node not in local:
            raise import_error("E161", f"`{at.target}` reads a tensor from outside its module", at)
        return value_name(local[node])


def _check_nameable(path, name, node):
    """A child's name as a statement target: an identifier, or quoted (`block1-0`, `0`, `input`); else E161."""
    try:
        check_value_name(name, None)
        check_module_name(name, None, "value name")
    except NetevoError as e:
        raise import_error("E161", f"module path `{path}` cannot be named in a spec: {e.message}", node,
                           "keys are never renamed after the import; rename the module in PyTorch") from None


def _numbered_sequential(module) -> bool:
    """An nn.Sequential of children 0, 1, ...: a pipeline. One with named children (densenet's) is a block."""
    import torch.nn as nn

    return isinstance(module, nn.Sequential) and all(name.isdigit() for name in module._modules)


_INFIX = {"add": "+", "mul": "*"}


def call(op_name, inputs, params) -> str:
    """An op call; a keyword with a default is marked (blocks.py) and written only where it is not the default."""
    if op_name in _INFIX and len(inputs) >= 2:
        return f" {_INFIX[op_name]} ".join(inputs)  # the residual `x + y`, as people write it
    op = get_op(op_name)
    parts = list(inputs)
    for p in op.params:
        if p.name not in params:
            continue
        if p.default is REQUIRED:
            parts.append(f"{p.name}={value(params[p.name])}")
        else:
            parts.append(f"{MARK}{p.name}={value(params[p.name])}{DEFAULT}{value(p.default)}{MARK}")
    return f"{op_name}({', '.join(parts)})"


def value(v) -> str:
    from ..ir.dims import Dim

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Dim):
        return str(v)
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    return repr(v)
