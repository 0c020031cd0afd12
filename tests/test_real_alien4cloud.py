"""The whole tool against the real Alien4Cloud 3.7.0 (built from source by scripts/services.sh)
and its embedded Elasticsearch 6.8.22: the doctor, a backup under maintenance, changes made
through Alien4Cloud's REST API, a restore with the restart command, a restore that fails and
rolls back, and a worker killed mid-restore. After each, Alien4Cloud starts and shows the
users, groups, CSARs and applications it should, and its data dir holds the files it should.

Every test leaves Alien4Cloud running, out of maintenance mode; the server lives on between
test sessions, so every name a test creates carries a fresh tag.
"""

from __future__ import annotations

import json
import secrets
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from fault_support import tree, wait_for
from real_alien4cloud import real_a4c  # noqa: F401 - the fixture

from backups import operations, tasks
from backups.alien4cloud import client as alien4cloud
from backups.alien4cloud import content
from backups.doctor.alien4cloud import alien4cloud_check
from backups.doctor.checks import run_checks
from backups.elastic import client as elastic
from backups.errors import Alien4CloudSignInError
from backups.models import A4CMaintenance, Backup, RestoreRun
from backups.operations import locking

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tool(real_a4c, settings, tmp_path):  # noqa: F811
    """The tool's settings pointed at the real server, as `services.sh env a4c` prints them."""
    env = real_a4c.env
    settings.A4C_SERVER_URL = env["A4C_SERVER_URL"]
    settings.A4C_SERVER_USERNAME = env["A4C_SERVER_USERNAME"]
    settings.A4C_SERVER_PASSWORD = env["A4C_SERVER_PASSWORD"]
    settings.A4C_SERVER_PASSWORD_FILE = ""
    settings.A4C_MAINTENANCE = env["A4C_MAINTENANCE"]
    settings.A4C_MAINTENANCE_UPDATE_SECONDS = 0.2
    settings.A4C_RESTART_COMMAND = env["A4C_RESTART_COMMAND"]
    settings.A4C_ES_URLS = [env["A4C_ES_URLS"]]
    settings.A4C_ES_CLUSTER_NAME = env["A4C_ES_CLUSTER_NAME"]
    settings.A4C_ES_REPOSITORY = "a4c-backup"
    settings.A4C_ES_REPOSITORY_PATH = env["A4C_ES_REPOSITORY_PATH"]
    settings.A4C_INDEX_INCLUDE = ["*"]
    settings.A4C_INDEX_EXCLUDE = []
    settings.A4C_DATA_DIR = real_a4c.data_dir
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    settings.A4C_POLL_SECONDS = 0.1
    elastic.cluster.cache_clear()
    yield real_a4c
    elastic.cluster.cache_clear()


@pytest.fixture
def tag() -> str:
    return secrets.token_hex(3)


def fill(server, tag: str) -> None:
    """Users with roles, groups with members, CSARs (one in two versions), applications."""
    content.create_user(server, f"ada-{tag}", "pw-ada-1", ["APPLICATIONS_MANAGER"])
    content.create_user(server, f"bo-{tag}", "pw-bo-1", ["COMPONENTS_BROWSER"])
    content.create_group(server, f"ops-{tag}", [f"ada-{tag}"], ["ARCHITECT"])
    content.create_group(server, f"dev-{tag}", [f"bo-{tag}"])
    content.upload_csar(server, content.build_csar(f"types-{tag}", "1.0.0"))
    content.upload_csar(server, content.build_csar(f"types-{tag}", "2.0.0"))
    content.upload_csar(server, content.build_csar(f"web-{tag}", "1.0.0"))
    content.create_application(server, f"Shop {tag}")
    content.create_application(server, f"Blog {tag}")


def change(server, tag: str) -> None:
    """What an operator wants undone: something deleted, something added, a group changed."""
    content.delete_application(server, content.application_id(f"Blog {tag}"))
    content.delete_csar(server, f"types-{tag}", "2.0.0")
    content.create_user(server, f"eve-{tag}", "pw-eve-1", ["ADMIN"])
    content.upload_csar(server, content.build_csar(f"late-{tag}", "0.1.0"))
    content.create_group(server, f"dev-{tag}", [f"ada-{tag}"])


def backed_up(actor, name: str) -> Backup:
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name=name), actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    return backup


def answering(real) -> content.State:
    """Alien4Cloud up, out of maintenance, serving its content."""
    server = real.server()
    assert server.health().up
    assert server.maintenance() is None
    return content.snapshot_state(server)


def test_the_doctor_finds_alien4cloud_and_its_embedded_elasticsearch(tool):
    checks = {check.name: check for check in run_checks(lock=False)}

    assert checks["Elasticsearch"].ok, checks["Elasticsearch"].summary
    assert "6.8.22" in checks["Elasticsearch"].summary
    assert "escluster" in checks["Elasticsearch"].summary
    found = alien4cloud_check()
    assert found.level == "ok", found.summary
    assert "signed in as admin (ADMIN)" in found.summary


def test_backup_changes_restore_and_restart_give_back_the_same_content_and_files(
    tool, tag, cli_actor
):
    server = tool.server()
    fill(server, tag)
    before, files_before = content.snapshot_state(server), tree(tool.data_dir)
    started = timezone.now()

    backup = backed_up(cli_actor, f"real-{tag}")

    assert backup.a4c_maintenance == A4CMaintenance.RELEASED
    assert backup.es_version == "6.8.22"
    assert not backup.warnings, "the counts are the snapshot's"
    banner = banner_updates(tool, started)
    assert len(banner) >= 3 and banner[-1] == 100 and banner[0] < 100, banner
    assert server.maintenance() is None

    change(server, tag)
    assert content.snapshot_state(server) != before

    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert run.a4c_maintenance == A4CMaintenance.RELEASED
    assert "answers /rest/admin/health" in run.state["restart"]
    assert answering(tool) == before
    assert tree(tool.data_dir) == files_before


