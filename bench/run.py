"""Runs the benchmarks of a4c-backup and prints a table; see BENCHMARKS.md for the figures.

    .venv/bin/python bench/run.py --sizes 0.1G,1G,5G --runs 3
    .venv/bin/python bench/run.py --sizes tiny=20M:2000 --runs 3 --only files,memory
    .venv/bin/python bench/run.py --sizes 0.1G --only files --cache cold

Needs the real Elasticsearch and Redis (scripts/services.sh start es redis) and root for
--cache cold (it empties the page cache). Everything is written under var/bench/<run>/
(the data dirs, the copies, the stores, a scratch SQLite database) and deleted at the end,
even when a step fails; the demo indices get a bench prefix and are deleted too. The results
(JSON and a PNG of time against size) go to --out (default bench/results/).
"""

from __future__ import annotations

import argparse
import json
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

SECTIONS = ("files", "memory", "es", "pages")


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
    parser.add_argument("--workers", type=int, default=4, help="backup_tree's thread pool")
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep var/bench/<run> (debugging)")
    parser.add_argument("--profile", action="store_true", help="pyinstrument one full backup")
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

    # data dir + cp copy + store + restored copy (+ cp back) at the same time
    needed = max((s.bytes for s in sizes), default=0) * 5 + GiB
    free = disk_free(BENCH_ROOT)
    if free < needed:
        say(f"{free / GiB:.1f} GiB free under {BENCH_ROOT}, {needed / GiB:.1f} GiB needed")
        return 1
    workspace = BENCH_ROOT / time.strftime("run-%Y%m%d-%H%M%S")
    workspace.mkdir(parents=True)
    say(f"workspace {workspace} ({free / GiB:.0f} GiB free)")
    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(["bench/run.py", *sys.argv[1:]]),
        "runs": args.runs,
        "sizes": {},
    }
    try:
        setup_django(workspace)
        for size in sizes:
            if {"files", "memory", "es"} & set(sections):
                results["sizes"][size.label] = run_size(size, workspace, sections, args)
        if "pages" in sections:
            from bench.pages import run_pages

            results["pages"] = run_pages(args.runs)
    finally:
        if not args.keep:
            rm(workspace)
            if not any(BENCH_ROOT.iterdir()):
                BENCH_ROOT.rmdir()
            say(f"removed {workspace}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    plot(results, args.out / "time-vs-size.png")
    say(f"results in {args.out / 'results.json'}, plot in {args.out / 'time-vs-size.png'}")
    return 0


def report(paths: list[Path], out: Path) -> int:
    """The table and plot of several runs (say a warm, a cold and a memory run) as one."""
    merged: dict = {"command": [], "sizes": {}}
    for path in paths:
        results = json.loads(path.read_text())
        merged["command"].append(results.get("command", ""))
        for label, size in results.get("sizes", {}).items():
            merged["sizes"].setdefault(label, {}).update(size)
        if "pages" in results:
            merged["pages"] = results["pages"]
    print(table(merged))
    out.mkdir(parents=True, exist_ok=True)
    plot(merged, out / "time-vs-size.png")
    say(f"plot in {out / 'time-vs-size.png'}")
    return 0


def run_size(size, workspace: Path, sections: list[str], args) -> dict:
    from backups.demo import generator as demo
    from backups.elastic import client as elastic
    from bench.es import run_es
    from bench.files import run_files
    from bench.memory import measure

    cluster = elastic.cluster()
    prefix = f"bench{int(time.time()) % 100000}-"
    data = workspace / f"data-{size.label}"
    result: dict = {"label": size.label}
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
        if args.profile:
            result["profile"] = profile(data, work, args.workers, args.out, size.label)
        if "files" in sections:
            for cache in ("warm", "cold") if args.cache == "both" else (args.cache,):
                say(f"{size.label}: files, {cache} cache, {args.runs} runs")
                result[f"files_{cache}"] = run_files(
                    data, work, args.runs, args.workers, cold=cache == "cold"
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
        rm(data)
        rm(workspace / "work")
    return result


def profile(data: Path, work: Path, workers: int, out: Path, label: str) -> str:
    from pyinstrument import Profiler

    from backups.storage.store import Store

    store_dir = work / "profile-store"
    profiler = Profiler()
    profiler.start()
    Store(store_dir).backup_tree("profiled", data, workers=workers)
    profiler.stop()
    rm(store_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"profile-backup-{label}.txt"
    path.write_text(profiler.output_text(unicode=True, show_all=False))
    say(f"  profile of a full backup in {path}")
    return str(path)


def table(results: dict) -> str:
    lines = [
        "| size | files | figure | tool | reference | ratio | aim |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for label, size in results["sizes"].items():
        for cache in ("warm", "cold"):
            f = size.get(f"files_{cache}")
            if not f:
                continue
            n = f"{f['files']:,}"
            tag = f"({cache} cache)"
            lines += [
                f"| {label} | {n} | full backup vs cp -a {tag} | {f['full']:.2f} s | "
                f"{f['cp']:.2f} s | {f['full_vs_cp']:.2f}x | <= 1.4x |",
                *tar_line(label, n, f, tag),
                *cpu_line(label, n, f, tag),
                f"| {label} | {n} | unchanged 2nd backup vs full {tag} | {f['unchanged']:.2f} s | "
                f"{f['full']:.2f} s | {f['unchanged_vs_full']:.1%} | <= 5%, 0 new bytes "
                f"(got {f['unchanged_new_bytes']}) |",
                f"| {label} | {n} | unchanged 2nd backup vs `find -printf` scan {tag} | "
                f"{f['unchanged']:.2f} s | {f['scan']:.2f} s | {f['unchanged_vs_scan']:.1f}x | "
                "(the floor) |",
                f"| {label} | {n} | 1% changed vs full {tag} | {f['one_percent']:.2f} s | "
                f"{f['full']:.2f} s | {f['one_percent_vs_full']:.1%} | ~1% + scan: "
                f"{f['one_percent_vs_predicted']:.2f}x of 1% full + unchanged scan |",
                f"| {label} | {n} | restore vs cp -a back {tag} | {f['restore']:.2f} s | "
                f"{f['cp_back']:.2f} s | {f['restore_vs_cp']:.2f}x | <= 1.4x |",
            ]
        if "memory" in size:
            m, t = size["memory"], size["memory_traced"]
            lines.append(
                f"| {label} | {m['files']:,} | peak memory of a full backup | "
                f"{m['rss_peak_mb']:.0f} MB RSS | {m['rss_before_mb']:.0f} MB at start | "
                f"+{m['rss_peak_mb'] - m['rss_before_mb']:.0f} MB | flat; Python peak "
                f"{t['python_peak_mb']:.1f} MB |"
            )
        if "es" in size:
            e = size["es"]
            what = f"{e['indices']} indices, {e['documents']:,} docs, {e['bytes'] / MiB:.0f} MiB"
            for kind in ("backup", "restore"):
                lines.append(
                    f"| {label} | - | ES-only {kind} vs bare API ({what}) | "
                    f"{e[f'tool_{kind}']:.2f} s | {e[f'bare_{kind}']:.2f} s | "
                    f"{e[f'{kind}_ratio']:.2f}x (+{e[f'{kind}_overhead']:.2f} s) | "
                    "<= 10% + 2 s |"
                )
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


def tar_line(label: str, n: str, f: dict, tag: str) -> list[str]:
    if "tar" not in f:
        return []
    return [
        f"| {label} | {n} | full backup vs tar -cf {tag} | {f['full']:.2f} s | "
        f"{f['tar']:.2f} s | {f['full_vs_tar']:.2f}x | (a second reference) |"
    ]


def cpu_line(label: str, n: str, f: dict, tag: str) -> list[str]:
    if "full_cpu" not in f:
        return []
    return [
        f"| {label} | {n} | CPU seconds: full backup vs cp -a {tag} | {f['full_cpu']:.2f} s | "
        f"{f['cp_cpu']:.2f} s | {f['full_cpu'] / max(f['cp_cpu'], 0.01):.1f}x | "
        "(explains the wall time) |",
        f"| {label} | {n} | CPU seconds: restore vs cp -a back {tag} | "
        f"{f['restore_cpu']:.2f} s | {f['cp_back_cpu']:.2f} s | "
        f"{f['restore_cpu'] / max(f['cp_back_cpu'], 0.01):.1f}x | (explains the wall time) |",
    ]


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[float, float]]] = {}
    for size in results["sizes"].values():
        for cache in ("warm", "cold"):
            f = size.get(f"files_{cache}")
            if not f:
                continue
            gib = f["bytes"] / GiB
            for key, name in (
                ("full", "a4c-backup: full backup"),
                ("cp", "cp -a"),
                ("tar", "tar -cf"),
                ("restore", "a4c-backup: restore"),
                ("cp_back", "cp -a back"),
                ("unchanged", "a4c-backup: unchanged 2nd backup"),
            ):
                if key in f:
                    series.setdefault(f"{name} ({cache})", []).append((gib, f[key]))
    if not series:
        return
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for name, points in sorted(series.items()):
        points.sort()
        style = "--" if name.startswith(("cp", "tar")) else "-"
        ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", label=name)
    ax.set_xlabel("data dir size (GiB)")
    ax.set_ylabel("seconds (median, including sync)")
    ax.set_title("a4c-backup vs cp -a and tar, demo data dir")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
