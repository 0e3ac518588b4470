"""Run folders and their checkpoints: atomic writes, a validated, versioned, pickle-free schema,
append-only files cut back to the checkpoint on resume, disk errors as one-line user errors.

Generic over what is evolved: a checkpoint is `{"schema", "version", "kind", "spec_hash",
"spec_items", "appended", **payload}`; each kind of run (WANN/transformer genomes here, layered
networks in `network_run.py`) passes the fields of its payload to `load_checkpoint` as a
{name: check} table (see `integer`, `text_list`, ...). Every error names the file and the field.

A checkpoint is written to a temporary file, fsync'ed and renamed over the old one, so a run
killed (or out of disk) at any instant leaves either the previous or the new checkpoint, never
half of one. Append-only files (`log.jsonl`, ...) are written before the checkpoint that counts
their lines, so on resume they are cut back to exactly those lines.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from ..errors import NetevoError, UsageError

SCHEMA = "netevo.checkpoint"
VERSION = 2
CHECKPOINT = "checkpoint.json"

# codes (docs/errors.md)
UNREADABLE, BAD_FIELD, INCONSISTENT, DISK, FOLDER, SPEC_CHANGED = "E111", "E112", "E113", "E114", "E115", "E116"


def _mode() -> int:
    """The mode a plain `open(..., "w")` would give (0644 under the usual umask); mkstemp makes 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that the file is always either the old or the new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _mode())
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def append_lines(path: Path, lines: list[str]) -> None:
    """Append whole lines to an append-only file of the run folder (cut back on resume)."""
    if lines:
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))


def count_lines(path: Path) -> int:
    """Complete lines of an append-only file (0 when it does not exist)."""
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def truncate_appended(folder: Path, counts: dict[str, int], checkpoint: Path | None = None) -> None:
    """Cut each append-only file `name` of `folder` back to its first `counts[name]` lines (what the
    checkpoint saw); a file with fewer lines than that means the folder was edited: an error."""
    for name, n in counts.items():
        path = Path(folder) / name
        try:
            data = path.read_bytes() if path.exists() else b""
        except OSError as e:
            raise disk_error(e, folder) from None
        lines = data.split(b"\n")[:-1]  # complete lines only; a torn last line goes
        if len(lines) < n:
            raise UsageError(f"{checkpoint or folder / CHECKPOINT}: counts {n} line(s) of {name}, the file has "
                             f"{len(lines)}", hint="the run folder was edited or mixed with another run; "
                             "start a new run", code=INCONSISTENT)
        kept = b"".join(line + b"\n" for line in lines[:n])
        if kept != data:
            write_atomic(path, kept.decode("utf-8", errors="replace"))


# --- validation ------------------------------------------------------------------------------------

Check = Callable[[object], str | None]  # a value -> None when valid, else what is wrong with it


def integer(minimum: int = 0, maximum: int | None = None) -> Check:
    def check(v):
        if not isinstance(v, int) or isinstance(v, bool):
            return f"must be an integer, got {_show(v)}"
        if v < minimum or (maximum is not None and v > maximum):
            return f"must be in [{minimum}, {maximum if maximum is not None else '...'}], got {v}"
        return None
    return check


def text_list(min_items: int = 0) -> Check:
    def check(v):
        if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
            return f"must be a list of texts, got {_show(v)}"
        if len(v) < min_items:
            return f"must hold at least {min_items} item(s), got {len(v)}"
        return None
    return check


def optional(inner: Check) -> Check:
    return lambda v: None if v is None else inner(v)


def number_rows(v) -> str | None:
    """A list of lists of numbers (or null for a non-finite value), all rows the same length."""
    if not isinstance(v, list) or not all(isinstance(r, list) for r in v):
        return f"must be a list of rows of numbers, got {_show(v)}"
    if len({len(r) for r in v}) > 1:
        return "rows must have the same length"
    if not all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)) for r in v for x in r):
        return "must hold numbers only"
    return None


def mapping(v) -> str | None:
    return None if isinstance(v, dict) else f"must be a mapping, got {_show(v)}"


