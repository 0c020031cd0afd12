"""Measuring one command as a process: wall time with its writes synced, CPU seconds (user
and system), peak memory, and, once, its system calls (strace -c).

Every tool of the comparison (cp, find, restic and a4c-backup itself, run by bench/step.py)
is measured the same way, so that no side is timed in-process while the other pays for
starting up. /usr/bin/time reports the peak resident set: getrusage's figure for a child of
a large Python process would carry the parent's peak across vfork and execve.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from backups.storage.fileio import sync_filesystem


@dataclasses.dataclass
class Measured:
    seconds: float
    user: float
    system: float
    rss_mb: float
    stdout: str

    @property
    def cpu(self) -> float:
        return self.user + self.system

    def json(self) -> dict:
        """The last line the command printed, as JSON (bench/step.py prints its summary)."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def measure(args: list[str], sync: Path, cwd: Path | None = None, env=None) -> Measured:
    """Runs args to the end; the time includes a syncfs of the filesystem holding sync."""
    sync_filesystem(sync)
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        timed = ["/usr/bin/time", "-o", report.name, "-f", "%U %S %M", *args]
        started = time.perf_counter()
        done = subprocess.run(timed, cwd=cwd, env=env, capture_output=True, text=True)
        sync_filesystem(sync)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
        user, system, rss_kb = report.read().split()[-3:]
    return Measured(seconds, float(user), float(system), int(rss_kb) / 1024, done.stdout)


def syscalls(args: list[str], cwd: Path | None = None, env=None) -> dict[str, int]:
    """The system calls of args and of every thread and child it starts (strace -c -f)."""
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as report:
        subprocess.run(
            ["strace", "-c", "-f", "-o", report.name, *args],
            cwd=cwd,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        counts: dict[str, int] = {}
        for line in report.read().splitlines():
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(parts) >= 5 and parts[3].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3])
    return counts


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}
