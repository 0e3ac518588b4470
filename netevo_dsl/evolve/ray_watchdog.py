"""Ends a locally started Ray with the run that started it, even when the run is killed with
SIGKILL (Ray's raylet, GCS server, dashboard and runtime-env agents otherwise live on as orphans).

Run as a script, in a session of its own: `python ray_watchdog.py DRIVER_PID`. While the driver
lives it notes the driver's descendants (with their start times, so that a reused pid is never
hit); once the driver is gone it kills those still running. Linux only (reads /proc); elsewhere
it exits at once. No netevo import: it must start in milliseconds.
"""
from __future__ import annotations

import os
import signal
import sys
import time

POLL_SECONDS = 0.5


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), fields[19]


def descendants(root: int) -> dict[int, str]:
    """{pid: start time} of every descendant of `root`."""
    parent_of = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                parent_of[int(name)] = stat
    found, frontier = {}, [root]
    while frontier:
        p = frontier.pop()
        for pid, (ppid, start) in parent_of.items():
            if ppid == p and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def watch(driver: int) -> None:
    me = os.getpid()
    seen: dict[int, str] = {}
    while _stat(driver) is not None:
        seen.update(descendants(driver))
        time.sleep(POLL_SECONDS)
    seen.update({pid: start for pid, start in descendants(me).items()})
    for pid, start in seen.items():
        stat = _stat(pid)
        if pid != me and stat is not None and stat[1] == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    if sys.platform.startswith("linux") and len(sys.argv) == 2:
        watch(int(sys.argv[1]))