def banner_updates(real, since) -> list[int]:
    """The progress of each update the tool sent to Alien4Cloud's banner since ``since``, as
    Alien4Cloud's own audit trail keeps them."""
    client = elastic.cluster().client
    client.indices.refresh(index="audittrace")
    query = alien4cloud.own_maintenance_calls(real.username, since)
    hits = client.search(index="audittrace", query=query, size=500, sort="timestamp:asc")
    return [
        json.loads(hit["_source"]["requestBody"])["progressPercentage"]
        for hit in hits["hits"]["hits"]
        if hit["_source"]["method"] == "PUT"
    ]


def test_a_restore_that_fails_rolls_back_and_alien4cloud_starts_with_its_data(
    tool, tag, cli_actor, settings
):
    server = tool.server()
    fill(server, tag)
    backup = backed_up(cli_actor, f"real-{tag}")
    change(server, tag)
    changed, changed_files = content.snapshot_state(server), tree(tool.data_dir)
    # The indices are restored when the post-command fails: everything must go back.
    settings.A4C_POST_RESTORE_COMMAND = f"{sys.executable} -c 'raise SystemExit(3)'"

    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )

    assert run.status == RestoreRun.Status.ROLLED_BACK, run.error_message
    assert "put back as it was before the restore" in run.error_message
    assert "answers /rest/admin/health" in run.state["restart"]
    assert answering(tool) == changed
    assert tree(tool.data_dir) == changed_files


HELD_IN_POST_RESTORE = """\
import pathlib, sys, time
pathlib.Path(sys.argv[1]).touch()
time.sleep(600)  # until the test kills the worker, and this command with it
"""


def test_a_worker_killed_mid_restore_leaves_alien4cloud_startable_and_restorable(
    tool, tag, cli_actor, start_worker, settings, tmp_path
):
    server = tool.server()
    fill(server, tag)
    backup = backed_up(cli_actor, f"real-{tag}")
    change(server, tag)
    changed, changed_files = content.snapshot_state(server), tree(tool.data_dir)
    hook, reached = tmp_path / "held.py", tmp_path / "post-restore-reached"
    hook.write_text(HELD_IN_POST_RESTORE)
    worker = start_worker(
        **tool.env,
        A4C_BACKUP_DIR=settings.A4C_BACKUP_DIR,
        A4C_ES_REPOSITORY=settings.A4C_ES_REPOSITORY,
        A4C_INDEX_INCLUDE="*",
        A4C_POST_RESTORE_COMMAND=f"{sys.executable} {hook} {reached}",
    )
    run = operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    tasks.run_restore.delay(run.pk)
    wait_for(reached.exists, timeout=300, what="the restore's post-command")

    start_worker.kill(worker)  # the indices and the files are the backup's now
    later = timezone.now() + timedelta(seconds=settings.A4C_STALE_AFTER_SECONDS + 1)
    operations.recover_stale_runs(now=later)

    run.refresh_from_db()
    assert run.status == RestoreRun.Status.INTERRUPTED
    assert "Every shard it had begun restoring has finished recovering" in run.error_message
    assert run.a4c_maintenance == A4CMaintenance.STUCK, "half-restored: users stay out"
    assert locking.lock_holder() is None
    tool.restart()  # what an operator does next: it starts
    assert server.health().up
    kept = server.maintenance()  # the session it had was forgotten: it signs in again
    assert kept is not None and kept.user == tool.username, "still closed to its users"

    # The safety backup puts it back as it was before; that restore ends the maintenance.
    settings.A4C_POST_RESTORE_COMMAND = ""
    again = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(run.safety_backup.pk), cli_actor).pk
    )

    assert again.status == RestoreRun.Status.SUCCEEDED, again.error_message
    assert answering(tool) == changed
    assert tree(tool.data_dir) == changed_files
    assert operations.stuck_maintenance_runs() == []


def test_someone_elses_maintenance_refuses_a_backup_and_is_left_on(tool, tag, cli_actor):
    content.create_user(tool.server(), f"ops-{tag}", "pw-ops-1", ["ADMIN"])
    someone = alien4cloud.Server(tool.url, f"ops-{tag}", "pw-ops-1")
    someone.enable_maintenance()
    try:
        backup = operations.run_backup(
            operations.request_backup(operations.BackupRequest(name=f"r-{tag}"), cli_actor).pk
        )

        assert backup.status == Backup.Status.FAILED
        assert "With A4C_MAINTENANCE=required the backup does not start" in backup.error_message
        assert f"enabled by ops-{tag}" in backup.error_message
        assert backup.a4c_maintenance == A4CMaintenance.FOREIGN
        assert tool.server().maintenance().user == f"ops-{tag}", "left as it was"
    finally:
        assert someone.disable_maintenance()


def test_a_user_without_the_admin_role_may_not_enable_maintenance(tool, tag):
    content.create_user(tool.server(), f"viewer-{tag}", "pw-viewer-1", ["COMPONENTS_BROWSER"])
    viewer = alien4cloud.Server(tool.url, f"viewer-{tag}", "pw-viewer-1")

    assert not viewer.sign_in().is_admin
    with pytest.raises(Alien4CloudSignInError, match="must name a user with the ADMIN role"):
        viewer.enable_maintenance()
    assert tool.server().maintenance() is None
