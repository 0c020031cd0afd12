"""Three Elasticsearch nodes on loopback sharing one path.repo, indices with one replica.

The nodes (ports A4C_TEST_ES_CLUSTER_PORT, 9276, and the two above) form their own cluster;
the suite's node at 9200 is not part of it. es-1 and es-2 also list a second directory in
path.repo that es-3 lacks, so that the doctor has a node to name.
"""

from __future__ import annotations

import os
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from fault_support import PROJECT, ThrowawayElasticsearch, es_state, tree

from backups import operations
from backups.demo import generator as demo
from backups.doctor.checks import run_checks
from backups.elastic import client as elastic
from backups.models import Backup, RestoreRun

pytestmark = pytest.mark.django_db(transaction=True)

PORT = int(os.environ.get("A4C_TEST_ES_CLUSTER_PORT", "9276"))
NAMES = ("es-1", "es-2", "es-3")


@pytest.fixture(scope="module")
def three_nodes():
    root = PROJECT / "var" / "es-cluster" / str(os.getpid())
    shared, only_two = root / "shared-repo", root / "only-on-two"
    seeds = ", ".join(f'"127.0.0.1:{PORT + 100 + i}"' for i in range(len(NAMES)))
    masters = ", ".join(f'"{name}"' for name in NAMES)
    nodes = [
        ThrowawayElasticsearch(
            root / name,
            http_port=PORT + i,
            transport_port=PORT + 100 + i,
            name=name,
            discovery=f"discovery.seed_hosts: [{seeds}]\ncluster.initial_master_nodes: [{masters}]",
            path_repo=[shared, only_two] if name != "es-3" else [shared],
        )
        for i, name in enumerate(NAMES)
    ]
    # Together: a node alone waits for the others before it answers.
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda node: node.start(timeout=240), nodes))
    yield nodes, shared, only_two
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda node: node.stop(), nodes))
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def on_cluster(three_nodes, settings, tmp_path):
    nodes, shared, _ = three_nodes
    tag = "c" + secrets.token_hex(3)
    settings.A4C_ES_URLS = [node.url for node in nodes]
    settings.A4C_ES_REPOSITORY = f"cluster-{tag}"
    settings.A4C_ES_REPOSITORY_PATH = str(shared / f"cluster-{tag}")
    settings.A4C_INDEX_INCLUDE = [f"{tag}-*"]
    settings.A4C_DATA_DIR = tmp_path / "a4c-data"
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    settings.A4C_POLL_SECONDS = 0.1
    elastic.cluster.cache_clear()
    cluster = elastic.cluster()
    demo.generate(settings.A4C_DATA_DIR, size="small", prefix=f"{tag}-", cluster=cluster)
    names = list(cluster.indices(include=[f"{tag}-*"]))
    cluster.set_replicas(names, 1)
    cluster.wait_for_recovery(names)
    yield cluster, f"{tag}-", names
    cluster.client.indices.delete(index=f"{tag}-*", ignore_unavailable=True)
    for snapshot in cluster.snapshots(settings.A4C_ES_REPOSITORY):
        cluster.delete_snapshot(settings.A4C_ES_REPOSITORY, snapshot.name)
    elastic.cluster.cache_clear()


def test_a_restore_ends_only_when_every_primary_and_replica_is_back(
    on_cluster, settings, cli_actor
):
    cluster, prefix, names = on_cluster
    before, files = es_state(cluster, prefix), tree(settings.A4C_DATA_DIR)
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="three"), cli_actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    assert backup.es_version == "8.19.8"
    cluster.delete_indices([f"{prefix}application", f"{prefix}plugin", f"{prefix}user"])
    (settings.A4C_DATA_DIR / "artifacts" / "later.txt").write_text("after the backup")

    run = operations.run_restore(
        operations.request_restore(
            operations.RestoreRequest(backup.pk), cli_actor, confirm=backup.name
        ).pk
    )

    # Asked the moment the restore says it is done: nothing may still be copying.
    health = cluster.client.cluster.health(index=",".join(names))
    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert health["status"] == "green", health
    assert health["initializing_shards"] == health["unassigned_shards"] == 0
    assert health["active_shards"] == 2 * health["active_primary_shards"] == 2 * len(names)
    assert es_state(cluster, prefix) == before
    assert tree(settings.A4C_DATA_DIR) == files


def test_the_doctor_names_the_node_whose_path_repo_lacks_the_directory(
    three_nodes, on_cluster, settings
):
    _, _, only_two = three_nodes
    settings.A4C_ES_REPOSITORY_PATH = str(only_two / "a4c")

    checks = {check.name: check for check in run_checks(worker_timeout=0.1)}

    path_repo = checks["path.repo"]
    assert path_repo.level == "error"
    assert "es-3" in path_repo.summary and "es-1" not in path_repo.summary
    assert "es-3" in path_repo.fix and "path.repo" in path_repo.fix
    assert checks["Elasticsearch"].summary.startswith("8.19.8 at ")
    assert "3 nodes" in checks["Elasticsearch"].summary
