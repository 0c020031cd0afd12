"""The typed values that come out of the Elasticsearch door (backups/elastic/client.py).

Each is built here, once, from one Elasticsearch answer; no raw response crosses the door, so
no module outside backups/elastic/ reads a key of an Elasticsearch answer. This module only
shapes answers: it sends no request and knows nothing of backups, rows or files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from backups.elastic import versions

# The states of a snapshot that is still being written.
RUNNING_STATES = frozenset({"INIT", "STARTED", "IN_PROGRESS"})


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """Who answers: the cluster's name, identity, version and health."""

    version: str
    versions: tuple[str, ...]  # every node's, when they differ
    cluster_name: str
    cluster_uuid: str
    status: str  # green, yellow or red
    nodes: int
    data_nodes: int
    product: str  # the x-elastic-product header ("" before 7.14)


@dataclasses.dataclass(frozen=True)
class IndexInfo:
    """One index as listed: its top-level documents, primary bytes and health."""

    name: str
    docs: int | None  # None for a red index: it cannot be counted
    size: int  # bytes of its primaries
    health: str | None  # green, yellow, red; None for a closed index on some versions
    status: str | None  # open or close
    replicas: int

    @property
    def lost_a_primary(self) -> bool:
        """A primary shard is gone (the node died mid-restore): nothing in it can be read."""
        return self.health == "red"

    @classmethod
    def of(cls, row: Mapping[str, Any], docs: int | None) -> IndexInfo:
        """From one row of _cat/indices (bytes=b) and the documents counted apart."""
        return cls(
            name=row["index"],
            docs=docs,
            size=int(row.get("pri.store.size") or row.get("store.size") or 0),
            health=row.get("health"),
            status=row.get("status"),
            replicas=int(row.get("rep") or 0),
        )


@dataclasses.dataclass(frozen=True)
class RecoveryProgress:
    """The shards of some indices, from one health answer at level=indices."""

    done: int
    total: int
    waiting: tuple[str, ...]  # "csar (1 of 5 primaries active)": what is not back yet
    missing: int = 0  # indices not in the cluster yet: their shards are not in the total

    @property
    def finished(self) -> bool:
        return not self.waiting

    def describe(self) -> str:
        shown = ", ".join(self.waiting[:5])
        more = len(self.waiting) - 5
        return f"not back: {shown}" + (f" and {more} more" if more > 0 else "")

    @classmethod
    def of(cls, health: dict, names: list[str]) -> RecoveryProgress:
        # Replicas one node cannot place never start: there, the primaries are the whole.
        single_node = health.get("number_of_data_nodes", 1) <= 1
        indices = health.get("indices") or {}
        done = total = missing = 0
        waiting = []
        for name in names:
            index = indices.get(name)
            if index is None:
                waiting.append(f"{name} (not in the cluster)")
                missing += 1
                continue
            shards = int(index["number_of_shards"])
            primaries = int(index["active_primary_shards"])
            if single_node:
                done, total = done + primaries, total + shards
                back = primaries == shards and index["initializing_shards"] == 0
            else:
                copies = shards * (1 + int(index["number_of_replicas"]))
                done, total = done + int(index["active_shards"]), total + copies
                back = index["status"] == "green" and index["initializing_shards"] == 0
            if not back:
                waiting.append(f"{name} ({primaries} of {shards} primaries active)")
        return cls(done=done, total=total, waiting=tuple(waiting), missing=missing)


@dataclasses.dataclass(frozen=True)
class SnapshotStatus:
    """A running or finished snapshot's counters, from _snapshot/<repo>/<name>/_status."""

    state: str
    shards_done: int
    shards_total: int
    shards_failed: int
    # What this snapshot must copy; the rest is already in the repository.
    bytes_done: int
    bytes_total: int

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    @classmethod
    def of(cls, snap: Mapping[str, Any]) -> SnapshotStatus:
        shards = snap["shards_stats"]
        bytes_done, bytes_total = versions.snapshot_bytes(snap["stats"])
        return cls(
            state=snap["state"],
            shards_done=int(shards["done"]),
            shards_total=int(shards["total"]),
            shards_failed=int(shards["failed"]),
            bytes_done=bytes_done,
            bytes_total=bytes_total,
        )


@dataclasses.dataclass(frozen=True)
class ShardFailure:
    """One shard a snapshot could not write, and why."""

    index: str
    shard: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.index}[{self.shard}]: {self.reason}"


@dataclasses.dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot as the repository describes it, from _snapshot/<repo>/<name>."""

    name: str
    state: str  # SUCCESS, PARTIAL, FAILED, IN_PROGRESS, INCOMPATIBLE
    indices: tuple[str, ...]
    shards_total: int
    shards_successful: int
    shards_failed: int
    failures: tuple[ShardFailure, ...]
    metadata: Mapping[str, Any]  # empty on versions that keep none
    version: str  # of the node that took it
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def succeeded(self) -> bool:
        """Finished, with every shard written."""
        return self.state == "SUCCESS" and not self.shards_failed

    @classmethod
    def of(cls, snap: Mapping[str, Any]) -> SnapshotInfo:
        shards = snap.get("shards") or {}
        return cls(
            name=snap["snapshot"],
            state=snap.get("state", ""),
            indices=tuple(snap.get("indices") or ()),
            shards_total=int(shards.get("total") or 0),
            shards_successful=int(shards.get("successful") or 0),
            shards_failed=int(shards.get("failed") or 0),
            failures=tuple(
                ShardFailure(str(f.get("index")), f.get("shard_id"), str(f.get("reason")))
                for f in snap.get("failures") or ()
            ),
            metadata=MappingProxyType(dict(snap.get("metadata") or {})),
            version=snap.get("version", ""),
            started_at=_moment(snap.get("start_time_in_millis")),
            ended_at=_moment(snap.get("end_time_in_millis")),
        )


def _moment(millis: int | None) -> datetime | None:
    # A running snapshot has no end yet: 0 on some versions, absent on others.
    return datetime.fromtimestamp(millis / 1000, UTC) if millis else None
