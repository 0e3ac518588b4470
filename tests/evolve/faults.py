"""Helpers for the fault tests: a run folder's deterministic contents, and a patch that makes the
Nth write in a folder fail with a given errno (as a full disk or a read-only file system would)."""
from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

# files whose content must not depend on when or how often a run was interrupted
DETERMINISTIC = ("config.yaml", "log.jsonl", "failures.jsonl", "champion.net", "champion.py")


def run_contents(folder: Path) -> dict[str, bytes]:
    """Deterministic files of a run folder: the list above, every champion and the Pareto front."""
    folder = Path(folder)
    out = {name: (folder / name).read_bytes() for name in DETERMINISTIC if (folder / name).exists()}
    for sub in ("champions", "pareto"):
        for path in sorted((folder / sub).glob("*")):
            out[f"{sub}/{path.name}"] = path.read_bytes()
    return out


class WriteFaults:
    """Counts writes under `folder` (open for writing, os.open with a write flag, os.replace,
    os.mkdir, os.unlink) and raises OSError(errno) on the `fail_at`-th one (1-based; 0: never)."""

    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def __init__(self, folder: Path, fail_at: int = 0, code: int = errno.ENOSPC):
        self.folder = str(Path(folder).resolve()) + os.sep
        self.fail_at, self.code, self.calls, self.failed = fail_at, code, 0, None

    def _hit(self, path) -> None:
        if not isinstance(path, (str, os.PathLike)):
            return  # an already open file descriptor
        if not str(Path(path).resolve()).startswith(self.folder):
            return
        self.calls += 1
        if self.calls == self.fail_at:
            self.failed = str(path)
            raise OSError(self.code, os.strerror(self.code), str(path))

    def install(self, monkeypatch) -> "WriteFaults":
        real_open, real_os_open = builtins.open, os.open
        real_replace, real_mkdir, real_unlink = os.replace, os.mkdir, os.unlink

        def fake_open(file, mode="r", *args, **kwargs):
            if any(c in mode for c in "wax+"):
                self._hit(file)
            return real_open(file, mode, *args, **kwargs)

        def fake_os_open(path, flags, *args, **kwargs):
            if flags & self.WRITE_FLAGS:
                self._hit(path)
            return real_os_open(path, flags, *args, **kwargs)

        def fake_replace(src, dst, *args, **kwargs):
            self._hit(dst)
            return real_replace(src, dst, *args, **kwargs)

        def fake_mkdir(path, *args, **kwargs):
            if not os.path.exists(path):  # an existing folder gives EEXIST even on a read-only disk
                self._hit(path)
            return real_mkdir(path, *args, **kwargs)

        def fake_unlink(path, *args, **kwargs):
            self._hit(path)
            return real_unlink(path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
        monkeypatch.setattr(os, "replace", fake_replace)
        monkeypatch.setattr(os, "mkdir", fake_mkdir)
        monkeypatch.setattr(os, "unlink", fake_unlink)
        return self
