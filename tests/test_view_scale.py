"""Pages stay quick with years of history: paginated, with a fixed number of SQL queries.

10,000 backups, 1,000 restores and 100,000 audit events are written in bulk; each page must
issue exactly as many queries as it does with a few rows.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backups.models import AuditEvent, Backup, RestoreRun
from backups.web import sessions

pytestmark = pytest.mark.django_db
START = timezone.now() - timedelta(days=400)


def add_backups(first: int, count: int) -> None:
    statuses = ["succeeded", "failed", "succeeded", "deleted", "cancelled"]
    Backup.objects.bulk_create(
        [
            Backup(
                name=f"nightly-{n:06d}",
                status=statuses[n % 5],
                trigger="schedule",
                actor="scheduler",
                source="schedule",
                created_at=START + timedelta(hours=n),
                started_at=START + timedelta(hours=n),
                finished_at=START + timedelta(hours=n, minutes=3),
                indices={"a4c-application": {"docs": n, "size": 1000 + n}},
                file_count=n,
                file_bytes=n * 1000,
            )
            for n in range(first, first + count)
        ],
        batch_size=2000,
    )


def add_restores(count: int) -> None:
    backups = list(Backup.objects.order_by("id").values_list("id", flat=True)[:count])
    RestoreRun.objects.bulk_create(
        [
            RestoreRun(
                backup_id=pk,
                status="succeeded",
                actor="rita",
                created_at=START + timedelta(hours=n),
                safety_backup_id=pk,
            )
            for n, pk in enumerate(backups)
        ],
        batch_size=2000,
    )


def add_events(first: int, count: int) -> None:
    actions = ["backup.run", "restore.request", "auth.login", "backup.verify", "restore.run"]
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                at=START + timedelta(minutes=n),
                actor=f"user{n % 7}",
                source="web",
                action=actions[n % 5],
                target=f"nightly-{n % 10000:06d}",
                outcome="succeeded",
                message="",
                parameters={"n": n},
                ip="10.0.0.1",
                prev_hash=f"{n - 1:064d}",
                hash=f"{n:064d}",
            )
            for n in range(first, first + count)
        ],
        batch_size=5000,
    )


@pytest.fixture
def admin_client_with_history(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ada", password="pw-ada-12345"))
    return client


def queries_for(client, url: str, params: dict | None = None) -> int:
    """How many queries a page costs; its speed is the benchmark's to measure (bench/pages.py)."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    assert response.status_code == 200, f"{url} {params}: {response.status_code}"
    return len(captured)


PAGES = [
    ("backups:backup_list", {}),
    ("backups:backup_list", {"page": "3"}),
    ("backups:backup_list", {"status": "succeeded", "who": "sched", "date_from": "2000-01-01"}),
    ("backups:restore_list", {}),
    ("backups:dashboard", {}),
    ("backups:dashboard_live", {}),
    ("backups:audit", {}),
    ("backups:audit", {"page": "7"}),
    ("backups:audit", {"person": "user3", "action": "restore", "date_to": "2100-01-01"}),
    ("backups:audit", {"restores_only": "on"}),
]


def test_pages_issue_the_same_queries_with_a_few_rows_as_with_years_of_history(
    admin_client_with_history, monkeypatch
):
    # The session notes its last-seen time at most every LAST_SEEN_STEP seconds (3 queries);
    # filling years of history can take longer than that on a loaded machine, and those
    # queries are the session's, not the page's: keep them out of both counts.
    monkeypatch.setattr(sessions, "LAST_SEEN_STEP", float("inf"))
    client = admin_client_with_history
    add_backups(0, 10)
    add_restores(10)
    add_events(0, 35)  # enough for every filter above to match some
    few = {
        (name, tuple(params.items())): queries_for(client, reverse(name), params)
        for name, params in PAGES
    }

    add_backups(10, 9990)
    add_restores(1000)
    add_events(35, 99965)
    assert Backup.objects.count() == 10000 and AuditEvent.objects.count() >= 100000

    for name, params in PAGES:
        count = queries_for(client, reverse(name), params)
        assert count == few[(name, tuple(params.items()))], f"{name} {params}: queries grew"
        assert count <= 15, f"{name} {params}: {count} queries"


def test_the_audit_csv_streams_every_event_in_batches(admin_client_with_history):
    add_events(0, 20000)

    with CaptureQueriesContext(connection) as captured:
        response = admin_client_with_history.get(reverse("backups:audit_export"))
        body = b"".join(response.streaming_content)

    assert response.status_code == 200

    assert body.count(b"\n") == 1 + AuditEvent.objects.count() >= 1 + 20000
    assert len(captured) < 30, "fetched in chunks, not one query per row"


def test_a_backup_page_with_many_restores_stays_within_a_few_queries(
    admin_client_with_history, django_assert_max_num_queries
):
    add_backups(0, 50)
    add_restores(50)
    target = Backup.objects.order_by("id").first()
    RestoreRun.objects.bulk_create(
        [RestoreRun(backup=target, status="failed", actor="rita") for _ in range(200)]
    )

    with django_assert_max_num_queries(12):
        admin_client_with_history.get(reverse("backups:backup_detail", args=[target.pk]))
