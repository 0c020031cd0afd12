"""Elasticsearch gone before or during a backup or a restore: a clear failure, nothing left
running, the data as it was.

"Before" points A4C_ES_URLS at a closed port. "During" kills a second, throwaway node (port
9250) that this module starts: the shared node at 9200 is never stopped.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pytest
from fault_support import (
    PROJECT,
    ThrowawayElasticsearch,
    closed_port,
    es_state,
    nothing_running,
    tree,
)

from backups import operations
from backups.demo import generator as demo
from backups.elastic import client as elastic
from backups.elastic.client import Cluster
from backups.errors import ElasticError
from backups.models import Backup, RestoreRun
from backups.storage import Store

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def throwaway_es():
    node = ThrowawayElasticsearch(PROJECT / "var" / "es-faults" / str(os.getpid()))
    node.start()
    yield node
    node.stop()
    shutil.rmtree(node.root, ignore_errors=True)


class Install:
    def __init__(self, cluster, prefix: str, data_dir: Path):
        self.cluster, self.prefix, self.data_dir = cluster, prefix, data_dir

    def state(self) -> dict:
        return es_state(self.cluster, self.prefix)


@pytest.fixture
def on_throwaway_es(throwaway_es, settings, tmp_path):
    """An A4C installation whose Elasticsearch is the throwaway node."""
    throwaway_es.start()  # again, if the previous test killed it
    tag = secrets.token_hex(3)
    settings.A4C_ES_URLS = [throwaway_es.url]
    settings.A4C_ES_REPOSITORY = f"faults-{tag}"
    settings.A4C_ES_REPOSITORY_PATH = str(throwaway_es.path_repo / f"faults-{tag}")
    settings.A4C_INDEX_INCLUDE = [f"f{tag}-*"]
    settings.A4C_DATA_DIR = tmp_path / "a4c-data"
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    settings.A4C_POLL_SECONDS = 0.1
    settings.A4C_ES_TIMEOUT = 10
    elastic.cluster.cache_clear()
    cluster = elastic.cluster()
    demo.generate(settings.A4C_DATA_DIR, size="small", prefix=f"f{tag}-", cluster=cluster)
    yield Install(cluster, f"f{tag}-", settings.A4C_DATA_DIR)
    if throwaway_es.answers():
        cluster.client.indices.delete(index=f"f{tag}-*", expand_wildcards="all")
        for snap in cluster.snapshots(settings.A4C_ES_REPOSITORY):
            cluster.delete_snapshot(settings.A4C_ES_REPOSITORY, snap.name)
    elastic.cluster.cache_clear()


class Switch:
    """Points the tool at a port nothing listens on, as if Elasticsearch were stopped."""

    def __init__(self, settings):
        self.settings, self.urls = settings, list(settings.A4C_ES_URLS)

    def down(self) -> None:
        self.settings.A4C_ES_URLS = [f"http://127.0.0.1:{closed_port()}"]
        elastic.cluster.cache_clear()

    def up(self) -> None:
        self.settings.A4C_ES_URLS = self.urls
        elastic.cluster.cache_clear()


@pytest.fixture
def es_switch(settings):
    switch = Switch(settings)
    yield switch
    switch.up()


def test_a_backup_with_elasticsearch_stopped_fails_clearly_and_keeps_nothing(
    a4c, cli_actor, settings, es_switch
):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    files_before = tree(a4c.data_dir)
    es_switch.down()

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="es-down"), cli_actor).pk
    )

    assert backup.status == Backup.Status.FAILED
    assert "cannot be reached" in backup.error_message
    assert "A4C_ES_URLS" in backup.error_message, "it says what to fix"
    assert not Store(settings.A4C_BACKUP_DIR).manifests.exists("es-down")
    assert nothing_running()
    assert tree(a4c.data_dir) == files_before


def test_a_restore_whose_elasticsearch_stopped_before_it_ran_changes_nothing(
    a4c, cli_actor, es_switch
):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="good"), cli_actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    (a4c.data_dir / "artifacts" / "after.txt").write_text("made after the backup")
    a4c.cluster.client.indices.delete(index=a4c.index("plugin"))
    es_before, files_before = a4c.state(), tree(a4c.data_dir)
    run = operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    es_switch.down()

    run = operations.run_restore(run.pk)

    assert run.status == RestoreRun.Status.FAILED
    assert "cannot be reached" in run.error_message
    assert "Nothing had been changed yet" in run.error_message
    assert run.safety_backup is None
    # ...and asking again while it is down is refused at once, with the same reason.
    with pytest.raises(ElasticError, match="cannot be reached"):
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    assert nothing_running()
    es_switch.up()
    assert a4c.state() == es_before
    assert tree(a4c.data_dir) == files_before


def test_elasticsearch_killed_during_a_snapshot_fails_the_backup_and_nothing_stays_running(
    on_throwaway_es, throwaway_es, cli_actor, settings, monkeypatch
):
    a4c = on_throwaway_es
    es_before, files_before = a4c.state(), tree(a4c.data_dir)
    real_progress = Cluster.snapshot_progress

    def kill_during_the_snapshot(self, *args, **kwargs):
        throwaway_es.kill()
        return real_progress(self, *args, **kwargs)

    monkeypatch.setattr(Cluster, "snapshot_progress", kill_during_the_snapshot)

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="es-killed"), cli_actor).pk
    )

    assert backup.status == Backup.Status.FAILED
    assert backup.phase == "elasticsearch: snapshot"
    assert "cannot be reached" in backup.error_message
    assert not Store(settings.A4C_BACKUP_DIR).manifests.exists("es-killed")
    assert nothing_running()
    assert tree(a4c.data_dir) == files_before

    monkeypatch.undo()
    throwaway_es.start()
    assert a4c.state() == es_before
    again = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="after-restart"), cli_actor).pk
    )
    assert again.status == Backup.Status.SUCCEEDED, again.error_message
    assert operations.verify_backup(again.pk, cli_actor).ok


def test_elasticsearch_killed_during_a_restore_fails_it_and_a_rollback_brings_all_back(
    on_throwaway_es, throwaway_es, cli_actor, monkeypatch
):
    a4c = on_throwaway_es
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    client = a4c.cluster.client
    client.indices.delete(index=a4c.prefix + "plugin")
    client.index(index=a4c.prefix + "user", id="late", document={"username": "late"}, refresh=True)
    (a4c.data_dir / "artifacts" / "after.txt").write_text("made after the backup")
    es_before, files_before = a4c.state(), tree(a4c.data_dir)
    real_start = Cluster.start_restore

    def kill_once_the_restore_started(self, *args, **kwargs):
        real_start(self, *args, **kwargs)
        throwaway_es.kill()

    monkeypatch.setattr(Cluster, "start_restore", kill_once_the_restore_started)

    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )

    assert run.status == RestoreRun.Status.FAILED
    assert "cannot be reached" in run.error_message
    assert run.safety_backup.name in run.error_message, "it says how to get back"
    assert nothing_running()
    assert tree(a4c.data_dir) == files_before, "the files step never began"

    monkeypatch.undo()
    throwaway_es.start()
    rollback = operations.run_restore(operations.request_rollback(run.pk, cli_actor).pk)
    assert rollback.status == RestoreRun.Status.SUCCEEDED, rollback.error_message
    assert a4c.state() == es_before
    assert tree(a4c.data_dir) == files_before
