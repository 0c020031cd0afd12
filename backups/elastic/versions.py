"""What differs between the Elasticsearch versions this tool speaks to, in one place.

Alien4Cloud 3.x embeds Elasticsearch 6.x (6.8 in its last release); operators who moved on
run 7.17, new installs meet 8.x and 9.x. The rest of backups/elastic/ asks a ``Dialect``
instead of testing version numbers itself. This module sends nothing: it only knows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from backups.errors import UnsupportedElasticsearch

# The (major, minor) lines the test suite runs on real servers; anything else is refused.
SUPPORTED = ((6, 8), (7, 17), (8, 19), (9, 0), (9, 1), (9, 2))
SUPPORTED_TEXT = "6.8, 7.17, 8.19 and 9.0 to 9.2"
TESTED = ("6.8.23", "7.17.29", "8.19.8", "9.2.0")

# What elasticsearch-py 8 sends ("application/vnd.elasticsearch+json; compatible-with=8"):
# 8.x and 9.x understand it, 6.x and 7.x want the plain media type.
_COMPATIBLE_MEDIA_TYPE = re.compile(
    r"application/vnd\.elasticsearch\+([\w.-]+)\s*;\s*compatible-with=\d+"
)
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
MAPPING_TYPE = "_doc"  # the one mapping type of every 6.x index Alien4Cloud 3.x creates


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text or "")
        if not match:
            raise UnsupportedElasticsearch(
                f"Elasticsearch reports the version {text!r}, which this tool cannot read; "
                f"it supports {SUPPORTED_TEXT}."
            )
        return cls(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class Dialect:
    """How to talk to one cluster: its lowest node version decides."""

    version: Version

    @property
    def plain_media_types(self) -> bool:
        return self.version.major < 8

    @property
    def sends_product_header(self) -> bool:
        """6.x answers without X-Elastic-Product, which the 8.x client insists on."""
        return self.version >= Version(7, 14, 0)

    @property
    def mapping_types(self) -> bool:
        """6.x: mappings sit under the type name, documents need a _type."""
        return self.version.major < 7

    @property
    def cat_takes_expand_wildcards(self) -> bool:
        # 6.x refuses the parameter, and lists closed indices anyway.
        return self.version.major >= 7

    @property
    def snapshot_metadata(self) -> bool:
        return self.version >= Version(7, 3, 0)

    @property
    def hidden_indices(self) -> bool:
        """index.hidden, which keeps an index out of every wildcard, came with 7.7."""
        return self.version >= Version(7, 7, 0)

    def request_headers(self, headers: dict) -> dict:
        return plain_media_types(headers) if self.plain_media_types else headers

    def create_mappings(self, mappings: dict) -> dict:
        return {MAPPING_TYPE: mappings} if self.mapping_types and mappings else mappings

    def bulk_action(self, index: str, doc_id: str) -> dict:
        action = {"_index": index, "_id": doc_id}
        if self.mapping_types:
            action["_type"] = MAPPING_TYPE
        return {"index": action}

    def typeless_mappings(self, mappings: dict) -> dict:
        """The mapping of an index as 7.x and later show it, whatever this server's shape."""
        if self.mapping_types and len(mappings) == 1:
            (body,) = mappings.values()
            if isinstance(body, dict) and ("properties" in body or "_meta" in body):
                return body
        return mappings

    def search_extras(self) -> dict:
        # 7.x and later count only to 10,000 unless asked; 6.x always counts exactly.
        return {} if self.version.major < 7 else {"track_total_hits": True}

    def can_restore(self, snapshot_version: str) -> str | None:
        """Why this cluster cannot restore a snapshot taken on ``snapshot_version``, or None.

        Elasticsearch reads snapshots of its own major and the one before, never newer ones.
        """
        try:
            taken = Version.parse(snapshot_version)
        except UnsupportedElasticsearch:
            return None  # unknown: let Elasticsearch judge
        if taken > self.version:
            return (
                f"it was taken on Elasticsearch {taken}, newer than this cluster's {self.version}, "
                "and Elasticsearch never reads a newer version's snapshot: restore it into a "
                f"cluster of {taken} or later"
            )
        if taken.major < self.version.major - 1:
            return (
                f"it was taken on Elasticsearch {taken}, and {self.version} reads snapshots of "
                f"{self.version.major - 1}.x and {self.version.major}.x only: restore it into a "
                f"{taken.major + 1}.x cluster first, then take a new backup there"
            )
        return None


def plain_media_types(headers: dict) -> dict:
    """The headers with application/json where the client asked for a compatibility type."""
    return {
        key: _COMPATIBLE_MEDIA_TYPE.sub(r"application/\1", value)
        if key.lower() in ("accept", "content-type")
        else value
        for key, value in headers.items()
    }


def total_hits(hits: dict) -> int:
    """hits.total is a number on 6.x, {value, relation} from 7.0 on."""
    total = hits["total"]
    return int(total["value"] if isinstance(total, dict) else total)


def snapshot_bytes(stats: dict) -> tuple[int, int]:
    """(done, to copy) from a snapshot status: 6.x has no ``processed`` object."""
    done = stats.get("processed", {}).get("size_in_bytes", stats.get("processed_size_in_bytes", 0))
    total = stats.get("incremental", {}).get("size_in_bytes", stats.get("total_size_in_bytes", 0))
    return int(done), int(total)


def dialect_for(versions: list[str]) -> Dialect:
    """The dialect of a cluster whose nodes run ``versions``; refuses an unsupported one."""
    if not versions:
        raise UnsupportedElasticsearch("Elasticsearch did not say which version its nodes run.")
    lowest = min(Version.parse(v) for v in versions)
    for found in sorted({Version.parse(v) for v in versions}):
        if (found.major, found.minor) not in SUPPORTED:
            older = found.major < 6 or (found.major, found.minor) < SUPPORTED[0]
            advice = (
                "upgrade it (Alien4Cloud 3.x runs 6.8)"
                if older
                else "it has not been tested with this tool; use a supported version"
            )
            raise UnsupportedElasticsearch(
                f"Elasticsearch {found} answered, and this tool supports {SUPPORTED_TEXT} only: "
                f"{advice}. Nothing was changed."
            )
    return Dialect(lowest)
