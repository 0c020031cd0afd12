"""Demo data: a made-up but realistic Alien4Cloud 3.x installation to back up and restore.

Owns the generator behind ``manage.py demo_data``, the tests and the benchmarks: the ~30 A4C
indices of backups/demo/mappings.py with the documents of backups/demo/documents.py, and a
data dir laid out as A4C lays it out (csar/, artifacts/, plugins/, images/, git/, and the
work/, tmp/ and upload/ caches),
with the awkward cases a backup must carry: symlinks, empty directories, a non-ASCII file
name, executable scripts and read-only git objects.

The seed decides everything: the same seed gives the same documents and the same file
contents. Files are streamed to disk and documents indexed in batches, so several GiB never
sit in memory. It reaches Elasticsearch only through backups.elastic.client.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import shutil
import struct
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from backups import sizes
from backups.demo.documents import WORDS, Installation, documents, tosca_yaml
from backups.demo.mappings import BASE_TIME, GENERATOR, MAPPINGS, aliases
from backups.elastic import client as elastic
from backups.errors import InvalidInput, StorageError

# Written first into a data dir the generator fills: --reset empties no other.
MARKER = ".made-by-a4c-backup-demo"

DemoProgress = Callable[[str, int, int], None]  # (phase, done, total)

MiB = 1024 * 1024
GiB = 1024 * MiB
BATCH = 500
# (bytes, files) of the named sizes; an int size asks for that many bytes instead.
SIZES = {"small": (1_500_000, 300), "medium": (100 * MiB, 10_000), "large": (GiB, 50_000)}
# The file counts the benchmarks want for a byte size, interpolated between (and beyond) them.
FILES_FOR_BYTES = ((GiB // 10, 10_000), (GiB, 50_000), (5 * GiB, 200_000))
ZIP_TIME = (2023, 3, 1, 8, 0, 0)


# --- sizes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """How much to generate: bytes and files on disk, type-library csars in the indices."""

    bytes: int
    files: int
    csars: int  # type libraries; applications add their own topology archives


MAX_DEMO_BYTES = 100 * 2**30  # a demo is for trying the tool and its benchmarks, not a disk test


def parse_size(text: str) -> str | int:
    """'small', 'medium', 'large', a byte count, or a count with K, M or G (binary units)."""
    text = text.strip().lower()
    if text in SIZES:
        return text
    value = sizes.parse_size(text) or 0
    if not 0 < value <= MAX_DEMO_BYTES:
        raise InvalidInput(
            f"Size {text!r} is not small, medium, large or a byte count like 500M or 1.5G "
            f"(at most {sizes.format_size(MAX_DEMO_BYTES)})."
        )
    return value


def plan(size: str | int = "small", files: int | None = None) -> Plan:
    """The plan for a named size or a byte count; ``files`` overrides the file count.

    The file count is a target for the whole tree: the installation's own archives, plugins
    and git objects come first (about 250 files), artifacts fill the rest up to the count.
    """
    if isinstance(size, int) and size <= 0:
        raise InvalidInput(f"A size must be positive, not {size}.")
    if isinstance(size, str):
        size = parse_size(size)
    if isinstance(size, str):
        nbytes, nfiles = SIZES[size]
    else:
        nbytes = size
        (b0, f0), (b1, f1) = FILES_FOR_BYTES[:2] if size < GiB else FILES_FOR_BYTES[1:]
        nfiles = max(80, round(f0 * (size / b0) ** (math.log(f1 / f0) / math.log(b1 / b0))))
    if files is not None:
        if files < 1:
            raise InvalidInput(f"A file count must be positive, not {files}.")
        nfiles = files
    csars = min(400, max(8, round(20 * math.sqrt(nfiles / 300))))
    return Plan(bytes=nbytes, files=nfiles, csars=csars)


@dataclass
class DemoSummary:
    data_dir: Path
    indices: dict[str, int] = field(default_factory=dict)  # index name -> documents
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def documents(self) -> int:
        return sum(self.indices.values())

    def __str__(self) -> str:
        return (
            f"{len(self.indices)} indices, {self.documents} documents, {self.files} files, "
            f"{self.bytes / MiB:.1f} MiB in {self.data_dir} ({self.seconds:.1f} s)"
        )


# --- files ---------------------------------------------------------------------------------
BINARY_NAMES = ("app.war", "install.tar.gz", "bundle.jar", "data.bin", "disk.qcow2.part")
TEXT_NAMES = ("init.sql", "settings.properties", "values.yaml", "README.txt", "run.log")
UNICODE_NAME = "résumé-übersicht.txt"


def png(rng: random.Random, size: int = 16) -> bytes:
    """A real PNG: two colours split along the diagonal, written by hand."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ink, paper = bytes(rng.randbytes(3)), bytes(rng.randbytes(3))
    rows = b"".join(
        b"\x00" + b"".join(ink if x > y else paper for x in range(size)) for y in range(size)
    )
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def _zip(entries: Iterable[tuple[str, bytes, int]]) -> bytes:
    """A zip whose bytes depend only on its entries (fixed dates), so that seeds reproduce it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _script(csar: dict, step: str) -> bytes:
    return (
        f"#!/bin/bash\n# {step} for {csar['name']} {csar['version']}\nset -euo pipefail\n"
        f'echo "{step} ${{NODE:-node}} on $(hostname)"\n'
    ).encode()


class _Tree:
    """Writes files under ``root``, counting them; every mtime follows from the file's rank."""

    def __init__(self, root: Path, progress: DemoProgress | None, expected: int):
        self.root, self.progress, self.expected = root, progress, expected
        self.files = self.bytes = 0

    def write(self, rel: str, data: bytes | str, mode: int = 0o644) -> None:
        self.stream(rel, [data.encode() if isinstance(data, str) else data], mode)

    def stream(self, rel: str, chunks: Iterable[bytes], mode: int = 0o644) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for piece in chunks:
                out.write(piece)
                self.bytes += len(piece)
        self.files += 1
        moment = BASE_TIME.timestamp() + self.files * 61
        os.utime(path, (moment, moment))
        os.chmod(path, mode)
        if self.progress and self.files % 250 == 0:
            self.progress("files", self.files, max(self.expected, self.files))

    def mkdir(self, rel: str) -> None:
        (self.root / rel).mkdir(parents=True, exist_ok=True)

    def symlink(self, rel: str, target: str) -> None:
        (self.root / rel).symlink_to(target)


