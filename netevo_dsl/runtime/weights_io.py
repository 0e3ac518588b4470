"""Weight files of trained candidates: tensors and plain data through torch.save, read back with
`torch.load(weights_only=True)`, which refuses anything but tensors, numbers, strings, lists, tuples and
dicts, so a weight file cannot run code when it is loaded. Files are written atomically (a temporary file,
then a rename), so a run killed while saving never leaves half a file behind.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from ..errors import NetevoError

FORMAT = "netevo-weights-1"


class WeightsFileError(NetevoError):
    code = "E133"


def save_weights(path, state: dict, opt_state: dict | None = None) -> None:
    path = Path(path)
    payload = {"format": FORMAT, "state": {k: v.detach().cpu() for k, v in state.items()},
               "opt_state": _cpu(opt_state)}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_weights(path) -> tuple[dict, dict | None]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsFileError(f"no weights file {str(path)!r}", None, "give a file written by save_weights") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise WeightsFileError(f"{str(path)!r} is not a netevo weights file: {str(e).splitlines()[0][:200]}", None,
                               "weights are read with weights_only=True; arbitrary pickled objects are refused") \
            from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or not isinstance(payload.get("state"), dict):
        raise WeightsFileError(f"{str(path)!r} is not a netevo weights file ({FORMAT})", None,
                               "give a file written by save_weights")
    return payload["state"], payload["opt_state"]


def _cpu(value):
    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value


__all__ = ["save_weights", "load_weights", "WeightsFileError"]
