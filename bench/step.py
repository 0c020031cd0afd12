"""One a4c-backup step in a fresh process, for bench/process.py to measure like any tool.

    python -m bench.step backup DATA_DIR STORE NAME [PREVIOUS] --workers N
    python -m bench.step restore STORE NAME TARGET --workers N [--local]

--local: the store's backups were made on this machine, as a restore command knows of its
own (Backup.made_here): a live file the backup read is not read again.

Prints one JSON line: what the step did, and the peak resident set of this process.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backups.storage import CopyOptions, Store, WorkingTree  # noqa: E402 - the project must be importable first


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=("backup", "restore"))
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--local", action="store_true")
    args = parser.parse_args()
    if args.step == "backup":
        data, store, name, *previous = args.paths
        summary = Store(Path(store)).backup_tree(
            name, Path(data), previous=previous[0] if previous else None, workers=args.workers
        )
        result = {
            "files": summary.files,
            "bytes": summary.bytes,
            "read": summary.read,
            "new_bytes": summary.new_bytes,
        }
    else:
        store, name, target = args.paths
        restored = WorkingTree(Store(Path(store)), Path(target)).restore(
            name, options=CopyOptions(workers=args.workers), local=args.local
        )
        result = {"files": restored.files, "bytes": restored.bytes}
    print(json.dumps({**result, "rss_peak_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main()
