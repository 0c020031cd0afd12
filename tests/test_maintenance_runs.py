"""Backups and restores inside Alien4Cloud's maintenance mode: the real worker, the real
Elasticsearch, real files, and the Alien4Cloud REST stand-in (its state in a real index).

The hook commands call the stand-in at /rest/hook/<name>, so the order of hooks and
maintenance calls is one list, and the answer each hook got (503 while maintenance is on) says
on which side of maintenance it ran.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from fault_support import wait_for

from backups import operations, tasks
from backups.alien4cloud import client as alien4cloud
from backups.demo import generator as demo
from backups.models import A4CMaintenance, AuditEvent, Backup, RestoreRun
from backups.operations import locking

pytestmark = pytest.mark.django_db(transaction=True)

HOOK = """\
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=30)
except urllib.error.HTTPError:
    pass  # 503 while maintenance is on: the stand-in recorded the call, which is the point
"""


@pytest.fixture
def installed(a4c, a4c_standin):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    # Alien4Cloud creates its maintenance index at its first start; empty while it is off.
    a4c.cluster.client.indices.create(index=a4c_standin.index)
    return a4c


@pytest.fixture
def hook(tmp_path, a4c_standin):
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    return lambda name: f"{sys.executable} {script} {a4c_standin.url}/rest/hook/{name}"


@pytest.fixture
def a4c_worker_env(worker_env, settings) -> dict:
    return {
        **worker_env,
        "A4C_SERVER_URL": settings.A4C_SERVER_URL,
        "A4C_SERVER_USERNAME": settings.A4C_SERVER_USERNAME,
        "A4C_SERVER_PASSWORD": settings.A4C_SERVER_PASSWORD,
        "A4C_MAINTENANCE": settings.A4C_MAINTENANCE,
        "A4C_MAINTENANCE_UPDATE_SECONDS": settings.A4C_MAINTENANCE_UPDATE_SECONDS,
        "A4C_SERVER_TIMEOUT": settings.A4C_SERVER_TIMEOUT,
    }


def finished(model, pk, timeout=180.0):
    """The run, once it is over: its row final and the lock (held to the very end) free."""
    return wait_for(
        lambda: (
            locking.lock_holder() is None
            and model.objects.filter(pk=pk).exclude(status__in=model.ACTIVE).first()
        ),
        timeout=timeout,
        what=f"{model.__name__} {pk} to finish",
    )


def saved_maintenance_documents(a4c_standin) -> int:
    return a4c_standin.saved_documents()


def alice(a4c_standin) -> alien4cloud.Server:
    return alien4cloud.Server(a4c_standin.url, "alice", "pw-alice")


# --- with the worker: the order of calls ---------------------------------------------------


def test_a_backup_by_the_worker_runs_between_its_hooks_inside_maintenance(
    installed, a4c_standin, start_worker, a4c_worker_env, hook, cli_actor, pause_points
):
    start_worker(
        **{**a4c_worker_env, "A4C_MAINTENANCE_UPDATE_SECONDS": 0},  # every change is sent
        **pause_points.env,
        A4C_PRE_BACKUP_COMMAND=hook("pre-backup"),
        A4C_POST_BACKUP_COMMAND=hook("post-backup"),
    )
    pause_points.arm("backup-files", 0.5)
    backup = operations.request_backup(
        operations.BackupRequest(name="under-maintenance"), cli_actor
    )
    tasks.run_backup.delay(backup.pk)
    pause_points.reached("backup-files")  # half the files copied, the run held there
    held = Backup.objects.get(pk=backup.pk)
    banner = [c.body for c in a4c_standin.calls if c.method == "PUT" and c.body]
    pause_points.disarm("backup-files")
    backup = finished(Backup, backup.pk)

    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    assert a4c_standin.sequence() == [
        "GET pre-backup",
        "POST maintenance",
        "PUT maintenance",
        "GET maintenance",
        "DELETE maintenance",
        "GET post-backup",
    ]
    assert a4c_standin.hook_status("pre-backup") != 503
    assert a4c_standin.hook_status("post-backup") != 503
    # the banner was updated while the files were being copied, with the row's own figure
    assert banner[-1]["message"].startswith("a4c-backup: backing up, files ")
    assert 0 < banner[-1]["progressPercentage"] == held.percent < 100, "the progress moved"
    # The snapshot and the files describe one moment, and the snapshot says so.
    assert backup.indices[a4c_standin.index]["docs"] == 1
    assert backup.a4c_maintenance == A4CMaintenance.RELEASED
    assert alien4cloud.server().maintenance() is None
    assert saved_maintenance_documents(a4c_standin) == 0
    audit = AuditEvent.objects.filter(action="a4c.maintenance").order_by("id")
    assert [e.message for e in audit] == [
        "enabled for backup under-maintenance",
        "disabled after backup under-maintenance taken",
    ]


def test_a_restore_by_the_worker_holds_maintenance_from_before_the_safety_backup_to_the_end(
    installed, a4c_standin, start_worker, a4c_worker_env, hook, cli_actor, settings
):
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    a4c_standin.calls.clear()
    start_worker(
        **a4c_worker_env,
        A4C_PRE_RESTORE_COMMAND=hook("pre-restore"),
        A4C_POST_RESTORE_COMMAND=hook("post-restore"),
        A4C_RESTART_COMMAND=hook("restart"),
    )
    run = operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    tasks.run_restore.delay(run.pk)
    run = finished(RestoreRun, run.pk)

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert a4c_standin.sequence() == [
        "GET maintenance",  # the plan, made when the restore was asked for, shows the state
        "POST maintenance",
        "PUT maintenance",  # starting, the safety backup, the pre-command
        "GET pre-restore",
        "PUT maintenance",  # the files (none while the indices are restored)
        "GET post-restore",
        "PUT maintenance",  # verify, the end
        "GET maintenance",
        "DELETE maintenance",
        "GET restart",
        "GET health",
    ]
    assert a4c_standin.hook_status("pre-restore") == 503, "the hooks run inside maintenance"
    assert run.safety_backup.a4c_maintenance == "", "the restore's maintenance covers it"
    assert run.safety_backup.indices[a4c_standin.index]["docs"] == 1
    assert run.a4c_maintenance == A4CMaintenance.RELEASED
    assert "answers /rest/admin/health" in run.state["restart"]
    messages = [c.body["message"] for c in a4c_standin.calls if c.method == "PUT" and c.body]
    assert any(m.startswith("a4c-backup: restoring base, safety backup") for m in messages)
    assert any(m.startswith("a4c-backup: restoring base, files") for m in messages)
    assert alien4cloud.server().maintenance() is None


# --- the maintenance index across a restore -------------------------------------------------


def test_a_snapshot_taken_under_maintenance_restores_without_locking_the_next_start(
    installed, a4c_standin, cli_actor, settings
):
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="locked"), cli_actor).pk
    )
    assert backup.indices[a4c_standin.index]["docs"] == 1, "it holds 'maintenance on'"

    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert saved_maintenance_documents(a4c_standin) == 0
    a4c_standin.restart()  # Alien4Cloud reads its saved state at start
    assert alien4cloud.server().maintenance() is None
    assert "Restart Alien4Cloud now" in run.state["restart"]


def test_restored_without_maintenance_a_locked_snapshot_is_unlocked_too(
    installed, a4c_standin, cli_actor, settings
):
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="locked"), cli_actor).pk
    )
    settings.A4C_MAINTENANCE = "off"
    a4c_standin.calls.clear()

    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert a4c_standin.sequence() == [], "off: Alien4Cloud is never called"
    assert saved_maintenance_documents(a4c_standin) == 0
    a4c_standin.restart()
    assert alien4cloud.server().maintenance() is None


def test_a_restore_under_maintenance_of_a_backup_taken_without_it_expects_the_one_document(
    installed, a4c_standin, cli_actor, settings
):
    settings.A4C_MAINTENANCE = "off"
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="today"), cli_actor).pk
    )
    assert backup.indices[a4c_standin.index]["docs"] == 0
    settings.A4C_MAINTENANCE = "auto"

    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert run.a4c_maintenance == A4CMaintenance.RELEASED
    assert saved_maintenance_documents(a4c_standin) == 0
    a4c_standin.restart()
    assert alien4cloud.server().maintenance() is None


# --- a worker killed mid-backup --------------------------------------------------------------


def test_a_worker_killed_mid_backup_leaves_maintenance_to_recovery_which_ends_it(
    a4c, a4c_standin, start_worker, a4c_worker_env, cli_actor, settings, pause_points
):
    demo.generate(a4c.data_dir, size=8 << 20, files=200, prefix=a4c.prefix, cluster=a4c.cluster)
    # Held a quarter of the way through its files, and killed there (test_faults_kill.py's way).
    worker = start_worker(**a4c_worker_env, **pause_points.env)
    pause_points.arm("backup-files", 0.25)
    backup = operations.request_backup(operations.BackupRequest(name="killed"), cli_actor)
    tasks.run_backup.delay(backup.pk)
    pause_points.reached("backup-files")
    assert Backup.objects.filter(pk=backup.pk, phase="files", bytes_done__gt=0).exists()
    start_worker.kill(worker)
    assert alien4cloud.server().maintenance().user == "backup-admin", "left on by the dead"

    settings.A4C_STALE_AFTER_SECONDS = 1
    operations.recover_stale_runs(now=timezone.now() + timedelta(seconds=1.5))  # aged, not slept

    backup.refresh_from_db()
    assert backup.status == Backup.Status.FAILED
    assert "maintenance mode, enabled for it, was disabled" in backup.error_message
    assert backup.a4c_maintenance == A4CMaintenance.RELEASED
    assert alien4cloud.server().maintenance() is None
    assert saved_maintenance_documents(a4c_standin) == 0


# --- someone else's maintenance, a wrong password, Alien4Cloud down -------------------------


def test_someone_elses_maintenance_is_never_taken_over_with_auto(installed, a4c_standin, cli_actor):
    alice(a4c_standin).enable_maintenance()

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="beside"), cli_actor).pk
    )

    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    assert backup.a4c_maintenance == A4CMaintenance.FOREIGN
    assert "enabled by alice" in backup.a4c_maintenance_note
    assert alien4cloud.server().maintenance().user == "alice"
    assert [c for c in a4c_standin.calls if c.method in ("PUT", "DELETE")] == []


def test_someone_elses_maintenance_refuses_the_backup_with_required(
    installed, a4c_standin, cli_actor, settings
):
    settings.A4C_MAINTENANCE = "required"
    alice(a4c_standin).enable_maintenance()

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="refused"), cli_actor).pk
    )

    assert backup.status == Backup.Status.FAILED
    assert "enabled by alice" in backup.error_message
    assert "A4C_MAINTENANCE=required" in backup.error_message
    assert backup.indices == {} and backup.file_count == 0, "nothing was taken"
    assert alien4cloud.server().maintenance().user == "alice"


def test_a_wrong_password_backs_up_without_maintenance_with_auto_and_says_so(
    installed, a4c_standin, cli_actor, settings
):
    settings.A4C_SERVER_PASSWORD = "wrong"

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="no-sign-in"), cli_actor).pk
    )

    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    assert backup.a4c_maintenance == A4CMaintenance.UNAVAILABLE
    assert "A4C_SERVER_PASSWORD" in backup.a4c_maintenance_note


def test_a_wrong_password_refuses_the_restore_with_required_and_changes_nothing(
    installed, a4c_standin, cli_actor, settings
):
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    before = installed.state()
    settings.A4C_MAINTENANCE = "required"
    settings.A4C_SERVER_PASSWORD = "wrong"

    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )

    assert run.status == RestoreRun.Status.FAILED
    assert "A4C_SERVER_PASSWORD" in run.error_message and "Nothing had been" in run.error_message
    assert run.safety_backup is None
    assert installed.state() == before


def test_alien4cloud_down_backs_up_without_maintenance_with_auto(installed, a4c_standin, cli_actor):
    a4c_standin.stop()

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="a4c-down"), cli_actor).pk
    )

    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    assert backup.a4c_maintenance == A4CMaintenance.UNAVAILABLE
    assert "cannot be reached" in backup.a4c_maintenance_note


def test_alien4cloud_down_refuses_the_backup_with_required(
    installed, a4c_standin, cli_actor, settings
):
    settings.A4C_MAINTENANCE = "required"
    a4c_standin.stop()

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="a4c-down"), cli_actor).pk
    )

    assert backup.status == Backup.Status.FAILED
    assert "cannot be reached" in backup.error_message
    assert "A4C_MAINTENANCE=required" in backup.error_message


# --- what Alien4Cloud writes of our own calls, and a rollback that cannot finish ------------

MEDDLE = """\
import json, sys, urllib.request
es, index, repository, kept = sys.argv[1:5]
def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(es + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=30))
# someone else's call, audited while the restore runs: not ours to expect
call("POST", "/" + index + "/_doc?refresh=true", {"userName": "alice", "method": "POST",
     "path": "/rest/latest/applications", "timestamp": 0})
