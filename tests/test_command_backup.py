"""manage.py backup: in this process or on a real worker, with its output and exit codes."""

from __future__ import annotations

import json
import os
import signal

import pytest
from commands import manage
from fault_support import wait_for

from backups import audit, operations
from backups.demo import generator as demo
from backups.management import arguments
from backups.management.progress import Reporter
from backups.models import AuditEvent, Backup, OperationLock
from backups.operations import locking

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_backup_of_demo_data_succeeds_and_says_what_it_holds(a4c, capsys):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)

    ran = manage(capsys, "backup", "--name", "nightly", "--description", "before the upgrade")

    assert ran.code == 0, ran.err
    backup = Backup.objects.get(name="nightly")
    assert backup.status == Backup.Status.SUCCEEDED
    assert backup.description == "before the upgrade"
    assert backup.index_count >= 25 and backup.file_count > 100
    assert backup.trigger == "cli" and backup.source == "cli"
    assert backup.actor == audit.Actor.command_line().name
    last = ran.out.strip().splitlines()[-1]
    assert last.startswith("backup nightly succeeded in ")
    assert f"{backup.index_count} indices ({backup.document_count} documents)" in last
    assert "elasticsearch: snapshot" in ran.out and "files" in ran.out  # plain progress lines
    assert ran.err == ""
    assert AuditEvent.objects.filter(
        action="backup.run", outcome="succeeded", actor=backup.actor, source="cli"
    ).exists()


def test_json_output_is_progress_lines_then_one_summary_object(files, capsys):
    ran = manage(capsys, "backup", "--name", "scripted", "--files-only", "--json")

    assert ran.code == 0, ran.err
    lines = [json.loads(line) for line in ran.out.splitlines()]
    progress, result = lines[:-1], lines[-1]
    assert progress and all(p["event"] == "progress" and p["kind"] == "backup" for p in progress)
    assert "files" in {p["phase"] for p in progress}
    assert result["name"] == "scripted" and result["status"] == "succeeded"
    assert result["files"] is True and result["elasticsearch"] is False
    assert result["file_count"] == 3  # the cache in work/ is left out
    assert result["id"] == Backup.objects.get(name="scripted").pk


def test_files_only_and_elasticsearch_only_together_are_refused_in_one_line(files, capsys):
    ran = manage(capsys, "backup", "--files-only", "--elasticsearch-only")

    assert ran.code == arguments.USAGE
    assert ran.err.count("\n") == 1 and ran.err.startswith("error: argument")
    assert "not allowed with" in ran.err
    assert ran.out == ""
    assert not Backup.objects.exists()


def test_an_uppercase_name_is_refused_with_the_lowercase_name_to_use(files, capsys):
    ran = manage(capsys, "backup", "--name", "Nightly")

    assert ran.code == arguments.USAGE
    assert (
        ran.err == "error: Backup names are lowercase (Elasticsearch requires it): try 'nightly'.\n"
    )
    assert not Backup.objects.exists()


def test_a_name_with_a_slash_is_refused_and_leaves_no_row(files, capsys):
    ran = manage(capsys, "backup", "--name", "a/b", "--files-only")

    assert ran.code == arguments.USAGE and "may not contain /" in ran.err
    assert "Traceback" not in ran.err and ran.err.count("\n") == 1


def test_a_taken_name_is_refused_but_unique_adds_the_date_and_time(files, capsys):
    assert manage(capsys, "backup", "--name", "weekly", "--files-only").code == 0

    again = manage(capsys, "backup", "--name", "weekly", "--files-only")
    unique = manage(capsys, "backup", "--name", "weekly", "--files-only", "--unique", "--json")

    assert again.code == arguments.USAGE and "exists already" in again.err
    second = json.loads(unique.out.splitlines()[-1])["name"]
    assert unique.code == 0 and second.startswith("weekly-") and len(second) == len("weekly-") + 15


def test_indices_chosen_with_files_only_are_a_usage_error(files, capsys):
    ran = manage(capsys, "backup", "--files-only", "--index", "application")

    assert ran.code == arguments.USAGE and "Elasticsearch is left out" in ran.err


def test_a_backup_while_another_operation_runs_exits_busy_naming_it(files, capsys, cli_actor):
    holder = operations.request_backup(
        operations.BackupRequest(name="holding-the-lock", include_elasticsearch=False), cli_actor
    )

    ran = manage(capsys, "backup", "--files-only", "--name", "second")

    assert ran.code == arguments.BUSY
    assert "holding-the-lock" in ran.err and ran.err.count("\n") == 1
    assert not Backup.objects.filter(name="second").exists()
    assert AuditEvent.objects.filter(action="backup.create", outcome="refused").exists()
    operations.cancel("backup", holder.pk, cli_actor)


