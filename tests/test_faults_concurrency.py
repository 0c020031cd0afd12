"""Two restores and a backup asked for at the same instant, from the web and the command line:
exactly one gets the lock, the others are refused naming it, and nothing is left half-made.

The web-like requests are threads (each with its own database connection) released by one
barrier; the command line is a real `manage.py backup` in another process, Django already
loaded, started by the same go signal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from django.conf import settings as django_settings
from django.db import connection
from fault_support import database_url

from backups import operations
from backups.demo import generator as demo
from backups.errors import Busy
from backups.models import AuditEvent, Backup, RestoreRun
from backups.operations import locking

pytestmark = pytest.mark.django_db(transaction=True)

COMMAND_LINE = """
import os, sys, time
import django
django.setup()
from django.core.management import execute_from_command_line
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):  # the start gun: a file, polled tightly so that the
    time.sleep(0.0005)  # command starts at the same instant as the test's three threads
execute_from_command_line(["manage.py", "backup", "--name", "from-the-command-line"])
"""


def test_two_restores_and_a_backup_at_the_same_instant_start_exactly_one(
    a4c, cli_actor, web_actor, worker_env, tmp_path
):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    base = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    assert base.status == Backup.Status.SUCCEEDED, base.error_message
    go = tmp_path / "go"
    env = {**os.environ, **{k: str(v) for k, v in worker_env.items()}}
    env["DATABASE_URL"] = database_url(connection)
    command = subprocess.Popen(
        [sys.executable, "-c", COMMAND_LINE, str(go)],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert command.stdout.readline().strip() == "ready", command.stderr.read()

    barrier = threading.Barrier(4)
    outcomes: dict[str, tuple[str, object]] = {}

    def attempt(label, ask):
        barrier.wait()
        try:
            outcomes[label] = ("won", ask())
        except Busy as busy:
            outcomes[label] = ("refused", str(busy))
        finally:
            connection.close()

    asks = {
        "web restore": lambda: operations.request_restore(
            operations.RestoreRequest(base.pk), web_actor
        ),
        "cli restore": lambda: operations.request_restore(
            operations.RestoreRequest(base.pk, scope="files"), cli_actor
        ),
        "web backup": lambda: operations.request_backup(
            operations.BackupRequest(name="from-the-web"), web_actor
        ),
    }
    threads = [threading.Thread(target=attempt, args=item) for item in asks.items()]
    for thread in threads:
        thread.start()
    go.touch()
    barrier.wait()
    for thread in threads:
        thread.join(timeout=60)
    out, err = command.communicate(timeout=120)

    winners = [label for label, (result, _) in outcomes.items() if result == "won"]
    if command.returncode == 0:
        winners.append("cli backup")
    else:
        assert command.returncode == 3, f"exit {command.returncode}: {err}"
        assert "Another operation is running" in err
    assert len(outcomes) == 3
    assert len(winners) == 1, (winners, outcomes, out, err)
    for label, (result, message) in outcomes.items():
        if result == "refused":
            assert "Another operation is running" in message, (label, message)
    assert AuditEvent.objects.filter(outcome="refused").count() == 3

    # Losers left no row behind; the winner runs to its end and frees the lock.
    made_backups = set(Backup.objects.exclude(name="base").values_list("name", flat=True))
    restores = list(RestoreRun.objects.all())
    winner = winners[0]
    if winner.endswith("restore"):
        assert made_backups == set() and len(restores) == 1
        run = operations.run_restore(restores[0].pk)
        assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    else:
        name = "from-the-web" if winner == "web backup" else "from-the-command-line"
        assert made_backups == {name} and restores == []
        backup = Backup.objects.get(name=name)
        if backup.status == Backup.Status.PENDING:
            backup = operations.run_backup(backup.pk)
        assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    assert locking.lock_holder() is None
