"""Which process holds something (a sync lease, a rate slot), and whether that process is gone.

A holder is written as MACHINE:pid. A holder on this machine whose process no longer runs (killed,
crashed, OOM) can be taken from at once instead of blocking a restarted worker until its lease expires.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


# Where this process runs: host and PID namespace (two containers may share a hostname, not a namespace).
MACHINE = f"{socket.gethostname()[:80]}:{_pid_namespace()}"
PROCESS = f"{MACHINE}:{os.getpid()}"


def gone(holder: str) -> bool:
    """True when `holder` was a process of this machine that no longer runs (killed, crashed, OOM).

    A holder on another machine, or one that can't be judged, is never taken from: it is left to expire.
    """
    prefix = f"{MACHINE}:"
    if not holder.startswith(prefix):
        return False
    pid_text = holder[len(prefix) :].split(":", 1)[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    try:  # a killed child its parent hasn't reaped yet still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")