def test_wait_lock_waits_for_the_running_operation_to_end(files, capsys, cli_actor, monkeypatch):
    holder = operations.request_backup(
        operations.BackupRequest(name="short", include_elasticsearch=False), cli_actor
    )
    import threading

    from django.db import connection

    refused = threading.Event()  # the command was refused the lock once, and waits
    waits = locking.wait_for_lock

    def seen_waiting(attempt, **options):
        def attempt_seen():
            claimed = attempt()
            if claimed is None:
                refused.set()
            return claimed

        return waits(attempt_seen, **options)

    monkeypatch.setattr(locking, "wait_for_lock", seen_waiting)

    def finish_once_it_waits():
        assert refused.wait(timeout=30), "the command never asked for the lock"
        operations.run_backup(holder.pk)
        connection.close()

    thread = threading.Thread(target=finish_once_it_waits)
    thread.start()
    ran = manage(capsys, "backup", "--files-only", "--name", "after", "--wait-lock", "30")
    thread.join()

    assert ran.code == 0, ran.err
    assert Backup.objects.get(name="after").status == Backup.Status.SUCCEEDED


def test_a_backup_that_fails_exits_1_with_the_rows_message(a4c, capsys):
    ran = manage(capsys, "backup", "--name", "nothing-there", "--index", a4c.index("nope-*"))

    assert ran.code == arguments.FAILED
    backup = Backup.objects.get(name="nothing-there")
    assert backup.status == Backup.Status.FAILED
    assert ran.err.strip() == f"error: backup nothing-there failed: {backup.error_message}"
    assert OperationLock.objects.get(pk=1).kind == ""


def test_ctrl_c_stops_the_backup_cleanly_and_frees_the_lock(files, capsys, settings, monkeypatch):
    settings.A4C_HEARTBEAT_SECONDS = 0.05
    for number in range(50):
        (files.data_dir / "artifacts" / f"file-{number}.txt").write_text(f"content {number}")
    original = Reporter.__call__

    def interrupted_once_files_are_read(self, run):
        if run.phase == "files" and not run.cancel_requested:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does
            # The handler asks for the cancel from a thread; the run reads it from the row.
            wait_for(
                lambda: Backup.objects.filter(pk=run.pk, cancel_requested=True).exists(),
                timeout=10,
                what="the cancel asked for",
            )
            run.cancel_requested = True
        original(self, run)

    monkeypatch.setattr(Reporter, "__call__", interrupted_once_files_are_read)
    handler_before = signal.getsignal(signal.SIGINT)

    ran = manage(capsys, "backup", "--name", "interrupted", "--files-only")

    assert ran.code == arguments.FAILED
    assert Backup.objects.get(name="interrupted").status == Backup.Status.CANCELLED
    assert "stopping the backup cleanly" in ran.err
    assert "error: backup interrupted cancelled" in ran.err
    assert OperationLock.objects.get(pk=1).kind == ""
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_queue_hands_the_backup_to_a_real_worker_and_wait_follows_it(
    files, capsys, start_worker, worker_env
):
    start_worker(**worker_env)

    queued = manage(capsys, "backup", "--name", "queued", "--files-only", "--queue")
    followed = manage(
        capsys,
        "backup",
        "--name",
        "followed",
        "--files-only",
        "--queue",
        "--wait",
        "--json",
        "--wait-lock",
        "30",
    )  # the first one holds the lock a moment

    assert queued.code == 0, queued.err
    assert "queued backup queued for a Celery worker" in queued.out
    assert "follow it with `manage.py show queued`" in queued.out
    assert followed.code == 0, followed.err
    result = json.loads(followed.out.splitlines()[-1])
    assert result["name"] == "followed" and result["status"] == "succeeded"
    backup = Backup.objects.get(name="followed")
    assert backup.task_id and backup.actor == audit.Actor.command_line().name
    wait_for(
        lambda: Backup.objects.get(name="queued").status == Backup.Status.SUCCEEDED,
        timeout=30,
        what="the queued backup succeeding",
    )
    runs = AuditEvent.objects.filter(action="backup.run", outcome="succeeded")
    assert set(runs.values_list("target", flat=True)) == {"queued", "followed"}
    assert set(runs.values_list("source", flat=True)) == {"cli"}


def test_a_progress_bar_with_an_eta_is_drawn_on_a_terminal_and_ended_with_a_newline():
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    reporter = Reporter.for_options(terminal, {"json": False})
    run = Backup(name="bar", phase="files", files_done=5, files_total=10, status="running")
    run.percent = 50  # the whole run's, as the Runner writes it

    reporter(run)
    run.files_done, run.percent = 6, 60
    reporter._last = 0  # past the interval: draw again
    reporter(run)
    reporter.finish()

    shown = terminal.getvalue()
    assert reporter.mode == "bar"
    assert "files" in shown and "6/10 files" in shown and "60%" in shown
    assert "━" in shown, "the bar itself"
    assert ":" in shown.split("6/10 files")[-1], "the time remaining column"
    assert shown.replace("\x1b[?25h", "").endswith("\n"), "the cursor is given back on a new line"