if len(sys.argv) > 5:  # and the safety snapshot gone: the rollback has nothing to restore
    for snapshot in call("GET", "/_snapshot/" + repository + "/_all")["snapshots"]:
        if snapshot["snapshot"] != kept:
            call("DELETE", "/_snapshot/" + repository + "/" + snapshot["snapshot"])
"""


def meddling_hook(tmp_path, settings, a4c, kept: str, *, lose_safety: bool = False) -> str:
    script = tmp_path / "meddle.py"
    script.write_text(MEDDLE)
    return " ".join(
        [
            sys.executable,
            str(script),
            settings.A4C_ES_URLS[0],
            a4c.index("audittrace"),
            settings.A4C_ES_REPOSITORY,
            kept,
            *(["lose-safety"] if lose_safety else []),
        ]
    )


def test_the_audit_traces_of_the_restores_own_maintenance_calls_are_expected(
    installed, a4c_standin, cli_actor
):
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    assert not backup.warnings, "the backup's counts are the snapshot's"
    traces = installed.index("audittrace")

    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    after = installed.documents("audittrace")
    ours = [t for t in after.values() if t.get("path") == alien4cloud.MAINTENANCE_PATH]
    assert len(after) > backup.indices[traces]["docs"], "Alien4Cloud traced the restore's calls"
    assert {t["method"] for t in ours} >= {"POST", "PUT"}


def test_a_document_written_by_someone_else_during_the_restore_is_not_taken_for_ours(
    installed, a4c_standin, cli_actor, settings, tmp_path
):
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    settings.A4C_POST_RESTORE_COMMAND = meddling_hook(tmp_path, settings, installed, "base")

    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )

    assert run.status == RestoreRun.Status.ROLLED_BACK
    assert f"index {installed.index('audittrace')} holds" in run.error_message
    assert run.a4c_maintenance == A4CMaintenance.RELEASED
    assert alien4cloud.server().maintenance() is None


def test_a_rollback_that_cannot_bring_the_data_back_leaves_maintenance_on_and_no_restart(
    installed, a4c_standin, cli_actor, settings, tmp_path, hook
):
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    settings.A4C_POST_RESTORE_COMMAND = meddling_hook(
        tmp_path, settings, installed, "base", lose_safety=True
    )
    settings.A4C_RESTART_COMMAND = hook("restart")

    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )

    assert run.status == RestoreRun.Status.FAILED
    assert "The automatic rollback failed too" in run.error_message
    assert run.a4c_maintenance == A4CMaintenance.STUCK
    assert "left in maintenance mode" in run.a4c_maintenance_note
    assert "was not restarted" in run.state["restart"]
    assert f"Restore safety backup {run.safety_backup.name}" in run.state["restart"]
    assert "GET restart" not in a4c_standin.sequence(), "never restarted over unsure data"
    state = alien4cloud.server().maintenance()
    assert state is not None and state.user == settings.A4C_SERVER_USERNAME
    assert operations.stuck_maintenance_runs() == [run]

    # A backup meanwhile leaves it on: it is not what puts the data right.
    operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="meanwhile"), cli_actor).pk
    )
    assert alien4cloud.server().maintenance() is not None
    assert operations.stuck_maintenance_runs() == [run]

    # The next restore takes the maintenance over, and ends it when it succeeds.
    settings.A4C_POST_RESTORE_COMMAND = ""
    again = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )

    assert again.status == RestoreRun.Status.SUCCEEDED, again.error_message
    assert again.a4c_maintenance == A4CMaintenance.RELEASED
    assert alien4cloud.server().maintenance() is None
    assert operations.stuck_maintenance_runs() == []


# --- the row ends after the maintenance (issue 24, item 5) ----------------------------------


def rows_when_maintenance_ends(a4c_standin, model) -> list[tuple]:
    """What the console's database says (the newest row of ``model``, the lock's holder) at
    the moment Alien4Cloud's maintenance is disabled, read from the stand-in's own thread."""
    from django.db import connection

    seen = []

    def read() -> None:
        try:
            row = model.objects.order_by("-pk").values_list("status", "phase")[0]
            holder = locking.lock_holder()
            seen.append((*row, holder.kind if holder else ""))
        finally:
            connection.close()  # this thread's own connection

    a4c_standin.on_disable = read
    return seen


def test_a_restore_is_written_succeeded_only_once_maintenance_is_disabled(
    installed, a4c_standin, cli_actor
):
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    seen = rows_when_maintenance_ends(a4c_standin, RestoreRun)

    run = operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    run = operations.run_restore(run.pk)

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert len(seen) == 1, "maintenance was disabled once, by the restore"
    status, _phase, holder = seen[0]
    assert status == RestoreRun.Status.RUNNING and holder == "restore"
    assert locking.lock_holder() is None and alien4cloud.server().maintenance() is None


def test_a_backup_is_written_succeeded_only_once_maintenance_is_disabled(
    installed, a4c_standin, cli_actor
):
    seen = rows_when_maintenance_ends(a4c_standin, Backup)

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )

    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    assert len(seen) == 1
    status, _phase, holder = seen[0]
    assert status == Backup.Status.RUNNING and holder == "backup"
    assert locking.lock_holder() is None and alien4cloud.server().maintenance() is None