def numpy_rng_state(v) -> str | None:
    """The state of numpy's default bit generator (PCG64), as `bit_generator.state` gives it."""
    if not isinstance(v, dict) or v.get("bit_generator") != "PCG64":
        return f"must be a PCG64 generator state, got {_show(v)}"
    inner = v.get("state")
    if not isinstance(inner, dict) or not all(isinstance(inner.get(k), int) and not isinstance(inner.get(k), bool)
                                              and inner.get(k) >= 0 for k in ("state", "inc")):
        return "`state` must hold non-negative integers `state` and `inc`"
    if not isinstance(v.get("has_uint32"), int) or not isinstance(v.get("uinteger"), int):
        return "`has_uint32` and `uinteger` must be integers"
    return None


def _show(v) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


BASE_FIELDS: dict[str, Check] = {
    "kind": lambda v: None if isinstance(v, str) and v else f"must be a run kind, got {_show(v)}",
    "spec_hash": lambda v: None if isinstance(v, str) and len(v) == 64 else f"must be a sha256 hex digest, got {_show(v)}",
    "spec_items": lambda v: None if isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
    else "must map item names to hashes",
    "appended": lambda v: None if isinstance(v, dict) and all(integer()(n) is None for n in v.values())
    else "must map file names to non-negative line counts",
}


LEGACY_FIELDS = ("generation", "population", "rng", "log_lines")


def save_checkpoint(path: Path, state: dict, *, kind: str | None = None) -> None:
    """Write a checkpoint atomically. `state` holds the payload and, for a run that resumes,
    `spec_hash`/`spec_items` (`spec_fingerprint`) and `appended` ({file: lines})."""
    header = {"schema": SCHEMA, "version": VERSION}
    if kind is not None:
        header["kind"] = kind
    write_atomic(path, json.dumps({**header, **state}, sort_keys=True))


