"""backups/doctor/checks.py: each check against the real services, and what it says on failure."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from backups import operations
from backups.doctor import checks as health
from backups.elastic import client as elastic
from backups.models import Backup
from backups.operations import locking

pytestmark = pytest.mark.django_db(transaction=True)


def by_name(checks: list[health.Check]) -> dict[str, health.Check]:
    return {c.name: c for c in checks}


@pytest.fixture
def one_file_install(a4c):
    (a4c.data_dir / "csar").mkdir()
    (a4c.data_dir / "csar" / "types.yml").write_text("tosca: 1.3\n")
    return a4c


@pytest.fixture
def fresh_cluster():
    """elastic.cluster() is built once per process: rebuilt around a test that changes its URL."""
    elastic.cluster.cache_clear()
    yield
    elastic.cluster.cache_clear()


def test_every_check_passes_against_the_real_services_and_a_worker(
    one_file_install, start_worker, worker_env
):
    start_worker(**worker_env)

    started = time.monotonic()
    checks = by_name(health.run_checks(worker_timeout=1.0))
    took = time.monotonic() - started

    assert list(checks) == [
        "Settings",
        "Database",
        "Elasticsearch",
        "path.repo",
        "Snapshot repository",
        "Alien4Cloud",
        "Data dir",
        "Backup storage",
        "Redis",
        "Celery workers",
        "Operation lock",
        "Last backup",
        "Policies",
        "Restore drills",
    ]
    for name in (
        "Database",
        "path.repo",
        "Snapshot repository",
        "Data dir",
        "Backup storage",
        "Redis",
        "Celery workers",
        "Operation lock",
        "Policies",
        "Restore drills",
    ):
        assert checks[name].ok and checks[name].level == "ok", checks[name]
    assert checks["Elasticsearch"].level != "error"
    assert checks["Elasticsearch"].summary.startswith(("8.", "9."))
    assert "answering on queue" in checks["Celery workers"].summary
    assert checks["Last backup"].level == "warning" and "no backup" in checks["Last backup"].summary
    assert took < 6  # one second of it waits for workers to answer the ping


def test_a_cluster_with_another_name_is_an_error_naming_the_setting(one_file_install, settings):
    settings.A4C_ES_CLUSTER_NAME = "production-a4c"

    check = by_name(health.run_checks(worker_timeout=0.2))["Elasticsearch"]

    assert check.level == "error" and "not production-a4c" in check.summary
    assert "A4C_ES_CLUSTER_NAME" in check.fix


def test_a_repository_path_outside_path_repo_is_an_error_with_the_line_to_add(
    one_file_install, settings
):
    settings.A4C_ES_REPOSITORY_PATH = "/srv/elsewhere/a4c"

    checks = by_name(health.run_checks(worker_timeout=0.2))

    assert checks["path.repo"].level == "error"
    assert 'path.repo: ["/srv/elsewhere/a4c"]' in checks["path.repo"].fix
    assert checks["Snapshot repository"].summary.startswith("not checked")


def test_unreachable_elasticsearch_and_redis_say_how_to_start_them(
    one_file_install, settings, monkeypatch, fresh_cluster
):
    settings.A4C_ES_URLS = ["http://127.0.0.1:9"]
    monkeypatch.setattr(health, "_broker_url", lambda: "redis://127.0.0.1:9/0")

    started = time.monotonic()
    checks = by_name(health.run_checks(worker_timeout=0.2))

    assert time.monotonic() - started < 5
    assert checks["Elasticsearch"].level == "error"
    assert "Start Elasticsearch" in checks["Elasticsearch"].fix
    assert checks["path.repo"].summary == "not checked: Elasticsearch cannot be reached"
    assert checks["Redis"].level == "error" and "Start Redis" in checks["Redis"].fix
    assert checks["Celery workers"].summary == "not checked: Redis cannot be reached"


def test_a_missing_data_dir_and_an_unwritable_storage_are_errors(
    one_file_install, settings, tmp_path
):
    settings.A4C_DATA_DIR = tmp_path / "not-there"
    (tmp_path / "a-file").write_text("")
    settings.A4C_BACKUP_DIR = tmp_path / "a-file" / "storage"

    checks = by_name(health.run_checks(worker_timeout=0.2))

    assert checks["Data dir"].level == "error" and "does not exist" in checks["Data dir"].summary
    assert "A4C_DATA_DIR" in checks["Data dir"].fix
    assert checks["Backup storage"].level == "error"
    assert "cannot be created or written" in checks["Backup storage"].summary


def test_an_empty_data_dir_is_a_warning(a4c):
    check = by_name(health.run_checks(worker_timeout=0.2))["Data dir"]

    assert check.level == "warning" and "is empty" in check.summary


def test_no_worker_is_a_warning_until_an_operation_waits_for_one(
    one_file_install, celery_app, cli_actor
):
    alone = by_name(health.run_checks(worker_timeout=0.3))["Celery workers"]
    operations.request_backup(
        operations.BackupRequest(name="waiting", include_elasticsearch=False), cli_actor
    )
    waiting = by_name(health.run_checks(worker_timeout=0.3))

    assert alone.level == "warning" and "Start one" in alone.fix
    assert waiting["Celery workers"].level == "error"
    assert "1 queued operation(s) wait for one" in waiting["Celery workers"].summary
    assert waiting["Operation lock"].ok and "backup waiting" in waiting["Operation lock"].summary


def test_a_lock_whose_run_stopped_beating_is_a_warning(one_file_install, cli_actor, settings):
    backup = operations.request_backup(
        operations.BackupRequest(name="silent", include_elasticsearch=False), cli_actor
    )
    Backup.objects.filter(pk=backup.pk).update(
        status="running",
        heartbeat_at=timezone.now() - timedelta(seconds=settings.A4C_STALE_AFTER_SECONDS + 60),
    )

    check = by_name(health.run_checks(worker_timeout=0.2))["Operation lock"]

    assert check.level == "warning" and "seems gone" in check.summary
    locking.release("backup", backup.pk)


def test_a_last_backup_older_than_the_limit_is_a_warning(one_file_install, settings):
    settings.A4C_LAST_BACKUP_MAX_AGE_HOURS = 26
    Backup.objects.create(
        name="old", status="succeeded", finished_at=timezone.now() - timedelta(hours=30)
    )

    check = by_name(health.run_checks(worker_timeout=0.2))["Last backup"]

    assert check.level == "warning" and "old, 30 h 00 min ago: older than 26 h" in check.summary
