"""What the benchmark scripts share: the scratch workspace, Django on a scratch database,
timing in-process with a final sync (the Elasticsearch steps), medians, and the sizes.

Nothing here runs in the test suite: bench/run.py is the only entry point.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BENCH_ROOT = PROJECT / "var" / "bench"
GiB = 1 << 30
MiB = 1 << 20

# The named sizes of the issue: bytes and files, as the demo generator makes them.
SIZES = {
    "0.1G": (GiB // 10, 10_000),
    "1G": (GiB, 50_000),
    "5G": (5 * GiB, 200_000),
}


@dataclasses.dataclass(frozen=True)
class Size:
    label: str
    bytes: int
    files: int


def parse_sizes(text: str) -> list[Size]:
    """'0.1G,1G,5G', or label=bytes:files items like 'tiny=20M:2000'."""
    sizes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item in SIZES:
            sizes.append(Size(item, *SIZES[item]))
            continue
        label, _, spec = item.rpartition("=")
        nbytes, _, files = spec.partition(":")
        units = {"k": 1 << 10, "m": MiB, "g": GiB}
        unit = units.get(nbytes[-1:].lower(), 1)
        number = nbytes[:-1] if unit != 1 else nbytes
        sizes.append(Size(label or item, int(float(number) * unit), int(files)))
    return sizes


def sync() -> None:
    os.sync()


def drop_caches() -> bool:
    """Empties the page cache (root only), so the next step reads from the disk."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed(step: Callable[[], object], *, cold: bool = False) -> tuple[float, object]:
    """Seconds taken by step() and a sync(2) after it, so that no side leaves writes behind."""
    if cold:
        drop_caches()
    else:
        sync()
    started = time.perf_counter()
    result = step()
    sync()
    return time.perf_counter() - started, result


def rm(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        subprocess.run(["chmod", "-R", "u+rwX", str(path)], check=True)
        shutil.rmtree(path)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def disk_free(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def setup_django(workspace: Path) -> None:
    """Django on a scratch SQLite database in the workspace, the real ES and Redis."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "a4c_backup.settings")
    os.environ["DATABASE_URL"] = f"sqlite:///{workspace / 'bench.sqlite3'}"
    os.environ["A4C_DATA_DIR"] = str(workspace / "unused-data-dir")
    os.environ["A4C_BACKUP_DIR"] = str(workspace / "unused-storage")
    os.environ["A4C_LEGACY_CONFIG"] = str(workspace / "no-legacy-config.yml")
    sys.path.insert(0, str(PROJECT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
