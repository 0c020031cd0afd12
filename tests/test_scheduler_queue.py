"""Policies due together take turns instead of failing on the lock (issue 15.4). Real files
and backup storage; the scheduler's tick is called as the beat calls it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups import operations
from backups.models import AuditEvent, Backup, Policy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_due(a4c, cli_actor):
    (a4c.data_dir / "csar").mkdir()
    (a4c.data_dir / "csar" / "types.yml").write_text("tosca: 1.3\n")
    policies = [
        operations.save_policy(
            cli_actor, name=name, schedule="0 2 * * *", include_elasticsearch=False
        )
        for name in ("first", "second")
    ]
    due = timezone.now() - timedelta(minutes=1)
    Policy.objects.update(next_run_at=due)
    return policies, due


def test_two_policies_due_in_the_same_minute_run_one_after_the_other(two_due):
    (first, second), due = two_due

    started = operations.start_due_policies()

    assert [b.policy_id for b in started] == [first.pk]
    second.refresh_from_db()
    assert second.last_failure_at is None and second.last_failure_message == ""
    assert second.next_run_at == due, "it stays due: its turn comes when the lock is free"
    assert not AuditEvent.objects.filter(outcome="refused").exists()

    assert operations.start_due_policies() == [], "still the first one's turn"
    operations.run_backup(started[0].pk)
    then = operations.start_due_policies()

    assert [b.policy_id for b in then] == [second.pk]
    done = operations.run_backup(then[0].pk)
    assert done.status == Backup.Status.SUCCEEDED
    second.refresh_from_db()
    assert second.next_run_at > timezone.now() and second.last_failure_at is None
