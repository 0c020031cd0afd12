"""Runs the benchmarks of a4c-backup and prints a table; see BENCHMARKS.md for the figures.

    bash bench/setup.sh        # once: restic, strace and the bench extra
    .venv/bin/python bench/run.py --sizes 0.1G,1G,5G --runs 3
    .venv/bin/python bench/run.py --root /dev/shm/a4c-bench --sizes 1G,5G --runs 3
    .venv/bin/python bench/run.py --sizes tiny=20M:2000 --runs 3 --only files,memory
    .venv/bin/python bench/run.py --sizes 0.1G --only files --cache cold
    .venv/bin/python bench/run.py --root /dev/shm/a4c-bench --sizes 1G --only commands --runs 3

Needs the real Elasticsearch and Redis (scripts/services.sh start es redis) and root for
--cache cold (it empties the page cache). Everything is written under --root (default
var/bench/, on the project's disk; a tmpfs such as /dev/shm takes the disk's noise out):
<root>/run-<time>/ holds the data dirs, the copies, the stores, restic's repositories and a
scratch SQLite database, and each copy, store and repository is deleted as soon as it is
measured; the workspace is deleted at the end, even when a step fails, unless --keep, which
keeps it and the generated data dirs in it. The demo indices get a bench prefix and are
deleted too. The results (JSON and a PNG of time against size) go to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402 - the project must be importable first
    BENCH_ROOT,
    PROJECT,
    GiB,
    MiB,
    disk_free,
    drop_caches,
    parse_sizes,
    rm,
    say,
    setup_django,
)

SECTIONS = ("files", "commands", "memory", "es", "pages")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.1G,1G,5G", help="0.1G,1G,5G or label=20M:2000")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (medians)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="files,memory,es,pages")
    parser.add_argument(
        "--cache",
        choices=("warm", "cold", "both"),
        default="warm",
        help="warm: data in the page cache; cold: emptied before each timed step (root)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="file threads (default: A4C_FILE_WORKERS)"
    )
    parser.add_argument("--root", type=Path, default=BENCH_ROOT, help="where to work")
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "results")
    parser.add_argument(
        "--keep", action="store_true", help="keep the workspace and the generated data dirs"
    )
    parser.add_argument("--no-restic", action="store_true", help="leave restic out")
    parser.add_argument("--no-borg", action="store_true", help="leave borg out (commands)")
    parser.add_argument(
        "--no-syscalls", action="store_true", help="skip the strace count (first size only)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="pyinstrument one full backup and one restore (files); cProfile of the restore "
        "command over unchanged data (commands)",
    )
    parser.add_argument(
        "--from-json", nargs="+", type=Path, metavar="RESULTS",
        help="measure nothing: merge these results.json files, print the table and plot",
    )  # fmt: skip
    args = parser.parse_args()
    if args.from_json:
        return report(args.from_json, args.out)
    # a kill (timeout, Ctrl-C from a wrapper) still runs the clean-up below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}")
    sizes = parse_sizes(args.sizes)
    if args.cache != "warm" and not drop_caches():
        parser.error("--cache cold needs root: it writes /proc/sys/vm/drop_caches")

    if not args.no_restic and not shutil.which("restic"):
        parser.error("restic is not installed: run bash bench/setup.sh (or pass --no-restic)")
    if "commands" in sections and not shutil.which("rsync"):
        parser.error("rsync is not installed: run bash bench/setup.sh")
    if "commands" in sections and not args.no_borg and not shutil.which("borg"):
        parser.error("borg is not installed: run bash bench/setup.sh (or pass --no-borg)")
    if not args.no_syscalls and not shutil.which("strace"):
        parser.error("strace is not installed: run bash bench/setup.sh (or --no-syscalls)")
    # the data dir and one copy of it (a store, a repository, a restore or a cp) at a time
    needed = max((s.bytes for s in sizes), default=0) * 2 + GiB
    root = args.root.resolve()
    free = disk_free(root)
    if free < needed:
        say(f"{free / GiB:.1f} GiB free under {root}, {needed / GiB:.1f} GiB needed")
        return 1
    workspace = root / time.strftime("run-%Y%m%d-%H%M%S")
    workspace.mkdir(parents=True)
    say(f"workspace {workspace} ({free / GiB:.0f} GiB free)")
    started = time.monotonic()
    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "root": str(root),
        "workers": args.workers,
        "command": " ".join(["bench/run.py", *sys.argv[1:]]),
        "runs": args.runs,
        "sizes": {},
    }
    try:
        setup_django(workspace)
        if args.workers is None:
            from django.conf import settings

            args.workers = results["workers"] = settings.A4C_FILE_WORKERS
        for first, size in zip([True] + [False] * len(sizes), sizes, strict=False):
            if {"files", "commands", "memory", "es"} & set(sections):
                results["sizes"][size.label] = run_size(size, workspace, sections, args, first)
                args.out.mkdir(parents=True, exist_ok=True)  # what is measured is kept as it goes
                (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        if "pages" in sections:
            from bench.pages import run_pages

            results["pages"] = run_pages(args.runs)
    finally:
        if args.keep:
            say(f"kept {workspace} and the data dirs in it")
        else:
            rm(workspace)
            if root == BENCH_ROOT and not any(BENCH_ROOT.iterdir()):
                BENCH_ROOT.rmdir()
            say(f"removed {workspace}")
    results["minutes"] = round((time.monotonic() - started) / 60, 1)
    say(f"measured in {results['minutes']} min")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    plot(results, args.out / "time-vs-size.png")
    say(f"results in {args.out / 'results.json'}")
    return 0


def report(paths: list[Path], out: Path) -> int:
    """The table and plot of several runs (say a warm, a cold and a memory run) as one."""
    merged: dict = {"command": [], "sizes": {}}
    for path in paths:
        results = json.loads(path.read_text())
        merged["command"].append(results.get("command", ""))
        merged.setdefault("root", results.get("root", "var/bench"))
        for label, size in results.get("sizes", {}).items():
            merged["sizes"].setdefault(label, {}).update(size)
        if "pages" in results:
            merged["pages"] = results["pages"]
    print(table(merged))
    out.mkdir(parents=True, exist_ok=True)
    plot(merged, out / "time-vs-size.png")
    say(f"plot in {out / 'time-vs-size.png'}")
    return 0


def run_size(size, workspace: Path, sections: list[str], args, first: bool) -> dict:
    from backups.demo import generator as demo
    from backups.elastic import client as elastic
    from bench.es import run_es
    from bench.files import count_syscalls, run_files
    from bench.memory import measure

    cluster = elastic.cluster()
    prefix = f"bench{int(time.time()) % 100000}-"
    data = workspace / f"data-{size.label}"
    result: dict = {"label": size.label}
    restic = not args.no_restic
    try:
        say(f"{size.label}: generating {size.bytes / MiB:.0f} MiB in {size.files} files")
        started = time.perf_counter()
        made = demo.generate(
            data, size=size.bytes, files=size.files, prefix=prefix, cluster=cluster
        )
        say(f"  {made} (generated in {time.perf_counter() - started:.0f} s)")
        result.update(generated_files=made.files, generated_bytes=made.bytes)
        work = workspace / "work"
        work.mkdir(exist_ok=True)
        if args.profile and "files" in sections:
            result["profile"] = profile(data, work, args.out, size.label, args.workers)
        if "files" in sections:
            for cache in ("warm", "cold") if args.cache == "both" else (args.cache,):
                say(f"{size.label}: files, {cache} cache, {args.runs} runs")
                result[f"files_{cache}"] = run_files(
                    data, work, args.runs, args.workers, restic, cold=cache == "cold"
                )
            if first and not args.no_syscalls:
                say(f"{size.label}: system calls per file (strace -c -f, once)")
                result["syscalls"] = count_syscalls(data, work, args.workers, restic)
        if "commands" in sections:
            from bench.commands import run_commands

            say(f"{size.label}: the commands as typed, beside the inner loop, {args.runs} runs")
            peers = {"restic"} - ({"restic"} if args.no_restic else set())
            peers |= set() if args.no_borg else {"borg"}
            database = os.environ["DATABASE_URL"]
            profile_to = None
            if args.profile:
                args.out.mkdir(parents=True, exist_ok=True)
                profile_to = args.out / f"profile-restore-command-{size.label}.txt"
            result["commands"] = run_commands(
                data, work, args.runs, args.workers, database, peers, profile_to
            )
        if "memory" in sections:
            say(f"{size.label}: peak memory of a full backup")
            result["memory"] = measure(data, work / "memory-store", traced=False)
            result["memory_traced"] = measure(data, work / "memory-store", traced=True)
            say(
                f"  peak RSS {result['memory']['rss_peak_mb']:.0f} MB "
                f"(interpreter {result['memory']['rss_before_mb']:.0f} MB), Python peak "
                f"{result['memory_traced']['python_peak_mb']:.1f} MB"
            )
        if "es" in sections:
            say(f"{size.label}: Elasticsearch only, {args.runs} runs")
            result["es"] = run_es(prefix, size.label, args.runs)
    finally:
        cluster.client.indices.delete(
            index=f"{prefix}*", expand_wildcards="all", ignore_unavailable=True
        )
        if not args.keep:
            rm(data)
        rm(workspace / "work")
    return result


def profile(data: Path, work: Path, out: Path, label: str, workers: int) -> str:
    """pyinstrument of one full backup and one restore, with the workers measured: the files
    the page cache holds are copied in the profiled thread, so the profile shows their work
    (a file handed to a worker would be missing from it). The data dir is restored into its
    own place."""
    from pyinstrument import Profiler

    from backups.storage import CopyOptions, Store, WorkingTree
    from bench.files import tree_totals

    store = Store(work / "profile-store")
    expected = tree_totals(data)
    texts = []
    for what in ("backup", "restore"):
        if what == "restore":
            rm(data)
        profiler = Profiler()
        profiler.start()
        if what == "backup":
            store.backup_tree("profiled", data, workers=workers)
        else:
            WorkingTree(store, data).restore("profiled", options=CopyOptions(workers=workers))
        profiler.stop()
        texts.append(f"== {what} ==\n" + profiler.output_text(unicode=True, show_all=False))
    rm(store.root)
    if tree_totals(data) != expected:
        raise RuntimeError("the profiled restore did not bring the data dir back")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"profile-{label}.txt"
    path.write_text("\n".join(texts))
    say(f"  profile of a full backup and a restore in {path}")
    return str(path)


def seconds(f: dict, key: str) -> str:
    """'7.71 s (3.5 + 7.2 CPU s, 80 MB)': wall, user + system CPU, peak resident set."""
    if key not in f:
        return "-"
    return (
        f"{f[key]:.2f} s ({f[key + '_user']:.1f} + {f[key + '_sys']:.1f} CPU s, "
        f"{f[key + '_rss_mb']:.0f} MB)"
    )


def ratio(f: dict, key: str) -> str:
    return f"{f[key]:.2f}x" if key in f else "-"


def table(results: dict) -> str:
    lines = [
        "| size | files | step | a4c-backup | reference | restic | vs reference | vs restic "
        "| aim |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, size in results["sizes"].items():
        for cache in ("warm", "cold"):
            f = size.get(f"files_{cache}")
            if not f:
                continue
            n = f"{f['files']:,}"
            tag = f" ({cache} cache)" if cache == "cold" else ""
            lines += [
                f"| {label} | {n} | full backup{tag} | {seconds(f, 'full')} | cp -a "
                f"{seconds(f, 'cp')} | {seconds(f, 'restic_full')} | {ratio(f, 'full_vs_cp')} "
                f"| {ratio(f, 'full_vs_restic')} | <= 1.5x cp, < 1x restic |",
                f"| {label} | {n} | unchanged 2nd backup{tag} | {seconds(f, 'unchanged')} | "
                f"find -printf {seconds(f, 'scan')} | {seconds(f, 'restic_unchanged')} | "
                f"{ratio(f, 'unchanged_vs_scan')} | {ratio(f, 'unchanged_vs_restic')} | "
                f"<= 2x the scan; 0 new bytes (got {f['unchanged_new_bytes']}) |",
                f"| {label} | {n} | restore of files{tag} | {seconds(f, 'restore')} | cp -a "
                f"{seconds(f, 'cp_back')} | {seconds(f, 'restic_restore')} | "
                f"{ratio(f, 'restore_vs_cp')} | {ratio(f, 'restore_vs_restic')} | "
                "<= 1.5x cp, < 1x restic |",
            ]
        if "memory" in size:
            m, t = size["memory"], size["memory_traced"]
            lines.append(
                f"| {label} | {m['files']:,} | peak memory of a full backup (in-process) | "
                f"{m['rss_peak_mb']:.0f} MB RSS | {m['rss_before_mb']:.0f} MB at start | - | "
                f"+{m['rss_peak_mb'] - m['rss_before_mb']:.0f} MB | - | < 100 MB; Python peak "
                f"{t['python_peak_mb']:.1f} MB |"
            )
        if "es" in size:
            e = size["es"]
            what = f"{e['indices']} indices, {e['documents']:,} docs, {e['bytes'] / MiB:.0f} MiB"
            for kind in ("backup", "restore"):
                lines.append(
                    f"| {label} | - | ES-only {kind} ({what}) | {e[f'tool_{kind}']:.2f} s | "
                    f"bare API {e[f'bare_{kind}']:.2f} s | - | "
                    f"{e[f'{kind}_overhead']:+.2f} s | - | <= +0.3 s |"
                )
    if any("commands" in size for size in results["sizes"].values()):
        from bench.commands import commands_table, growth_table

        lines += ["", *commands_table(results)]
        growth = growth_table(results)
        lines += ["", *growth] if growth else []
    calls = [(label, size.get("syscalls")) for label, size in results["sizes"].items()]
    calls = [(label, c) for label, c in calls if c]
    if calls:
        lines += ["", "| size | step | system calls per file | the most frequent, per file |"]
        lines.append("| --- | --- | ---: | --- |")
        for label, found in calls:
            for step, c in found.items():
                top = ", ".join(f"{name} {n:.1f}" for name, n in c["top_per_file"].items())
                lines.append(f"| {label} | {step} | {c['per_file']:.1f} | {top} |")
    if "pages" in results:
        lines += [
            "",
            "| page | URL | HTTP | SQL queries | server time |",
            "| --- | --- | --- | ---: | ---: |",
        ]
        for label, p in results["pages"].items():
            lines.append(
                f"| {label} | `{p['url']}` | {p['status']} | {p['queries']} | {p['ms']:.0f} ms |"
            )
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    series: dict[str, list[tuple[float, float]]] = {}
    for size in results["sizes"].values():
        for cache in ("warm", "cold"):
            f = size.get(f"files_{cache}")
            if not f:
                continue
            gib = f["bytes"] / GiB
            for key, name in (
                ("full", "a4c-backup: full backup"),
                ("restic_full", "restic: full backup"),
                ("cp", "cp -a"),
                ("restore", "a4c-backup: restore"),
                ("restic_restore", "restic: restore"),
                ("unchanged", "a4c-backup: unchanged 2nd backup"),
                ("restic_unchanged", "restic: unchanged 2nd backup"),
            ):
                if key in f:
                    series.setdefault(f"{name} ({cache})", []).append((gib, f[key]))
    if not series:
        return  # nothing of the files section: no plot (nor matplotlib) needed
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for name, points in sorted(series.items()):
        points.sort()
        style = "--" if name.startswith("cp") else ":" if name.startswith("restic") else "-"
        ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", label=name)
    ax.set_xlabel("data dir size (GiB)")
    ax.set_ylabel("seconds (median, including syncfs)")
    where = results.get("root", "var/bench")
    ax.set_title(f"a4c-backup vs cp -a and restic, demo data dir under {where}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
