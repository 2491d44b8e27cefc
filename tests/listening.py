"""Exit 0 if process PID or one of its descendants listens on a TCP port.

The examples' harness asks this of a server that prints nothing when it is
ready (HAProxy in the foreground): Linux's /proc only, no ss or lsof.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _family(pid: int) -> set[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(ppid, []).append(int(entry.name))
    family, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in family:
            family.add(p)
            todo += children.get(p, [])
    return family


def _listening_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A":  # TCP_LISTEN
                inodes.add(fields[9])
    return inodes


def listens(pid: int) -> bool:
    wanted = {f"socket:[{i}]" for i in _listening_inodes()}
    for p in _family(pid):
        try:
            fds = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{p}/fd/{fd}") in wanted:
                    return True
            except OSError:
                continue
    return False


if __name__ == "__main__":
    sys.exit(0 if listens(int(sys.argv[1])) else 1)
