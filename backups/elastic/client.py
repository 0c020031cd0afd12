"""The only module that talks to Elasticsearch.

A thin adapter over the official client: it answers in the typed values of
backups/elastic/values.py (never a raw response), and turns every client or transport error
into an ``ElasticError`` whose message says what to do. It knows
nothing of backups, rows or files; backups/operations/ decides what to snapshot and when.
The client's transport learns the cluster's version before its first request
(backups/elastic/transport.py); where versions differ, this module asks ``self.dialect``
(backups/elastic/versions.py) and never compares version numbers itself.
"""

from __future__ import annotations

import fnmatch
import functools
import time
from collections.abc import Callable, Iterable

from django.conf import settings

from backups import polling
from backups.elastic import versions
from backups.elastic.library import elasticsearch
from backups.elastic.translate import check_urls, translated
from backups.elastic.values import (
    ClusterInfo,
    IndexInfo,
    RecoveryProgress,
    SnapshotInfo,
    SnapshotStatus,
)
from backups.errors import ElasticError


class Cluster:
    """One Elasticsearch cluster, reached through the official client. ``urls_setting`` names
    the setting that points at it, for the messages that say what to fix."""

    def __init__(self, client: elasticsearch.Elasticsearch, urls_setting: str = "A4C_ES_URLS"):
        self.client = client
        self.urls_setting = urls_setting

    @property
    def dialect(self) -> versions.Dialect:
        """How this cluster's version wants to be spoken to; asks it the first time."""
        from backups.elastic.transport import VersionedTransport  # the library's, when used

        transport = self.client.transport
        if not isinstance(transport, VersionedTransport):
            raise TypeError("build the client with transport_class=VersionedTransport")
        if transport.dialect is None:
            self._ask_versions()
        return transport.dialect

    @translated("ask the nodes their versions")
    def _ask_versions(self) -> None:
        self.client.nodes.info(filter_path="nodes.*.version")

    # --- the cluster -------------------------------------------------------------------
    @translated("describe the cluster")
    def info(self) -> ClusterInfo:
        # Not GET /: the minimal distributions serve no root endpoint, while every node has
        # health, nodes info and cluster state.
        health = self.client.cluster.health()
        nodes = self.client.nodes.info(filter_path="nodes.*.version")
        found = sorted({n["version"] for n in nodes.get("nodes", {}).values()})
        state = self.client.cluster.state(metric="metadata", filter_path="metadata.cluster_uuid")
        return ClusterInfo(
            version=str(self.dialect.version),
            versions=tuple(found),
            cluster_name=health["cluster_name"],
            cluster_uuid=state["metadata"]["cluster_uuid"],
            status=health["status"],
            nodes=int(health["number_of_nodes"]),
            data_nodes=int(health["number_of_data_nodes"]),
            product=health.meta.headers.get("x-elastic-product", ""),
        )

    @translated("count the data nodes")
    def data_nodes(self) -> int:
        """How many nodes can hold shards: one request, where info() takes three."""
        return int(self.client.cluster.health()["number_of_data_nodes"])

    @translated("read the nodes' path.repo")
    def path_repo(self) -> dict[str, list[str]]:
        """Each node's name and its path.repo entries."""
        resp = self.client.nodes.info(
            metric="settings", filter_path="nodes.*.name,nodes.*.settings.path.repo"
        )
        result = {}
        for node in resp.get("nodes", {}).values():
            repo = node.get("settings", {}).get("path", {}).get("repo", [])
            result[node.get("name", "?")] = [repo] if isinstance(repo, str) else list(repo)
        return result

    # --- indices -----------------------------------------------------------------------
    @translated("list indices")
    def indices(
        self, include: Iterable[str] = ("*",), exclude: Iterable[str] = ()
    ) -> dict[str, IndexInfo]:
        """Open and closed indices matching include and not exclude, system and hidden left out,
        by name.

        Names that do not exist are simply absent from the answer.
        """
        include = list(include)
        try:
            rows = self._cat_indices(include)
        except elasticsearch.NotFoundError:
            rows = []
            for pattern in include:  # one missing concrete name fails the whole request
                try:
                    rows += self._cat_indices([pattern])
                except elasticsearch.NotFoundError:
                    pass
        exclude = list(exclude)
        kept = {
            row["index"]: row
            for row in rows
            if not row["index"].startswith(".")
            and not any(fnmatch.fnmatchcase(row["index"], p) for p in exclude)
        }
        docs = self._count_documents(kept)
        return {name: IndexInfo.of(kept[name], docs.get(name)) for name in sorted(kept)}

    def _cat_indices(self, include: list[str]) -> list[dict]:
        extra = (
            {"expand_wildcards": "open,closed"} if self.dialect.cat_takes_expand_wildcards else {}
        )
        return list(
            self.client.cat.indices(
                index=",".join(include) or "*",
                format="json",
                bytes="b",
                h="index,store.size,pri.store.size,health,status,pri,rep",
                **extra,
            )
        )

    def _count_documents(self, rows: dict[str, dict]) -> dict[str, int | None]:
        """Top-level documents per index: _cat's docs.count also counts nested ones.

        A red index (a primary lost, e.g. when the node died in the middle of a restore) is
        neither refreshed, which would wait a minute for the missing primary, nor counted:
        its docs are None, so that it can still be listed, replaced or removed. A closed
        index counts 0.
        """
        counted: dict[str, int | None] = {
            name: None if row.get("health") == "red" else 0 for name, row in rows.items()
        }
        open_names = [
            n for n, row in rows.items() if row.get("status") == "open" and counted[n] is not None
        ]
        if not open_names:
            return counted
        self.client.indices.refresh(index=",".join(open_names), ignore_unavailable=True)
        searches: list[dict] = []
        for name in open_names:
            searches += [{"index": name}, {"size": 0, **self.dialect.search_extras()}]
        answers = self.client.msearch(searches=searches)["responses"]
        for name, answer in zip(open_names, answers, strict=True):
            if "error" in answer:
                raise ElasticError(
                    f"Elasticsearch could not count the documents of {name}: "
                    f"{answer['error'].get('reason', answer['error'])}"
                )
            counted[name] = versions.total_hits(answer["hits"])
        return counted

    @translated("count documents")
    def count(self, index: str, query: dict | None = None) -> int:
        """The documents of ``index``, or those ``query`` matches, after a refresh."""
        self.client.indices.refresh(index=index)
        return int(self.client.count(index=index, query=query)["count"])

    @translated("read index mappings")
    def index_meta(self, names: Iterable[str]) -> dict[str, dict]:
        """Each index's mapping _meta (empty when it has none)."""
        names = list(names)
        if not names:
            return {}
        return {name: body.get("_meta", {}) for name, body in self.mappings(names).items()}

    @translated("read index mappings")
    def mappings(self, names: Iterable[str]) -> dict[str, dict]:
        """Each index's mapping, as 7.x and later show it (no mapping type, even on 6.x)."""
        names = list(names)
        if not names:
            return {}
        found = self.client.indices.get_mapping(index=",".join(names), expand_wildcards="none")
        return {
            name: self.dialect.typeless_mappings(body.get("mappings", {}))
            for name, body in found.items()
        }

    @translated("delete indices")
    def delete_indices(self, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            self.client.indices.delete(index=",".join(names), expand_wildcards="none")

    @translated("create an index")
    def create_index(
        self, name: str, mappings: dict, settings: dict | None = None, aliases=None
    ) -> None:
        self.client.indices.create(
            index=name,
            mappings=self.dialect.create_mappings(mappings),
            settings=settings or {},
            aliases=aliases,
        )

    @translated("index documents")
    def bulk_index(self, index: str, docs: Iterable[tuple[str, dict]], refresh: bool = True) -> int:
        """Indexes (id, source) pairs; raises when any document failed."""
        operations: list[dict] = []
        for doc_id, source in docs:
            operations.append(self.dialect.bulk_action(index, doc_id))
            operations.append(source)
        if not operations:
            return 0
        resp = self.client.bulk(operations=operations, refresh=refresh)
        if resp.get("errors"):
            failed = [i["index"] for i in resp["items"] if i["index"].get("error")]
            raise ElasticError(
                f"Elasticsearch rejected {len(failed)} of {len(operations) // 2} documents for "
                f"index {index}: {failed[0]['error'].get('reason')}"
            )
        return len(operations) // 2

    @translated("delete documents")
    def delete_all_documents(self, index: str, limit: int = 1000) -> int:
        """Empties a small index, keeping its mapping; the number of documents deleted.

        One by one, by id: _delete_by_query needs the reindex module, which minimal
        distributions lack. Meant for one-document indices (Alien4Cloud's maintenance state).
        """
        self.client.indices.refresh(index=index)
        hits = self.client.search(index=index, size=limit, source=False)["hits"]["hits"]
        for hit in hits:
            self.client.delete(index=index, id=hit["_id"])
        self.client.indices.refresh(index=index)
        return len(hits)

    @translated("set index settings")
    def set_replicas(self, names: Iterable[str], replicas: int) -> None:
        names = list(names)
        if names:
            self.client.indices.put_settings(
                index=",".join(names), settings={"index": {"number_of_replicas": replicas}}
            )

    @translated("wait for shards to recover")
    def wait_for_recovery(
        self,
        names: list[str],
        on_progress: Callable[[RecoveryProgress], None] | None = None,
        timeout: float = 600.0,
        poll: float = 0.5,
    ) -> None:
        """Waits until every shard of ``names`` has finished its recovery, per index.

        Done means: each index is there with all of its primaries active and nothing
        initializing, and, where more than one data node could hold them, its replicas too
        (green). The cluster's status alone does not say it: 6.8 and 7.x call an index yellow
        while its primaries still wait for their snapshot recovery, and only 8.x reports
        unassigned primaries. After a first look, Elasticsearch itself holds each health
        request until green or ``poll`` seconds have passed: the end is seen when it comes.
        """
        if not names:
            return
        deadline = time.monotonic() + timeout
        # 6.x and 7.x answer a wait that ran out with 408, later versions with 200.
        client = self.client.options(
            ignore_status=408, request_timeout=settings.A4C_ES_TIMEOUT + poll
        )
        held: dict = {}
        while True:
            health = client.cluster.health(index=",".join(names), level="indices", **held)
            progress = RecoveryProgress.of(health, names)
            if on_progress:
                on_progress(progress)
            if progress.finished:
                return
            if time.monotonic() > deadline:
                raise ElasticError(
                    f"Shards of {', '.join(names)} did not finish recovering within "
                    f"{int(timeout)} s: {progress.describe()}."
                )
            held = {
                "wait_for_status": "green",
                "wait_for_no_initializing_shards": True,
                "timeout": f"{max(1, round(poll * 1000))}ms",
            }

    @translated("check that shards have recovered")
    def recovery(self, names: list[str]) -> RecoveryProgress:
        """Where the shards of ``names`` stand now, as wait_for_recovery judges them."""
        health = self.client.options(ignore_status=408).cluster.health(
            index=",".join(names), level="indices", timeout="1s"
        )
        return RecoveryProgress.of(health, names)

    # --- repositories ------------------------------------------------------------------
    @translated("register the snapshot repository")
    def ensure_repository(self, name: str, location: str) -> None:
        """Registers an fs repository at ``location`` unless it is there already; verifies it."""
        try:
            current = self.client.snapshot.get_repository(name=name)[name]
        except elasticsearch.NotFoundError:
            current = None
        current_settings = (current or {}).get("settings", {})
        readonly = str(current_settings.get("readonly", "false")).lower() == "true"
        if current_settings.get("location") == location and not readonly:
            self.verify_repository(name)
            return
        try:
            self.client.snapshot.create_repository(
                name=name,
                repository={"type": "fs", "settings": {"location": location}},
                verify=True,
            )
        except elasticsearch.ApiError as exc:
            text = str(exc.info)
            if "path.repo" in text or "doesn't match any of the locations" in text:
                nodes = self.path_repo()
                listed = "; ".join(f"{n}: {', '.join(p) or '(none)'}" for n, p in nodes.items())
                raise ElasticError(
                    f"The snapshot repository path {location} (A4C_ES_REPOSITORY_PATH) is not "
                    f"under path.repo on the Elasticsearch nodes ({listed}): add it to path.repo "
                    "in elasticsearch.yml on every node and restart them, or choose a path inside.",
                    detail=text[:4000],
                ) from exc
            raise

    @translated("read the snapshot repository's registration")
    def repository_location(self, name: str) -> str | None:
        """Where a registered repository is; None when the cluster does not know it."""
        try:
            current = self.client.snapshot.get_repository(name=name)[name]
        except elasticsearch.NotFoundError:
            return None
        return current.get("settings", {}).get("location", "")

    @translated("register a snapshot repository")
    def register_repository(self, name: str, location: str, *, readonly: bool) -> None:
        """Registers an fs repository; read-only ones are only ever read by this cluster."""
        self.client.snapshot.create_repository(
            name=name,
            repository={"type": "fs", "settings": {"location": location, "readonly": readonly}},
            verify=True,
        )

    @translated("verify the snapshot repository")
    def verify_repository(self, name: str) -> list[str]:
        resp = self.client.snapshot.verify_repository(name=name)
        return [node.get("name", node_id) for node_id, node in resp["nodes"].items()]

    @translated("remove the snapshot repository")
    def delete_repository(self, name: str) -> None:
        self.client.snapshot.delete_repository(name=name)

    # --- snapshots ---------------------------------------------------------------------
    @translated("start a snapshot")
    def start_snapshot(
        self,
        repository: str,
        snapshot: str,
        indices: list[str],
        metadata: dict,
        include_global_state: bool,
    ) -> None:
        extra = {"metadata": metadata} if self.dialect.snapshot_metadata else {}
        self.client.snapshot.create(
            repository=repository,
            snapshot=snapshot,
            indices=",".join(indices) if indices else "-*",
            include_global_state=include_global_state,
            ignore_unavailable=False,
            partial=False,
            wait_for_completion=False,
            **extra,
        )

    @translated("read a snapshot's progress")
    def snapshot_progress(self, repository: str, snapshot: str) -> SnapshotStatus:
        """The state and shard/byte counters of a running or finished snapshot."""
        resp = self.client.snapshot.status(repository=repository, snapshot=snapshot)
        return SnapshotStatus.of(resp["snapshots"][0])

    @translated("read a snapshot")
    def snapshot(self, repository: str, snapshot: str) -> SnapshotInfo | None:
        """The snapshot's description, or None when the repository does not hold it."""
        try:
            resp = self.client.snapshot.get(repository=repository, snapshot=snapshot)
        except elasticsearch.NotFoundError:
            return None
        snaps = resp.get("snapshots", [])
        return SnapshotInfo.of(snaps[0]) if snaps else None

    def wait_for_snapshot(
        self,
        repository: str,
        snapshot: str,
        on_progress: Callable[[SnapshotStatus], None] | None = None,
        poll: float | None = None,
    ) -> SnapshotInfo | None:
        """Waits until the snapshot has ended; its final description (None when gone).

        Whether it succeeded is the caller's to judge (``SnapshotInfo.succeeded``). The status
        API can say done before the repository has finalized the snapshot, so the description
        is read again until it is no longer IN_PROGRESS. Looks are paced by a Poller, at most
        ``poll`` seconds apart (A4C_POLL_SECONDS by default).
        """
        interval = settings.A4C_POLL_SECONDS if poll is None else poll
        poller = polling.Poller(interval)
        while True:
            status = self.snapshot_progress(repository, snapshot)
            if on_progress:
                on_progress(status)
            if not status.running:
                break
            poller.wait()
        final = self.snapshot(repository, snapshot)
        poller = polling.Poller(interval)
        while final is not None and final.state == "IN_PROGRESS":
            poller.wait()
            final = self.snapshot(repository, snapshot)
        return final

    def cannot_restore(self, taken_on: str) -> str | None:
        """Why this cluster cannot read a snapshot taken on version ``taken_on``, or None."""
        return self.dialect.can_restore(taken_on)

    @translated("list snapshots")
    def snapshots(self, repository: str) -> list[SnapshotInfo]:
        try:
            found = self.client.snapshot.get(repository=repository, snapshot="_all")
        except elasticsearch.NotFoundError:
            return []
        return [SnapshotInfo.of(snap) for snap in found["snapshots"]]

    @translated("delete a snapshot")
    def delete_snapshot(self, repository: str, snapshot: str) -> bool:
        """Deletes (or aborts, when running) a snapshot; False when it was not there."""
        try:
            self.client.snapshot.delete(repository=repository, snapshot=snapshot)
        except elasticsearch.NotFoundError:
            return False
        return True

    @translated("restore a snapshot")
    def start_restore(
        self,
        repository: str,
        snapshot: str,
        indices: list[str],
        rename_pattern: str = "",
        rename_replacement: str = "",
        index_settings: dict | None = None,
    ) -> None:
        kwargs = {}
        if rename_pattern:
            kwargs = {"rename_pattern": rename_pattern, "rename_replacement": rename_replacement}
        self.client.snapshot.restore(
            repository=repository,
            snapshot=snapshot,
            indices=",".join(indices),
            include_aliases=True,
            include_global_state=False,
            index_settings=index_settings or {},
            wait_for_completion=False,
            **kwargs,
        )


@functools.cache
def cluster() -> Cluster:
    """The cluster named by the settings; built once per process."""
    from backups.elastic.transport import client_options  # the library's, when used

    urls = check_urls(settings.A4C_ES_URLS, settings.A4C_ES_URLS_SOURCE)
    return Cluster(elasticsearch.Elasticsearch(urls, **client_options()))


@functools.cache
def scratch_cluster() -> Cluster | None:
    """The scratch cluster restore drills restore into (A4C_DRILL_ES_URLS), reached with the
    live cluster's credentials and CA; None when it is not set (drills use the live one)."""
    if not settings.A4C_DRILL_ES_URLS:
        return None
    from backups.elastic.transport import client_options

    urls = check_urls(settings.A4C_DRILL_ES_URLS, "A4C_DRILL_ES_URLS")
    return Cluster(elasticsearch.Elasticsearch(urls, **client_options()), "A4C_DRILL_ES_URLS")
