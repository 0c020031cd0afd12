"""Reads a shared-filesystem snapshot repository's files, without the cluster.

An off-site archive carries one snapshot, not the whole repository, so this module knows which
files of Elasticsearch's "fs" repository layout belong to one snapshot (as written by 7.12 and
later, studied on 8.19):

    index-N, index.latest                 the repository's catalog (JSON) and its generation
    snap-<uuid>.dat, meta-<uuid>.dat       the snapshot's description and global metadata
    indices/<index id>/meta-<blob id>.dat  each index's metadata, named through the catalog
    indices/<index id>/<shard>/snap-<uuid>.dat   the shard's file list for this snapshot
    indices/<index id>/<shard>/index-<gen>       the shard's generation file
    indices/<index id>/<shard>/__<id>[.partN]    the data blobs named in snap-<uuid>.dat

The shard file lists are SMILE documents, usually deflate-compressed, between a Lucene codec
header and footer. Without the shared-string-values option (which Elasticsearch never sets)
each blob name is written out in full as a 24-character short string, which is what
``_shard_blobs`` looks for. The catalog written into an archive lists only its snapshot.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import zlib
from base64 import urlsafe_b64encode
from dataclasses import dataclass, field
from pathlib import Path

from backups.elastic import smile
from backups.errors import DamagedBackup, NotFound, StorageError

LUCENE_MAGIC = b"\x3f\xd7\x6c\x17"
LUCENE_FOOTER = 16
DEFLATE_HEADER = b"DFL\x00"
SMILE_HEADER = b":)\n"
SMILE_SHARED_VALUES = 0x02
# A tiny-ASCII SMILE token of 24 characters (0x40 + 23), then "__" and a 22-character UUID.
BLOB_NAME = re.compile(rb"\x57(__[A-Za-z0-9_-]{22})")


@dataclass
class SnapshotFiles:
    """What an archive takes from the repository for one snapshot."""

    snapshot: str
    uuid: str
    files: list[str] = field(default_factory=list)  # relative paths, read as they are
    catalog_name: str = ""  # index-N
    catalog: bytes = b""  # index-N, reduced to this snapshot
    latest: bytes = b""  # index.latest


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"the snapshot repository file {path} is missing") from None
    except OSError as exc:
        raise StorageError(
            f"cannot read the snapshot repository file {path}: {exc.strerror}; "
            "this machine must see the repository's directory (A4C_ES_REPOSITORY_PATH)"
        ) from exc


def catalog(location: Path) -> tuple[int, dict]:
    """The repository's generation and catalog (index-N); NotFound for an empty repository."""
    location = Path(location)
    latest = location / "index.latest"
    if latest.exists():
        generation = int.from_bytes(_read(latest), "big")
    else:
        gens = [int(p.name[6:]) for p in location.glob("index-*") if p.name[6:].isdigit()]
        if not gens:
            raise NotFound(f"{location} holds no snapshot repository (no index-N file)")
        generation = max(gens)
    try:
        return generation, json.loads(_read(location / f"index-{generation}"))
    except ValueError:
        raise DamagedBackup(
            f"the snapshot repository catalog {location}/index-{generation} is not JSON: "
            "is this an Elasticsearch fs repository?"
        ) from None


def has_snapshot(location: Path, snapshot: str) -> bool | None:
    """Whether the repository at location lists the snapshot; None when it cannot be read."""
    try:
        _, data = catalog(location)
    except NotFound:
        return False if Path(location).is_dir() else None
    except (StorageError, DamagedBackup):
        return None
    return any(s.get("name") == snapshot for s in data.get("snapshots", []))


def snapshot_files(location: Path, snapshot: str) -> SnapshotFiles:
    """Every file of the repository that restoring ``snapshot`` reads, and a reduced catalog."""
    location = Path(location)
    generation, data = catalog(location)
    snap = next((s for s in data.get("snapshots", []) if s.get("name") == snapshot), None)
    if snap is None:
        raise NotFound(f"snapshot {snapshot} is missing from the repository at {location}")
    uuid = snap["uuid"]
    result = SnapshotFiles(snapshot, uuid)
    result.files += [f"snap-{uuid}.dat"]
    if (location / f"meta-{uuid}.dat").exists():
        result.files.append(f"meta-{uuid}.dat")
    lookup = snap.get("index_metadata_lookup", {})
    identifiers = data.get("index_metadata_identifiers", {})
    indices = {}
    for index_name, index in data.get("indices", {}).items():
        if uuid not in index.get("snapshots", []):
            continue
        index_id = index["id"]
        indices[index_name] = {**index, "snapshots": [uuid]}
        blob_id = identifiers.get(lookup.get(index_id, ""), "")
        if not blob_id:
            raise DamagedBackup(
                f"the repository catalog at {location} names no metadata for index "
                f"{index_name} of snapshot {snapshot}"
            )
        result.files.append(f"indices/{index_id}/meta-{blob_id}.dat")
        for shard, generation_id in enumerate(index.get("shard_generations", [])):
            result.files += _shard_files(location, f"indices/{index_id}/{shard}", uuid)
            if generation_id and generation_id != "_deleted":
                name = f"indices/{index_id}/{shard}/index-{generation_id}"
                if (location / name).exists():
                    result.files.append(name)
    kept_ids = set(lookup.values())
    reduced = {
        **data,
        # A new repository id: the archive's copy is registered beside the original on one
        # cluster, which must not take the two for one repository.
        "uuid": urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
        "snapshots": [snap],
        "indices": indices,
        "index_metadata_identifiers": {k: v for k, v in identifiers.items() if k in kept_ids},
    }
    result.catalog_name = f"index-{generation}"
    result.catalog = json.dumps(reduced, separators=(",", ":")).encode()
    result.latest = generation.to_bytes(8, "big")
    return result


