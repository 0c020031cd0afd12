"""Waiting for a snapshot, without a server: the status is looked at until the snapshot has
ended, then its description until the repository has finalized it, and what comes out is a
typed value, never Elasticsearch's answer. The real snapshots are in tests/test_operations.py
and tests/test_faults_elasticsearch.py (a node killed while one runs)."""

from __future__ import annotations

from types import SimpleNamespace

from backups.elastic.client import Cluster
from backups.elastic.values import SnapshotInfo, SnapshotStatus


class SnapshotAnswers:
    """Stands in for the client's snapshot API: answers status and get from lists, in order."""

    def __init__(self, statuses: list[dict], descriptions: list[dict | None]):
        self.statuses, self.descriptions = statuses, descriptions
        self.asked: list[str] = []

    def status(self, repository: str, snapshot: str) -> dict:
        self.asked.append("status")
        return {"snapshots": [self.statuses.pop(0)]}

    def get(self, repository: str, snapshot: str) -> dict:
        self.asked.append("get")
        found = self.descriptions.pop(0)
        return {"snapshots": [found] if found else []}


def status(state: str, done: int, total: int = 2, *, failed: int = 0) -> dict:
    return {
        "state": state,
        "shards_stats": {"done": done, "total": total, "failed": failed},
        "stats": {
            "processed": {"size_in_bytes": done * 100},
            "incremental": {"size_in_bytes": total * 100},
        },
    }


def description(state: str, *, failed: int = 0, failures: tuple = ()) -> dict:
    return {
        "snapshot": "nightly",
        "state": state,
        "indices": ["a4c-csar", "a4c-user"],
        "shards": {"total": 2, "successful": 2 - failed, "failed": failed},
        "failures": list(failures),
        "metadata": {"a4c_backup": "nightly"},
        "version": "8.19.8",
        "start_time_in_millis": 1_700_000_000_000,
        "end_time_in_millis": 1_700_000_001_500,
    }


def cluster(answers: SnapshotAnswers) -> Cluster:
    return Cluster(SimpleNamespace(snapshot=answers))


def test_each_look_is_reported_until_the_snapshot_ends_then_its_finalized_description_returns():
    answers = SnapshotAnswers(
        [status("STARTED", 0), status("STARTED", 1), status("SUCCESS", 2)],
        [description("IN_PROGRESS"), description("SUCCESS")],  # the status API can be ahead
    )
    looks: list[SnapshotStatus] = []

    final = cluster(answers).wait_for_snapshot("repo", "nightly", looks.append, poll=0.0)

    assert [(s.state, s.shards_done, s.bytes_done) for s in looks] == [
        ("STARTED", 0, 0),
        ("STARTED", 1, 100),
        ("SUCCESS", 2, 200),
    ]
    assert answers.asked == ["status", "status", "status", "get", "get"]
    assert isinstance(final, SnapshotInfo) and final.succeeded
    assert final.indices == ("a4c-csar", "a4c-user") and final.metadata["a4c_backup"] == "nightly"
    assert (final.ended_at - final.started_at).total_seconds() == 1.5


def test_a_snapshot_the_repository_no_longer_holds_comes_back_as_none():
    answers = SnapshotAnswers([status("SUCCESS", 2)], [None])

    assert cluster(answers).wait_for_snapshot("repo", "nightly", poll=0.0) is None


def test_a_snapshot_with_a_failed_shard_did_not_succeed_and_says_which():
    failure = {"index": "a4c-csar", "shard_id": 0, "reason": "IOException[disk full]"}
    answers = SnapshotAnswers(
        [status("PARTIAL", 2, failed=1)], [description("PARTIAL", failed=1, failures=(failure,))]
    )

    final = cluster(answers).wait_for_snapshot("repo", "nightly", poll=0.0)

    assert not final.succeeded and final.shards_failed == 1
    assert [str(f) for f in final.failures] == ["a4c-csar[0]: IOException[disk full]"]
