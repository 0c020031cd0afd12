"""Waiting for restored shards, without a server: done is judged index by index from the
active primaries (and, on several nodes, green), never from a health field one version lacks;
after one look, Elasticsearch itself holds each health request until the shards are started.
The real recoveries are in tests/test_operations.py (one node), tests/test_es_cluster.py
(three) and tests/test_es_versions.py (a throttled recovery on 6.8)."""

from __future__ import annotations

import pytest

from backups.elastic.client import Cluster, RecoveryProgress
from backups.errors import ElasticError


class HealthAnswers:
    """Stands in for the client: answers cluster health from a list, keeping what was asked."""

    def __init__(self, *answers: dict):
        self.answers = list(answers)
        self.asked: list[dict] = []
        self.cluster = self

    def options(self, **_) -> HealthAnswers:
        return self

    def health(self, **asked) -> dict:
        self.asked.append(asked)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def index(status: str, *, shards=2, primaries=2, active=None, initializing=0, replicas=1):
    return {
        "status": status,
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "active_primary_shards": primaries,
        "active_shards": primaries if active is None else active,
        "initializing_shards": initializing,
    }


def health(data_nodes: int = 3, **indices: dict) -> dict:
    # 6.8's top-level fields: there is no unassigned_primary_shards
    worst = "green" if all(i["status"] == "green" for i in indices.values()) else "yellow"
    return {"status": worst, "number_of_data_nodes": data_nodes, "indices": indices}


def test_after_a_first_look_elasticsearch_waits_for_green_with_no_shard_initializing():
    client = HealthAnswers(
        health(a=index("yellow", active=2, initializing=2), b=index("green", active=4)),
        health(a=index("yellow", active=3, initializing=1), b=index("green", active=4)),
        health(a=index("green", active=4), b=index("green", active=4)),
    )
    looks = []

    Cluster(client).wait_for_recovery(
        ["a", "b"], lambda p: looks.append((p.done, p.total)), poll=0.4
    )

    held = {"wait_for_status": "green", "wait_for_no_initializing_shards": True}
    assert client.asked == [
        {"index": "a,b", "level": "indices"},
        {"index": "a,b", "level": "indices", **held, "timeout": "400ms"},
        {"index": "a,b", "level": "indices", **held, "timeout": "400ms"},
    ]
    assert looks == [(6, 8), (7, 8), (8, 8)]


def test_on_one_node_a_yellow_index_whose_primaries_wait_for_their_snapshot_is_not_done():
    # What 6.8 answers while a restored primary waits for its snapshot recovery: yellow,
    # nothing initializing, and no field saying a primary is missing.
    waiting = health(1, a=index("yellow", shards=5, primaries=3, replicas=0))
    client = HealthAnswers(waiting, waiting, health(1, a=index("green", shards=5, primaries=5)))
    looks = []

    Cluster(client).wait_for_recovery(["a"], lambda p: looks.append((p.done, p.total)), poll=0.5)

    assert [asked.get("wait_for_status") for asked in client.asked] == [None, "green", "green"]
    assert looks == [(3, 5), (3, 5), (5, 5)]


def test_on_one_node_replicas_that_cannot_be_placed_do_not_hold_the_wait():
    client = HealthAnswers(health(1, a=index("yellow", shards=2, primaries=2, replicas=1)))

    Cluster(client).wait_for_recovery(["a"], poll=0.5)

    assert len(client.asked) == 1


def test_an_index_not_yet_in_the_cluster_is_waited_for():
    client = HealthAnswers(health(1), health(1, a=index("green")))

    Cluster(client).wait_for_recovery(["a"], poll=0.5)

    assert len(client.asked) == 2


def test_shards_that_never_start_fail_the_wait_at_its_timeout_naming_the_index():
    client = HealthAnswers(health(a=index("yellow", shards=5, primaries=4, initializing=1)))

    with pytest.raises(ElasticError, match=r"within 0 s: not back: a \(4 of 5 primaries active\)"):
        Cluster(client).wait_for_recovery(["a"], timeout=0.0)


def test_progress_names_at_most_five_indices_waiting():
    answer = health(1, **{f"i{n}": index("yellow", primaries=0, replicas=0) for n in range(7)})

    progress = RecoveryProgress.of(answer, [f"i{n}" for n in range(7)])

    assert not progress.finished
    assert progress.describe().endswith("and 2 more")
    assert (progress.done, progress.total) == (0, 14)


def test_an_index_not_in_the_cluster_yet_leaves_the_total_a_floor():
    """Issue 25.1: a rollback read 99% with 8 of 30 shards restored, the indices still to come
    being left out of the total. They are counted as missing: the total is only a floor."""
    answer = health(1, a=index("green", shards=8, primaries=8, replicas=0))

    progress = RecoveryProgress.of(answer, ["a", "b", "c"])

    assert (progress.done, progress.total, progress.missing) == (8, 8, 2)
    assert not progress.finished
    whole = RecoveryProgress.of(answer, ["a"])
    assert whole.missing == 0 and whole.finished