def load_checkpoint(path: Path, fields: dict[str, Check] | None = None, *, kind: str | None = None) -> dict:
    """Read and validate a checkpoint: JSON of our schema and version, then every field of
    BASE_FIELDS and `fields` (the kind's payload) present and valid. Errors name file and field.
    Without `fields`, only the presence of LEGACY_FIELDS is checked (the earlier behaviour)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no checkpoint at {path}", hint="is this a run folder? it should hold checkpoint.json",
                         code=UNREADABLE) from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a checkpoint", code=UNREADABLE) from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}", code=UNREADABLE) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{path}: corrupt or partial checkpoint ({type(e).__name__}: {str(e)[:80]})",
                         hint="the file is not valid UTF-8 JSON; restore it, or start a new run",
                         code=UNREADABLE) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UsageError(f"{path}: not a netevo checkpoint", hint="expected the checkpoint.json of a run folder",
                         code=UNREADABLE)
    if data.get("version") != VERSION:
        raise UsageError(f"{path}: checkpoint version {_show(data.get('version'))} is not supported "
                         f"(this netevo reads version {VERSION})",
                         hint="finish the run with the netevo that started it, or start a new run", code=UNREADABLE)
    if fields is None:  # the call of version 1: the common fields must be present
        fields = {k: (lambda v: None) for k in LEGACY_FIELDS}
    else:
        fields = {**BASE_FIELDS, **fields}
    for name, check in fields.items():
        if name not in data:
            raise field_error(path, name, "is missing")
        problem = check(data[name])
        if problem:
            raise field_error(path, name, problem)
    if kind is not None and data.get("kind") != kind:
        raise field_error(path, "kind", f"is `{data.get('kind')}`, this command resumes `{kind}` runs")
    return data


def field_error(path: Path, field: str, problem: str) -> UsageError:
    return UsageError(f"{path}: field `{field}` {problem}",
                      hint="the checkpoint was edited or damaged; restore it, or start a new run", code=BAD_FIELD)


# --- the spec a run was started from ------------------------------------------------------------


def spec_fingerprint(spec) -> dict:
    """{"spec_hash": canonical hash of the spec, "spec_items": {item: hash}} (comments and layout do
    not count, so a reformatted spec resumes; any change of meaning is refused)."""
    from ..ir.hashing import canonical_hash

    items = {}
    for item in spec.items:
        name = getattr(item, "name", None) or getattr(item, "target", None)
        if name is not None:
            items[f"{_item_kind(item)} {name}"] = canonical_hash(item)
    return {"spec_hash": canonical_hash(spec), "spec_items": items}


def _item_kind(item) -> str:
    kind = type(item).__name__.lower()
    return {"wanngenome": "genome", "transformergenome": "genome", "mutateblock": "mutate",
            "evolveblock": "evolve"}.get(kind, kind)


def check_same_spec(state: dict, spec, path: Path) -> None:
    """Refuse to resume a run whose spec changed, naming what changed."""
    now = spec_fingerprint(spec)
    if now["spec_hash"] == state["spec_hash"]:
        return
    before = state["spec_items"]
    changed = sorted(k for k in set(before) | set(now["spec_items"]) if before.get(k) != now["spec_items"].get(k))
    what = ", ".join(f"`{k}`" + (" (added)" if k not in before else " (removed)" if k not in now["spec_items"]
                                 else "") for k in changed) or "the spec's other items"
    raise UsageError(f"the spec changed since the run in {path.parent} started: {what}",
                     hint="resume with the spec as it was, or start a new run with --out", code=SPEC_CHANGED)


# --- disk and folder errors ----------------------------------------------------------------------

_WHY = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
        errno.EPERM: "permission denied", errno.ENOTDIR: "a path component is a file, not a folder",
        errno.EISDIR: "a folder is in the way", errno.EIO: "input/output error"}


def disk_error(error: OSError, folder: Path, generation: int | None = None) -> UsageError:
    """One line for an OSError met while writing the run folder, saying the last checkpoint is intact."""
    why = _WHY.get(error.errno, error.strerror or str(error))
    where = f" ({error.filename})" if error.filename else ""
    intact = (f"the last checkpoint (after generation {generation}) is intact" if generation
              else "no generation was checkpointed yet")
    return UsageError(f"cannot write the run folder {folder}: {why}{where}; {intact}",
                      hint=f"fix the cause, then continue with --resume {folder}", code=DISK)


@contextmanager
def reporting_disk_errors(folder: Path, generation: Callable[[], int | None] = lambda: None):
    """Turn an OSError inside the block into `disk_error` (generation(): the last checkpointed one)."""
    try:
        yield
    except NetevoError:
        raise
    except OSError as e:
        raise disk_error(e, Path(folder), generation()) from None


# --- preparing a run folder ----------------------------------------------------------------------


def prepare_run_folder(folder: Path, owned: tuple[str, ...], *, overwrite: bool = False) -> None:
    """Make `folder` ready for a new run: created if missing; a file there, or a folder holding
    files, is refused unless `overwrite`, which removes the run's own files (`owned` names, files or
    folders) and leaves anything else alone."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file, not a folder", hint="pick a folder path with --out", code=FOLDER)
    if folder.is_dir():
        try:
            present = list(folder.iterdir())
        except OSError as e:
            raise disk_error(e, folder) from None
        if present and not overwrite:
            raise UsageError(f"run folder {folder} exists and is not empty",
                             hint="resume it with --resume, pick another --out, or pass --overwrite", code=FOLDER)
        with reporting_disk_errors(folder):
            remove_owned(folder, owned)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"--out {folder}: a path component is a file", code=FOLDER) from None
    except OSError as e:
        raise disk_error(e, folder) from None


def remove_owned(folder: Path, owned: tuple[str, ...]) -> None:
    """Remove the run's own files and folders (and leftover temporary files) from `folder`."""
    for entry in Path(folder).iterdir():
        if entry.name in owned or (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


__all__ = ["CHECKPOINT", "SCHEMA", "VERSION", "append_lines", "check_same_spec", "count_lines", "disk_error",
           "field_error", "integer", "load_checkpoint", "mapping", "number_rows", "numpy_rng_state", "optional",
           "prepare_run_folder", "remove_owned", "reporting_disk_errors", "save_checkpoint", "spec_fingerprint",
           "text_list", "truncate_appended", "write_atomic"]