def _git_object(tree: _Tree, repo: str, kind: str, body: bytes) -> bytes:
    """Stores a loose object as git does (zlib, read-only) and returns its binary sha1."""
    raw = f"{kind} {len(body)}\0".encode() + body
    sha = hashlib.sha1(raw).hexdigest()
    tree.write(f"{repo}/objects/{sha[:2]}/{sha[2:]}", zlib.compress(raw), mode=0o444)
    return bytes.fromhex(sha)


def _git_repository(tree: _Tree, inst: Installation, app_id: str, when: datetime) -> None:
    repo = f"git/{app_id}.git"
    tree.write(f"{repo}/HEAD", "ref: refs/heads/master\n")
    tree.write(
        f"{repo}/config",
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n",
    )
    tree.write(f"{repo}/description", f"Deployment configuration of {app_id}\n")
    tree.write(f"{repo}/info/exclude", "# git ls-files --others --exclude-from=.git/info/exclude\n")
    for empty in ("refs/tags", "objects/pack", "objects/info"):
        tree.mkdir(f"{repo}/{empty}")
    app = next(a for a in inst.apps if a["id"] == app_id)
    inputs = "".join(f"{e['name']}:\n  location: {e['location'][1]}\n" for e in app["envs"])
    blobs = {"README.md": f"# {app_id}\n\nInputs per environment.\n", "inputs.yml": inputs}
    entries = b"".join(
        b"100644 " + name.encode() + b"\0" + _git_object(tree, repo, "blob", text.encode())
        for name, text in sorted(blobs.items())
    )
    root = _git_object(tree, repo, "tree", entries).hex()
    stamp = f"{int(when.timestamp())} +0000"
    who = f"admin <admin@example.com> {stamp}"
    commit = f"tree {root}\nauthor {who}\ncommitter {who}\n\nUpdate {app_id} inputs\n"
    tree.write(
        f"{repo}/refs/heads/master", _git_object(tree, repo, "commit", commit.encode()).hex() + "\n"
    )


def _text_pool(rng: random.Random) -> bytes:
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(4, 14))) for _ in range(1500)]
    return ("\n".join(lines) + "\n").encode()


def _content(
    rng: random.Random, pool: bytes, size: int, header: bytes, binary: bool
) -> Iterator[bytes]:
    """Exactly ``size`` bytes: random for archives and images, words from the pool for text."""
    first = header[:size]
    yield first
    left = size - len(first)
    while left > 0:
        if binary:
            piece = rng.randbytes(min(left, MiB))
        else:
            start = rng.randrange(len(pool))
            piece = pool[start : start + min(left, 64 * 1024)]
        yield piece
        left -= len(piece)


