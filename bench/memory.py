"""Peak memory of one full backup, measured in a fresh process.

Run as `python -m bench.memory DATA_DIR STORE_DIR [tracemalloc]`; prints one JSON line:
the peak resident set (VmHWM; getrusage's ru_maxrss too) before and after the backup, and,
with tracemalloc, the peak of Python allocations during it. bench/run.py calls it for each size.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.common import PROJECT, rm


def measure(data: Path, store_dir: Path, traced: bool) -> dict:
    """Runs the backup in a child process; returns what it printed."""
    args = [sys.executable, "-m", "bench.memory", str(data), str(store_dir)]
    if traced:
        args.append("tracemalloc")
    try:
        done = subprocess.run(args, cwd=PROJECT, capture_output=True, text=True, check=True)
    finally:
        rm(store_dir)
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """This process image's peak resident set (VmHWM).

    Not getrusage's ru_maxrss alone: Linux keeps it across execve, so a child started by a
    big parent reports the parent's peak. VmHWM starts afresh with the new image.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _main(data: str, store_dir: str, traced: bool) -> None:
    from backups.storage import Store

    before_mb = peak_rss_mb()
    if traced:
        import tracemalloc

        tracemalloc.start()
    started = time.perf_counter()
    summary = Store(Path(store_dir)).backup_tree("memory", Path(data), workers=4)
    seconds = time.perf_counter() - started
    result = {
        "files": summary.files,
        "bytes": summary.bytes,
        "seconds": seconds,
        "rss_before_mb": before_mb,
        "rss_peak_mb": peak_rss_mb(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if traced:
        result["python_peak_mb"] = tracemalloc.get_traced_memory()[1] / (1 << 20)
    print(json.dumps(result))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "tracemalloc")
