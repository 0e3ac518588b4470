"""`netevo import MODULE:CALLABLE --input NAME=SHAPE ... -o model.net`: a PyTorch model as a formatted spec.

Nothing is written unless the whole model imports: the spec (and `--weights`) appear together or not at all.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path

from ..errors import NetevoError


def add_parser(subparsers):
    p = subparsers.add_parser("import", help="import a PyTorch nn.Module as a .net spec (torch.fx); docs/import.md")
    p.add_argument("target", metavar="MODULE:CALLABLE", help="a Python module and a callable in it that returns the "
                   "nn.Module (a class or a factory), e.g. mymodels:ResNet or torchvision.models:resnet18")
    p.add_argument("--args", default=None, metavar="JSON",
                   help="arguments for the callable: a JSON list (positional) or object (keywords), "
                        'e.g. \'{"classes": 10}\'')
    p.add_argument("--input", action="append", required=True, metavar="NAME=SHAPE",
                   help="an example input of forward, batch first: x=2,3,224,224 "
                        "(once per forward argument, by its name); input_ids=2,16:int100 gives integer token ids "
                        "below 100")
    p.add_argument("-o", "--output", required=True, help="the .net file to write")
    p.add_argument("--name", help="the network's name (default: the class name, lower case)")
    p.add_argument("--weights", metavar="FILE", help="also write the model's state_dict (torch.save) to FILE")
    p.set_defaults(func=cmd_import)
    return p


def _usage(message: str, hint: str | None = None) -> NetevoError:
    return NetevoError(message, hint=hint, code="E166")


def _load_callable(target: str):
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise _usage(f"`{target}` is not MODULE:CALLABLE", "e.g. mymodels:SmallCNN")
    sys.path.insert(0, os.getcwd())  # like `python -m`: the user's own files next to them
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # the user's module may raise anything on import
        raise _usage(f"cannot import `{module_name}`: {type(e).__name__}: {e}") from None
    finally:
        sys.path.remove(os.getcwd())
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
    if not callable(fn):
        raise _usage(f"`{module_name}` has no callable `{attr}`")
    return fn


def _example_inputs(specs):
    import torch

    inputs = {}
    for text in specs:
        m = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*=\s*\[?\s*(\d+(?:\s*,\s*\d+)*)\s*\]?\s*(?::int(\d+))?\s*", text)
        if not m:
            raise _usage(f"--input `{text}` is not NAME=SHAPE", "e.g. --input x=2,3,32,32 (batch first), or "
                         "ids=2,16:int100 for token ids below 100")
        shape = [int(d) for d in m.group(2).split(",")]
        inputs[m.group(1)] = torch.randint(0, int(m.group(3)), shape) if m.group(3) else torch.randn(*shape)
    return inputs


def cmd_import(args) -> int:
    from .. import format as format_spec
    from .fx_import import from_module

    try:
        call_args = json.loads(args.args) if args.args else []
    except json.JSONDecodeError as e:
        raise _usage(f"--args is not JSON: {e}") from None
    if not isinstance(call_args, (list, dict)):
        raise _usage("--args is a JSON list or object")
    factory = _load_callable(args.target)
    inputs = _example_inputs(args.input)
    try:
        model = factory(**call_args) if isinstance(call_args, dict) else factory(*call_args)
    except Exception as e:  # the user's constructor
        raise _usage(f"`{args.target}` failed: {type(e).__name__}: {e}") from None
    import torch

    if not isinstance(model, torch.nn.Module):
        raise _usage(f"`{args.target}` returned a {type(model).__name__}, not an nn.Module")
    text = format_spec(from_module(model.eval(), inputs, name=args.name))
    out = Path(args.output)
    _write(out, text.encode())
    if args.weights:
        import io

        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        _write(Path(args.weights), buffer.getvalue())
    print(f"wrote {out}" + (f" and {args.weights}" if args.weights else ""))
    return 0


def _write(path: Path, data: bytes):
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        raise _usage(f"cannot write {path}: {e.strerror}") from None
