"""Console pages with years of history: server time and SQL queries per page.

10,000 backups, 1,000 restores and 100,000 audit events are written in bulk into the scratch
database; each page is fetched through Django's test Client (the whole request: middleware,
view, template), once to warm up, then `runs` times; the median time and the query count of
the last fetch are kept.
"""

from __future__ import annotations

import time
from datetime import timedelta

from bench.common import median, say

PAGES = [
    ("dashboard", "/"),
    ("backups list", "/backups/"),
    ("backups list, page 50", "/backups/?page=50"),
    ("backups list, filtered", "/backups/?status=succeeded&who=sched"),
    ("restores list", "/restores/"),
    ("audit list", "/audit/"),
    ("audit list, page 70", "/audit/?page=70"),
    ("audit list, filtered", "/audit/?person=user3&action=restore"),
]


def fill(backups: int, restores: int, events: int) -> None:
    from django.utils import timezone

    from backups.models import AuditEvent, Backup, RestoreRun

    start = timezone.now() - timedelta(days=500)
    statuses = ["succeeded", "failed", "succeeded", "deleted", "cancelled"]
    Backup.objects.bulk_create(
        [
            Backup(
                name=f"nightly-{n:06d}",
                status=statuses[n % 5],
                trigger="schedule",
                actor="scheduler",
                source="schedule",
                created_at=start + timedelta(hours=n),
                started_at=start + timedelta(hours=n),
                finished_at=start + timedelta(hours=n, minutes=3),
                indices={"a4c-application": {"docs": n, "size": 1000 + n}},
                file_count=n,
                file_bytes=n * 1000,
            )
            for n in range(backups)
        ],
        batch_size=2000,
    )
    ids = list(Backup.objects.order_by("id").values_list("id", flat=True)[:restores])
    RestoreRun.objects.bulk_create(
        [
            RestoreRun(backup_id=pk, status="succeeded", actor="rita", safety_backup_id=pk)
            for pk in ids
        ],
        batch_size=2000,
    )
    actions = ["backup.run", "restore.request", "auth.login", "backup.verify", "restore.run"]
    for first in range(0, events, 20000):
        AuditEvent.objects.bulk_create(
            [
                AuditEvent(
                    at=start + timedelta(minutes=n),
                    actor=f"user{n % 7}",
                    source="web",
                    action=actions[n % 5],
                    target=f"nightly-{n % backups:06d}",
                    outcome="succeeded",
                    parameters={"n": n},
                    ip="10.0.0.1",
                    prev_hash=f"{n - 1:064d}",
                    hash=f"{n:064d}",
                )
                for n in range(first, min(events, first + 20000))
            ],
            batch_size=5000,
        )


def run_pages(runs: int, backups: int = 10_000, events: int = 100_000) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    say(f"pages: writing {backups} backups, {backups // 10} restores, {events} audit events")
    fill(backups, backups // 10, events)
    user = get_user_model().objects.create_superuser("bench-admin", password="bench-pw-12345")
    client = Client()
    client.force_login(user)
    results = {}
    for label, url in PAGES:
        times, count, status = [], 0, 0
        for attempt in range(runs + 1):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                if hasattr(response, "streaming_content"):
                    b"".join(response.streaming_content)
                took = time.perf_counter() - started
            status, count = response.status_code, len(captured)
            if attempt:  # the first fetch warms caches and compiles templates
                times.append(took)
        results[label] = {
            "url": url,
            "status": status,
            "queries": count,
            "ms": median(times) * 1000,
        }
        say(f"  {label} {url}: HTTP {status}, {count} queries, {median(times) * 1000:.0f} ms")
    return results
