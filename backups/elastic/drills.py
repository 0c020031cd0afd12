"""What a restore drill asks of Elasticsearch: room on the data nodes, a snapshot's indices
restored under other names (no alias, no global state, hidden), what the restored indices hold,
and their removal; on a scratch cluster, the repository registered there read-only and its
registration removed.

Part of the Elasticsearch door (backups/elastic/): it answers in the typed values below and
raises ElasticError. It knows nothing of backups or rows: the names, the prefix and the
snapshot are given; backups/operations/drill.py decides what they are and judges the answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable

from backups.elastic import versions
from backups.elastic.client import Cluster
from backups.elastic.library import elasticsearch
from backups.elastic.translate import translated
from backups.errors import ElasticError

_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|pb)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40, "pb": 2**50}


@dataclasses.dataclass(frozen=True)
class DiskRoom:
    """One data node's disk, and what the high disk watermark wants left free on it."""

    node: str
    total: int
    available: int
    keep_free: int  # bytes the high watermark wants free
    watermark: str  # as the cluster states it ("90%", "500mb")

    def fits(self, needed: int) -> bool:
        return self.available - needed >= self.keep_free


@dataclasses.dataclass(frozen=True)
class RestoredIndex:
    """An index a drill restored, as read back."""

    name: str
    docs: int
    shards: int
    mapping_sha256: str  # of its typeless mapping, keys sorted
    settings: dict  # flat, as flat_settings=true shows them
    sampled: int  # documents asked for by the sample
    read_back: int  # documents of the sample that came back with their source


def mapping_digest(mapping: dict) -> str:
    """A mapping's fingerprint: equal mappings, however their keys were ordered, agree."""
    return hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()


def watermark_free(watermark: str, headroom: str, total: int) -> int:
    """The bytes the high watermark wants free on a disk of ``total`` bytes: a percentage or
    a ratio of the disk used (8.x caps what it asks by the max headroom), or free bytes."""
    text = (watermark or "90%").strip()
    unit = _BYTES.match(text)
    try:
        if text.endswith("%"):
            used = float(text[:-1]) / 100
        elif unit and unit.group(2):
            return parse_bytes(text)
        else:
            used = float(text)
    except ValueError:
        raise ElasticError(
            f"Elasticsearch states its high disk watermark as {watermark!r}, which this tool "
            "cannot read: set cluster.routing.allocation.disk.watermark.high to a percentage."
        ) from None
    keep = round(total * (1 - used))
    if headroom and headroom.strip() not in ("-1", ""):
        keep = min(keep, parse_bytes(headroom))
    return max(keep, 0)


def parse_bytes(text: str) -> int:
    match = _BYTES.match(text)
    if not match:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()])


@translated("read the data nodes' disk space")
def disk_rooms(cluster: Cluster) -> list[DiskRoom]:
    """Each data node's disk and what its high watermark keeps free."""
    found = cluster.client.cluster.get_settings(include_defaults=True, flat_settings=True)
    stats = cluster.client.nodes.stats(
        metric="fs", filter_path="nodes.*.name,nodes.*.fs.total,nodes.*.roles"
    )
    merged: dict = {}
    for part in ("defaults", "persistent", "transient"):  # later ones win
        merged.update(found.get(part) or {})
    watermark = str(merged.get("cluster.routing.allocation.disk.watermark.high", "90%"))
    headroom = str(merged.get("cluster.routing.allocation.disk.watermark.high.max_headroom", ""))
    rooms = []
    for node in (stats.get("nodes") or {}).values():
        roles = node.get("roles")
        if roles is not None and not any(r == "data" or r.startswith("data_") for r in roles):
            continue
        total = int(node["fs"]["total"].get("total_in_bytes", 0))
        available = int(node["fs"]["total"].get("available_in_bytes", 0))
        keep = watermark_free(watermark, headroom, total)
        rooms.append(DiskRoom(node.get("name", "?"), total, available, keep, watermark))
    return rooms


@translated("restore the snapshot under the drill's names")
def restore_renamed(
    cluster: Cluster, repository: str, snapshot: str, indices: list[str], prefix: str
) -> list[str]:
    """Starts restoring ``indices`` of a snapshot as "<prefix><index>": without their aliases
    or the global state, hidden where the version knows it, without replicas. The new names."""
    index_settings: dict = {"index.number_of_replicas": 0}
    if cluster.dialect.hidden_indices:
        index_settings["index.hidden"] = True
    cluster.client.snapshot.restore(
        repository=repository,
        snapshot=snapshot,
        indices=",".join(indices),
        include_aliases=False,
        include_global_state=False,
        rename_pattern="(.+)",
        rename_replacement=prefix.replace("$", "$$") + "$1",
        index_settings=index_settings,
        wait_for_completion=False,
    )
    return [prefix + name for name in indices]