def _shard_files(location: Path, shard_dir: str, uuid: str) -> list[str]:
    listing = f"{shard_dir}/snap-{uuid}.dat"
    names = _shard_blobs(_read(location / listing), location / listing)
    try:
        present = os.listdir(location / shard_dir)
    except OSError as exc:
        raise StorageError(f"cannot list {location / shard_dir}: {exc.strerror}") from exc
    files = [listing]
    for name in sorted(names):
        parts = [p for p in present if p == name or p.startswith(name + ".part")]
        if not parts:
            raise DamagedBackup(
                f"blob {name} of {location / listing} is missing from the repository: "
                "the snapshot is damaged"
            )
        files += [f"{shard_dir}/{p}" for p in sorted(parts)]
    return files


# The keys of a mapping itself: a single key that is none of them is a mapping type (6.x).
MAPPING_KEYS = frozenset(
    {"properties", "_meta", "dynamic", "dynamic_templates", "_source", "_routing", "runtime"}
    | {"date_detection", "numeric_detection", "_field_names", "enabled", "subobjects", "_all"}
)


@dataclass(frozen=True)
class SnapshotIndex:
    """One index as a snapshot's own metadata describes it."""

    name: str
    aliases: tuple[str, ...]
    shards: int
    mapping: dict = field(default_factory=dict)  # as 7.x and later show it: no mapping type
    settings: dict = field(default_factory=dict)  # flat, "index.number_of_shards": "1"


def flat_settings(tree: dict, prefix: str = "") -> dict[str, str]:
    """Settings as flat_settings=true shows them, whether they were written nested or flat."""
    flat = {}
    for key, value in (tree or {}).items():
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, list) else str(value)
    return flat


def typeless_mapping(mappings) -> dict:
    """An index's mapping from its metadata: a list of one {type: body} (an object, or JSON
    deflated behind "DFL\\0"), shown without the type as 7.x and later show it."""
    found = {}
    for mapping in mappings or ():
        if isinstance(mapping, bytes):
            if mapping.startswith(DEFLATE_HEADER):
                mapping = zlib.decompressobj(-15).decompress(mapping[len(DEFLATE_HEADER) :])
            mapping = json.loads(mapping)
        found.update(mapping)
    if len(found) == 1:
        ((name, body),) = found.items()
        if isinstance(body, dict) and name not in MAPPING_KEYS:
            return body
    return found


def snapshot_indices(location: Path, snapshot: str) -> dict[str, SnapshotIndex]:
    """Each index of ``snapshot`` as its metadata in the repository holds it (its aliases,
    its primaries), read from the files: what a restore would bring, without restoring it."""
    location = Path(location)
    _, data = catalog(location)
    snap = next((s for s in data.get("snapshots", []) if s.get("name") == snapshot), None)
    if snap is None:
        raise NotFound(f"snapshot {snapshot} is missing from the repository at {location}")
    uuid = snap["uuid"]
    lookup = snap.get("index_metadata_lookup", {})
    identifiers = data.get("index_metadata_identifiers", {})
    found = {}
    for index_name, index in data.get("indices", {}).items():
        if uuid not in index.get("snapshots", []):
            continue
        # 7.9 and later name the metadata through the catalog; before, by the snapshot's uuid
        blob_id = identifiers.get(lookup.get(index["id"], ""), "") or uuid
        path = location / "indices" / index["id"] / f"meta-{blob_id}.dat"
        try:
            document = smile.loads(_smile_body(_read(path), path))
            (body,) = document.values()
            settings = body.get("settings") or {}
            shards = settings.get("index.number_of_shards") or (
                (settings.get("index") or {}).get("number_of_shards")
            )
            found[index_name] = SnapshotIndex(
                index_name,
                tuple(sorted(body.get("aliases") or {})),
                int(shards or 0),
                typeless_mapping(body.get("mappings")),
                flat_settings(settings),
            )
        except (smile.SmileError, ValueError, AttributeError, TypeError, zlib.error) as exc:
            raise DamagedBackup(f"{path} cannot be read as index metadata: {exc}") from None
    return found


def _smile_body(raw: bytes, path: Path) -> bytes:
    """The SMILE document of a repository blob: past its Lucene header, inflated if need be."""
    if not raw.startswith(LUCENE_MAGIC) or len(raw) < LUCENE_FOOTER + 8:
        raise DamagedBackup(f"{path} is not a snapshot file (no Lucene header)")
    body = raw[:-LUCENE_FOOTER]
    start = body.find(DEFLATE_HEADER)
    smile_at = body.find(SMILE_HEADER)
    if start != -1 and (smile_at == -1 or start < smile_at):
        try:
            body = zlib.decompressobj(-15).decompress(body[start + len(DEFLATE_HEADER) :])
        except zlib.error as exc:
            raise DamagedBackup(f"{path} cannot be decompressed: {exc}") from None
        smile_at = body.find(SMILE_HEADER)
    if smile_at == -1:
        raise DamagedBackup(f"{path} is in a format this tool does not read (no SMILE header)")
    return body[smile_at:]


def _shard_blobs(raw: bytes, path: Path) -> set[str]:
    """The data blob names a shard's snap-<uuid>.dat lists ("v__" ones live inside it)."""
    body = _smile_body(raw, path)
    smile_at = 0
    if body[smile_at + 3] & SMILE_SHARED_VALUES:
        raise DamagedBackup(
            f"{path} uses shared string values, which this tool cannot follow to blob names"
        )
    return {m.group(1).decode() for m in BLOB_NAME.finditer(body, smile_at + 4)}