def write_files(
    root: Path,
    inst: Installation,
    plan: Plan,
    rng: random.Random,
    progress: DemoProgress | None = None,
) -> _Tree:
    """Lays out the data dir of ``inst``; ``plan`` sets how many files and bytes in all."""
    tree = _Tree(root, progress, plan.files)
    root.mkdir(parents=True, exist_ok=True)
    for c in inst.csars:
        folder = f"csar/{c['name']}/{c['version']}"
        entries = [(f"{c['name']}.yml", tosca_yaml(c).encode(), 0o644)]
        if c["kind"] == "types":
            entries.append(("images/icon.png", png(rng), 0o644))
            entries += [(f"scripts/{step}.sh", _script(c, step), 0o755) for step in c["scripts"]]
        tree.write(f"{folder}/{c['name']}.zip", _zip(entries))
        for name, data, mode in entries:
            tree.write(f"{folder}/expanded/{name}", data, mode)
        listing = {"name": c["name"], "version": c["version"], "files": [e[0] for e in entries]}
        tree.write(f"{folder}/content.json", json.dumps(listing, indent=2) + "\n")
    latest = {c["name"]: c["version"] for c in inst.csars}  # versions come in ascending order
    for name, version in latest.items():
        tree.symlink(f"csar/{name}/latest", version)
    for app in inst.apps:
        tree.write(f"images/{app['image']}.png", png(rng, 64))
    for plugin, version in inst.plugins:
        descriptor = f"id: {plugin}\nname: {plugin}\nversion: {version}\n"
        manifest = f"Manifest-Version: 1.0\nImplementation-Title: {plugin}\n"
        classes = [
            (f"lib/{plugin}-{version}.jar", rng.randbytes(rng.randint(4_000, 20_000)), 0o644)
        ]
        jar = [
            ("META-INF/MANIFEST.MF", manifest.encode(), 0o644),
            ("plugin.yml", descriptor.encode(), 0o644),
        ]
        tree.write(f"plugins/{plugin}/{version}/{plugin}-{version}.zip", _zip(jar + classes))
        tree.write(f"plugins/{plugin}/{version}/plugin.yml", descriptor)
        # A4C expands every plugin into its work/ cache.
        tree.write(f"work/plugins/{plugin}-{version}/plugin.yml", descriptor)
        tree.write(f"work/plugins/{plugin}-{version}/META-INF/MANIFEST.MF", manifest)
    for app_id in inst.git_repos:
        _git_repository(tree, inst, app_id, inst.t0 + timedelta(days=rng.randint(0, 600)))
    for i in range(3):
        tree.write(f"tmp/a4c-{rng.randrange(16**8):08x}.tmp", rng.randbytes(rng.randint(100, 3000)))
        if i < 2:
            tree.write(
                f"upload/{uuid.UUID(int=rng.getrandbits(128), version=4)}.part",
                rng.randbytes(rng.randint(1000, 9000)),
            )
    _fill_artifacts(tree, rng, plan)
    return tree


def _fill_artifacts(tree: _Tree, rng: random.Random, plan: Plan) -> None:
    """Spends what is left of the file and byte budget on artifacts/<id>/<file>, heavy-tailed."""
    count = max(8, plan.files - tree.files)
    budget = max(plan.bytes - tree.bytes, count * 256)
    weights = [min(rng.paretovariate(1.3), 2000.0) for _ in range(count)]
    scale = budget / sum(weights)
    pool = _text_pool(rng)
    done = 0
    while done < count:
        folder = f"artifacts/{str(uuid.UUID(int=rng.getrandbits(128), version=4))}"
        names = rng.sample(BINARY_NAMES + TEXT_NAMES, min(count - done, rng.randint(1, 4)))
        if done == 0:
            names[0] = UNICODE_NAME
        for name in names:
            size = max(16, int(weights[done] * scale))
            binary = name in BINARY_NAMES
            header = f"{folder}/{name}\n".encode()
            tree.stream(f"{folder}/{name}", _content(rng, pool, size, header, binary))
            done += 1


# --- the entry points ----------------------------------------------------------------------
def index_names(prefix: str = "") -> list[str]:
    return [prefix + name for name in MAPPINGS]


def present(
    data_dir: Path, prefix: str = "", cluster: elastic.Cluster | None = None
) -> tuple[list[str], int]:
    """The demo indices that exist already, and how many files the data dir holds."""
    found = _existing(cluster or elastic.cluster(), prefix)
    files = 0
    if Path(data_dir).is_dir():
        for _, _, names in os.walk(data_dir):
            files += len(names)
    return found, files


