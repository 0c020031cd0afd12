"""manage.py audit: who did what, filtered, and exported as CSV or JSON."""

from __future__ import annotations

import csv
import io
import json

import pytest
from commands import manage
from django.db import connection
from django.utils import timezone

from backups import audit
from backups.management import arguments
from backups.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def history(cli_actor, web_actor):
    audit.record(web_actor, "backup.delete", target="ancient", outcome="succeeded")
    cut = timezone.now()
    audit.record(web_actor, "auth.login", outcome="succeeded")
    audit.record(
        cli_actor,
        "backup.create",
        target="nightly",
        outcome="requested",
        parameters={"files": True},
    )
    audit.record(cli_actor, "backup.run", target="nightly", outcome="succeeded")
    audit.record(
        web_actor,
        "restore.request",
        target="nightly",
        outcome="refused",
        message="Another operation is running",
    )
    return cli_actor, web_actor, cut


def test_the_table_shows_events_oldest_first_with_their_outcome(history, capsys):
    ran = manage(capsys, "audit")

    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert len(lines) == 5
    assert lines[0].endswith("olivia (web)  backup.delete ancient  succeeded")
    assert (
        "olivia (web)  restore.request nightly  refused: Another operation is running" in lines[4]
    )


def test_filters_by_actor_action_group_and_since_combine(history, capsys):
    cli_actor, _web, cut = history

    mine = manage(capsys, "audit", "--actor", cli_actor.name, "--json")
    backups = manage(capsys, "audit", "--action", "backup", "--json")
    one_action = manage(capsys, "audit", "--action", "backup.run", "--json")
    recent = manage(capsys, "audit", "--since", cut.isoformat(), "--action", "backup", "--json")
    last_day = manage(capsys, "audit", "--since", "1d", "--json")

    assert {e["action"] for e in json.loads(mine.out)} == {"backup.create", "backup.run"}
    assert [e["action"] for e in json.loads(backups.out)] == [
        "backup.delete",
        "backup.create",
        "backup.run",
    ]
    assert [e["action"] for e in json.loads(one_action.out)] == ["backup.run"]
    assert [e["target"] for e in json.loads(recent.out)] == ["nightly", "nightly"]
    assert len(json.loads(last_day.out)) == 5


def test_the_csv_export_holds_every_column_and_the_hashes(history, capsys):
    ran = manage(capsys, "audit", "--csv")

    rows = list(csv.DictReader(io.StringIO(ran.out)))
    assert len(rows) == 5
    assert rows[2]["action"] == "backup.create"
    assert json.loads(rows[2]["parameters"]) == {"files": True}
    stored = AuditEvent.objects.get(pk=rows[2]["id"])
    assert rows[2]["hash"] == stored.hash and rows[2]["prev_hash"] == rows[1]["hash"]


def test_the_console_and_the_command_export_one_csv_that_re_verifies_offline(
    history, capsys, admin_client
):
    from datetime import datetime

    from django.urls import reverse

    ran = manage(capsys, "audit", "--csv")
    page = admin_client.get(reverse("backups:audit_export"))
    from_console = b"".join(page.streaming_content).decode()

    assert from_console.splitlines()[0] == ran.out.splitlines()[0], "one header"
    # The console lists newest first and may hold later events: every line the command wrote
    # is there, to the byte.
    assert set(ran.out.splitlines()[1:]) <= set(from_console.splitlines()[1:])
    assert len(ran.out.splitlines()) >= 6
    for row in csv.DictReader(io.StringIO(ran.out)):
        row = {k: audit.from_spreadsheet_safe(v) for k, v in row.items()}
        rebuilt = AuditEvent(
            at=datetime.fromisoformat(row["at"]),
            actor=row["actor"],
            source=row["source"],
            action=row["action"],
            target=row["target"],
            parameters=json.loads(row["parameters"]),
            outcome=row["outcome"],
            message=row["message"],
            ip=row["ip"] or None,
            user_agent=row["user_agent"],
            backup_id=int(row["backup"]) if row["backup"] else None,
            restore_id=int(row["restore"]) if row["restore"] else None,
            prev_hash=row["prev_hash"],
        )
        assert rebuilt.compute_hash() == row["hash"], f"event {row['id']} re-hashes the same"


def test_a_since_that_is_not_a_date_or_an_age_is_a_usage_error(history, capsys):
    ran = manage(capsys, "audit", "--since", "last tuesday")

    assert ran.code == arguments.USAGE and ran.err.count("\n") == 1
    assert "--since 'last tuesday' is neither a date" in ran.err


def test_csv_and_json_together_are_refused(history, capsys):
    ran = manage(capsys, "audit", "--csv", "--json")

    assert ran.code == arguments.USAGE and "not allowed with" in ran.err


def test_audit_verify_exits_0_for_an_intact_chain_and_5_after_an_edit(history, capsys):
    intact = manage(capsys, "audit_verify")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE backups_auditevent SET actor = 'mallory' WHERE action = 'backup.run'"
        )
    broken = manage(capsys, "audit_verify", "--json")

    assert intact.code == 0 and "intact" in intact.out
    assert broken.code == arguments.VERIFY_FAILED
    report = json.loads(broken.out)
    assert report["ok"] is False and "was changed after it was written" in report["problem"]
    assert broken.err.startswith("error: the audit chain is broken after")


def test_cells_a_spreadsheet_would_run_as_formulas_are_quoted_and_still_re_hash(cli_actor, capsys):
    """OWASP's rule: text from other hosts' records must not reach a spreadsheet as a formula."""
    planted = ['=HYPERLINK("http://x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "'quoted"]
    for text in planted:
        audit.record(cli_actor, "backup.import", target=text, outcome="succeeded", message=text)

    ran = manage(capsys, "audit", "--csv")

    rows = list(csv.DictReader(io.StringIO(ran.out)))[-len(planted) :]
    assert [row["target"] for row in rows] == ["'" + text for text in planted]
    assert [audit.from_spreadsheet_safe(row["message"]) for row in rows] == planted
    for row in rows:
        event = AuditEvent.objects.get(pk=row["id"])
        assert event.hash == row["hash"] and event.target == audit.from_spreadsheet_safe(
            row["target"]
        )


def test_an_action_not_declared_is_refused_before_anything_is_written(cli_actor):
    with pytest.raises(ValueError, match="declare it in AuditAction"):
        audit.record(cli_actor, "backup.frobnicate", target="x")

    assert not AuditEvent.objects.exists()


def test_the_consoles_filter_offers_every_declared_action(admin_client):
    from django.urls import reverse

    from backups.models import AuditAction

    html = admin_client.get(reverse("backups:audit")).content.decode()

    for action in ("backup.export", "backup.import", "catalog.sync", "notify.test"):
        assert f'<option value="{action}">' in html
    assert all(f'<option value="{a}">' in html for a in AuditAction.values)
