"""Waiting for restored shards, without a server: after one look, Elasticsearch itself holds
each health request until the shards are started, so the end is seen when it comes. The real
recoveries are in tests/test_operations.py (one node) and tests/test_es_cluster.py (three)."""

from __future__ import annotations

import pytest

from backups.elastic.client import Cluster
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


def health(status: str, *, initializing: int = 0, data_nodes: int = 3) -> dict:
    return {
        "status": status,
        "active_shards": 4,
        "initializing_shards": initializing,
        "unassigned_shards": 0 if status == "green" else 2,
        "unassigned_primary_shards": 2 if status == "red" else 0,
        "number_of_data_nodes": data_nodes,
    }


def test_after_a_first_look_elasticsearch_waits_for_green_with_no_shard_initializing():
    client = HealthAnswers(
        health("yellow", initializing=2), health("yellow", initializing=1), health("green")
    )
    looks = []

    Cluster(client).wait_for_recovery(["a", "b"], lambda *seen: looks.append(seen), poll=0.4)

    held = {"wait_for_status": "green", "wait_for_no_initializing_shards": True}
    assert client.asked == [
        {"index": "a,b", "level": "cluster"},
        {"index": "a,b", "level": "cluster", **held, "timeout": "400ms"},
        {"index": "a,b", "level": "cluster", **held, "timeout": "400ms"},
    ]
    assert looks == [(4, 8), (4, 7), (4, 4)]


def test_on_one_node_it_waits_for_green_as_a_restored_index_is_yellow_before_its_primaries():
    waiting = health("yellow", data_nodes=1) | {"unassigned_primary_shards": 2}
    client = HealthAnswers(waiting, health("green", data_nodes=1))

    Cluster(client).wait_for_recovery(["a"], poll=0.5)

    assert [asked.get("wait_for_status") for asked in client.asked] == [None, "green"]
    assert client.asked[1]["timeout"] == "500ms"


def test_on_one_node_replicas_that_cannot_be_placed_end_the_wait_when_it_runs_out():
    client = HealthAnswers(
        health("red", initializing=2, data_nodes=1), health("yellow", data_nodes=1)
    )

    Cluster(client).wait_for_recovery(["a"], poll=0.5)

    assert len(client.asked) == 2


def test_shards_that_never_start_fail_the_wait_at_its_timeout_naming_the_status():
    client = HealthAnswers(health("red", initializing=1))

    with pytest.raises(ElasticError, match=r"did not finish recovering within 0 s .*red"):
        Cluster(client).wait_for_recovery(["a"], timeout=0.0)
