"""Shared helpers for compiler tests: exec emitted source, example inputs for a network's declared shapes."""
import torch

from netevo_dsl.compiler.emit import class_name
from netevo_dsl.ir.dims import Dim

SMALL = {"B": 2, "H": 32, "W": 32, "T": 8, "L": 16}


def exec_source(source: str, name: str = "<emitted>") -> dict:
    namespace: dict = {}
    exec(compile(source, name, "exec"), namespace)  # noqa: S102 - our own emitted code under test
    return namespace


def emitted_network(source: str, network_name: str):
    return exec_source(source)[class_name(network_name)]()


def example_inputs(graph, dtype=torch.float64):
    inputs = []
    for inp in graph.inputs:
        shape = [int(Dim.of(d).substitute({k: Dim.of(v) for k, v in SMALL.items()})) for d in inp.shape]
        is_tokens = any(n.op == "embedding" and inp.name in n.inputs for n in graph.nodes)
        if is_tokens:
            vocab = next(n.param_dict["vocab"] for n in graph.nodes if n.op == "embedding" and inp.name in n.inputs)
            inputs.append(torch.randint(0, int(vocab), shape))
        else:
            inputs.append(torch.randn(shape, dtype=dtype))  # a list, so a 0-d input works too
    return inputs
