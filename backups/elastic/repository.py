"""Reads a shared-filesystem snapshot repository's files, without the cluster.

An off-site archive carries one snapshot, not the whole repository, so this module knows which
files of Elasticsearch's "fs" repository layout belong to one snapshot. The layout changed
twice between the versions the tool supports; which one a repository uses is read from its
catalog, never from a version number:

    index-N, index.latest                 the repository's catalog (JSON) and its generation
    snap-<uuid>.dat, meta-<uuid>.dat       the snapshot's description and global metadata
    indices/<index id>/meta-<...>.dat      each index's metadata:
        7.9 and later: meta-<blob id>, named through the snapshot's index_metadata_lookup
        and the catalog's index_metadata_identifiers;
        6.8 to 7.8 (no index_metadata_lookup): meta-<snapshot uuid>
    indices/<index id>/<shard>/snap-<uuid>.dat   the shard's file list for this snapshot
    indices/<index id>/<shard>/index-<gen>       the shard's generation file:
        7.6 and later: the one the catalog's shard_generations names (a UUID, or a number
        in a repository older versions wrote); 6.8 (no shard_generations): the highest
        numbered index-N of the shard's directory, and the shards are the directories
        holding this snapshot's snap-<uuid>.dat
    indices/<index id>/<shard>/__<id>[.partN]    the data blobs named in snap-<uuid>.dat

Studied on 6.8.23, 7.17.29, 8.19.8 and 9.2.0. The shard file lists are SMILE documents,
deflate-compressed or not, between a Lucene codec header and footer. Without the
shared-string-values option (which Elasticsearch never sets) each blob name is written out in
full as a 24-character short string, which is what ``_shard_blobs`` looks for. The catalog
written into an archive lists only its snapshot, in the layout it was read in, so that the
version that wrote it (or a later one that reads its snapshots) can read the copy.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
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


def remove_location(location: Path) -> bool:
    """Removes a repository's directory whole (an imported set's, its repository unregistered
    first): whether there was one. Never follows a link out of it."""
    if not os.path.lexists(location):
        return False
    try:
        if os.path.islink(location) or not os.path.isdir(location):
            os.unlink(location)
        else:
            shutil.rmtree(location)
    except OSError as exc:
        raise StorageError(
            f"cannot remove the snapshot repository directory {location}: {exc.strerror}; "
            "remove it by hand (its repository is no longer registered)"
        ) from exc
    return True


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
    if not snap.get("uuid") or not isinstance(data.get("indices"), dict):
        raise DamagedBackup(
            f"the repository catalog at {location} is in a layout this tool does not read "
            "(written by Elasticsearch older than 6.8?): restore the snapshot on its own "
            "cluster and back it up again there, then export that backup"
        )
    uuid = snap["uuid"]
    result = SnapshotFiles(snapshot, uuid)
    result.files += [f"snap-{uuid}.dat"]
    if (location / f"meta-{uuid}.dat").exists():
        result.files.append(f"meta-{uuid}.dat")
    lookup = snap.get("index_metadata_lookup")
    identifiers = data.get("index_metadata_identifiers", {})
    indices = {}
    for index_name, index in data["indices"].items():
        if uuid not in index.get("snapshots", []):
            continue
        index_id = index["id"]
        indices[index_name] = {**index, "snapshots": [uuid]}
        result.files.append(_index_metadata(location, index_name, index_id, snap, identifiers))
        if "shard_generations" not in index:  # 6.8: the shard directories say
            result.files += _numbered_shards(location, f"indices/{index_id}", uuid)
            continue
        for shard, generation_id in enumerate(index.get("shard_generations", [])):
            result.files += _shard_files(location, f"indices/{index_id}/{shard}", uuid)
            if generation_id and generation_id != "_deleted":
                name = f"indices/{index_id}/{shard}/index-{generation_id}"
                if (location / name).exists():
                    result.files.append(name)
    reduced = {**data, "snapshots": [snap], "indices": indices}
    if "uuid" in data:
        # A new repository id (7.12 and later keep one): the archive's copy is registered
        # beside the original on one cluster, which must not take the two for one repository.
        reduced["uuid"] = urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
    if "index_metadata_identifiers" in data:
        kept_ids = set((lookup or {}).values())
        reduced["index_metadata_identifiers"] = {
            k: v for k, v in identifiers.items() if k in kept_ids
        }
    result.catalog_name = f"index-{generation}"
    result.catalog = json.dumps(reduced, separators=(",", ":")).encode()
    result.latest = generation.to_bytes(8, "big")
    return result


def _index_metadata(
    location: Path, index_name: str, index_id: str, snap: dict, identifiers: dict
) -> str:
    """The index's metadata file: named through the catalog (7.9 and later), or after the
    snapshot's uuid (6.8 to 7.8, whose snapshots have no index_metadata_lookup)."""
    lookup = snap.get("index_metadata_lookup")
    if lookup is None:
        blob_id = snap["uuid"]
    else:
        blob_id = identifiers.get(lookup.get(index_id, ""), "")
    name = f"indices/{index_id}/meta-{blob_id}.dat"
    if not blob_id or not (location / name).exists():
        raise DamagedBackup(
            f"the repository catalog at {location} names no metadata for index "
            f"{index_name} of snapshot {snap['name']}"
            + (f" ({name} is missing)" if blob_id else "")
            + ": the snapshot is damaged, or its repository in a layout this tool does not read"
        )
    return name


def _numbered_shards(location: Path, index_dir: str, uuid: str) -> list[str]:
    """A 6.8 index's shard files: every shard directory holding this snapshot's file list,
    with its newest numbered generation file (index-N)."""
    try:
        shards = sorted(
            (int(p.name) for p in (location / index_dir).iterdir() if p.name.isdigit()),
        )
    except OSError as exc:
        raise StorageError(f"cannot list {location / index_dir}: {exc.strerror}") from exc
    files = []
    for shard in shards:
        shard_dir = f"{index_dir}/{shard}"
        if not (location / shard_dir / f"snap-{uuid}.dat").exists():
            continue  # a shard of an earlier index of that name, not in this snapshot
        files += _shard_files(location, shard_dir, uuid)
        generations = [
            int(p.name[6:]) for p in (location / shard_dir).glob("index-*") if p.name[6:].isdigit()
        ]
        if generations:
            files.append(f"{shard_dir}/index-{max(generations)}")
    if not files:
        raise DamagedBackup(
            f"{location / index_dir} holds no shard of snapshot {uuid}: the snapshot is damaged"
        )
    return files


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
