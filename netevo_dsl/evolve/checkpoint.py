"""Atomic, pickle-free checkpoints of a run: population as .net text, scores, RNG state, log position.

A checkpoint is written to a temporary file and renamed over the old one, so a
run killed at any instant leaves either the previous or the new checkpoint,
never half of one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..errors import UsageError

SCHEMA = "netevo.checkpoint"
VERSION = 1


def write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: Path, state: dict) -> None:
    write_atomic(path, json.dumps({"schema": SCHEMA, "version": VERSION, **state}, sort_keys=True))


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no checkpoint at {path}", hint="is this a run folder? it should hold checkpoint.json") from None
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: corrupt or partial checkpoint ({e})",
                         hint="the file is not valid JSON; start a new run or restore the file") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UsageError(f"{path}: not a netevo checkpoint", hint="expected the checkpoint.json of a run folder")
    if data.get("version") != VERSION:
        raise UsageError(f"{path}: checkpoint version {data.get('version')} is not supported (expected {VERSION})")
    for key in ("generation", "population", "rng", "log_lines"):
        if key not in data:
            raise UsageError(f"{path}: corrupt checkpoint, `{key}` is missing", hint="start a new run")
    return data