@translated("list a drill's indices")
def indices_named(cluster: Cluster, prefix: str) -> list[str]:
    """Every index, hidden and closed ones too, whose name starts with ``prefix``."""
    found = cluster.client.indices.get_settings(
        index=f"{prefix}*", expand_wildcards="all", filter_path="*.settings.index.uuid"
    )
    return sorted(name for name in (found or {}) if name.startswith(prefix))


def delete_named(cluster: Cluster, prefix: str) -> list[str]:
    """Deletes every index whose name starts with ``prefix``, by name (wildcard deletes may be
    refused by action.destructive_requires_name); the names deleted."""
    names = indices_named(cluster, prefix)
    if names:
        cluster.delete_indices(names)
    return names


@translated("read the drill's restored indices")
def read_back(cluster: Cluster, names: Iterable[str], sample: int) -> dict[str, RestoredIndex]:
    """What each restored index holds: its documents counted, its mapping's fingerprint, its
    primaries, and a sample of ``sample`` documents read with their source."""
    names = list(names)
    if not names:
        return {}
    mappings = cluster.mappings(names)
    settings = cluster.client.indices.get_settings(
        index=",".join(names), expand_wildcards="all", flat_settings=True
    )
    cluster.client.indices.refresh(index=",".join(names), expand_wildcards="all")
    searches: list[dict] = []
    for name in names:
        body = {"size": sample, "sort": ["_doc"], **cluster.dialect.search_extras()}
        searches += [{"index": name}, body]
    answers = cluster.client.msearch(searches=searches)["responses"]
    found = {}
    for name, answer in zip(names, answers, strict=True):
        if "error" in answer:
            reason = answer["error"].get("reason", answer["error"])
            raise ElasticError(f"Elasticsearch could not read the restored index {name}: {reason}")
        hits = answer["hits"]
        docs = versions.total_hits(hits)
        got = sum(1 for hit in hits["hits"] if isinstance(hit.get("_source"), dict))
        flat = {k: str(v) for k, v in settings.get(name, {}).get("settings", {}).items()}
        found[name] = RestoredIndex(
            name=name,
            docs=docs,
            shards=int(flat.get("index.number_of_shards", 0)),
            mapping_sha256=mapping_digest(mappings.get(name, {})),
            settings=flat,
            sampled=min(sample, docs),
            read_back=got,
        )
    return found


@translated("read index mappings and aliases")
def recorded_facts(cluster: Cluster, names: Iterable[str]) -> dict[str, dict]:
    """What a backup records of each index beside its count, for a drill to check later:
    its mapping's fingerprint and its aliases."""
    names = list(names)
    if not names:
        return {}
    mappings = cluster.mappings(names)
    aliases = cluster.client.indices.get_alias(index=",".join(names), expand_wildcards="none")
    return {
        name: {
            "mapping": mapping_digest(mappings.get(name, {})),
            "aliases": sorted((aliases.get(name) or {}).get("aliases") or {}),
        }
        for name in names
    }


def register_readonly(cluster: Cluster, name: str, location: str) -> None:
    """Registers the fs repository at ``location`` read-only as ``name`` on a cluster that only
    reads it (a drill's scratch cluster): refused, saying what to do, when the location is not
    under the nodes' path.repo."""
    try:
        _create_readonly(cluster, name, location)
    except ElasticError as exc:
        cause = exc.__cause__
        text = str(cause.info) if isinstance(cause, elasticsearch.ApiError) else ""
        if "path.repo" not in text and "doesn't match any of the locations" not in text:
            raise
        nodes = cluster.path_repo()
        listed = "; ".join(f"{n}: {', '.join(p) or '(none)'}" for n, p in nodes.items())
        raise ElasticError(
            f"The scratch cluster of {cluster.urls_setting} cannot read the snapshot repository "
            f"at {location}: it is not under path.repo on its nodes ({listed}). Give them the "
            "repository's shared directory under path.repo (the live cluster's) and restart "
            f"them, or empty {cluster.urls_setting} to drill in the live cluster.",
            detail=text[:4000],
        ) from exc


@translated("register the snapshot repository read-only")
def _create_readonly(cluster: Cluster, name: str, location: str) -> None:
    cluster.client.snapshot.create_repository(
        name=name,
        repository={"type": "fs", "settings": {"location": location, "readonly": True}},
        verify=True,
    )


@translated("remove a read-only repository registration")
def unregister(cluster: Cluster, name: str) -> bool:
    """Removes a repository's registration (never its files); whether there was one."""
    try:
        cluster.client.snapshot.delete_repository(name=name)
    except elasticsearch.NotFoundError:
        return False
    return True