def _existing(cluster: elastic.Cluster, prefix: str) -> list[str]:
    wanted = set(index_names(prefix))
    return [name for name in cluster.indices(include=[prefix + "*"]) if name in wanted]


def _check_reset(cluster: elastic.Cluster, existing: list[str], data_dir: Path) -> None:
    """--reset deletes only what the generator made: never a real installation's data."""
    meta = cluster.index_meta(existing)
    foreign = [name for name in existing if meta.get(name, {}).get("generator") != GENERATOR]
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise InvalidInput(
            f"--reset deletes only indices the demo generator made, and {shown} were not "
            "(their mapping has no demo _meta): they may be a real A4C's. Delete them yourself "
            "if you mean it, or choose another --prefix."
        )
    if data_dir.is_dir() and any(data_dir.iterdir()) and not (data_dir / MARKER).is_file():
        raise InvalidInput(
            f"--reset empties only a data dir the demo generator made, and {data_dir} has no "
            f"{MARKER} file: it may be a real A4C's. Empty it yourself if you mean it, or "
            "choose another --data-dir."
        )


def _empty(data_dir: Path) -> None:
    for child in data_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _load(
    cluster: elastic.Cluster, name: str, mapping: dict, docs: list, alias: dict | None
) -> int:
    settings = {"number_of_shards": 1, "number_of_replicas": 0}
    cluster.create_index(name, mapping, settings=settings, aliases=alias)
    loaded = 0
    for start in range(0, len(docs), BATCH):
        batch = docs[start : start + BATCH]
        loaded += cluster.bulk_index(name, batch, refresh=start + BATCH >= len(docs))
    return loaded


def generate(
    data_dir: Path,
    *,
    size: str | int = "small",
    files: int | None = None,
    prefix: str = "",
    seed: int = 1,
    reset: bool = False,
    cluster: elastic.Cluster | None = None,
    progress: DemoProgress | None = None,
) -> DemoSummary:
    """Creates the demo indices (named prefix + A4C name) and fills ``data_dir``.

    Refuses when one of the indices exists or ``data_dir`` is not empty, unless ``reset``,
    which deletes those indices and everything inside ``data_dir`` first. ``progress`` is
    called as (phase, done, total), phase "indices" then "files".
    """
    started = time.monotonic()
    wanted = plan(size, files)
    cluster = cluster or elastic.cluster()
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise InvalidInput(f"The data dir {data_dir} is a file, not a directory.")
    existing = _existing(cluster, prefix)
    if reset:
        _check_reset(cluster, existing, data_dir)
        cluster.delete_indices(existing)
        if data_dir.is_dir():
            try:
                _empty(data_dir)
            except OSError as exc:
                raise StorageError(
                    f"Cannot empty the data dir {data_dir}: {exc.strerror} ({exc.filename})."
                ) from exc
    elif existing:
        shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise InvalidInput(
            f"Elasticsearch already holds {len(existing)} of the demo indices ({shown}): "
            "use --reset to delete and regenerate them, or another --prefix."
        )
    elif data_dir.is_dir() and any(data_dir.iterdir()):
        raise InvalidInput(
            f"The data dir {data_dir} is not empty: use --reset to empty it and regenerate, "
            "or choose another --data-dir."
        )

    summary = DemoSummary(data_dir=data_dir)
    inst = Installation(random.Random(f"{seed}:elasticsearch"), wanted.csars)
    all_aliases = aliases(prefix)
    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = {}
        # Documents are drawn here, in order, so that the seed alone decides them.
        for name, docs in documents(inst):
            index = prefix + name
            jobs[index] = pool.submit(
                _load, cluster, index, MAPPINGS[name], list(docs), all_aliases.get(index)
            )
        for done, (index, job) in enumerate(jobs.items(), 1):
            summary.indices[index] = job.result()
            if progress:
                progress("indices", done, len(jobs))
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / MARKER).write_text(
            "Made by a4c-backup's demo generator: `manage.py demo_data --reset` may empty it.\n"
        )
        tree = write_files(data_dir, inst, wanted, random.Random(f"{seed}:files"), progress)
    except OSError as exc:
        raise StorageError(
            f"Cannot write the demo data under {data_dir}: {exc.strerror} ({exc.filename})."
        ) from exc
    summary.files, summary.bytes = tree.files, tree.bytes
    if progress:
        progress("files", tree.files, tree.files)
    summary.seconds = time.monotonic() - started
    return summary
