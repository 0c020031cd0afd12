"""Scheduled restore drills end to end: a real Celery worker with its beat fires a policy whose
drill setting is "every backup"; the policy's backup runs, then its drill, each a run of its
own; the drill passes, leaves the live indices and data dir as they were, and is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from fault_support import tree, wait_for

from backups import operations
from backups.elastic import drills as elastic_drills
from backups.models import AuditEvent, Backup, Job, Policy, RunKind
from backups.operations import drill_scratch

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_beat_fires_a_policys_backup_then_its_drill_which_passes(
    small_a4c, drill_place, start_worker, worker_env, cli_actor, settings
):
    a4c = small_a4c
    policy = operations.save_policy(
        cli_actor, name="nightly", schedule="0 2 * * *", drill_every="1"
    )
    # due a minute ago: the beat's first tick fires it, no wait for 02:00
    Policy.objects.filter(pk=policy.pk).update(next_run_at=timezone.now() - timedelta(minutes=1))
    live_before, files_before = a4c.state(), tree(a4c.data_dir)
    env = {
        **worker_env,
        "A4C_DRILL_INDEX_PREFIX": settings.A4C_DRILL_INDEX_PREFIX,
        "A4C_DRILL_DIR": settings.A4C_DRILL_DIR,
    }

    start_worker(beat=True, A4C_SCHEDULER_TICK_SECONDS="1", **env)

    drill = wait_for(
        lambda: Job.objects.filter(
            kind=RunKind.DRILL, status__in=(Job.Status.SUCCEEDED, Job.Status.FAILED)
        ).first(),
        timeout=180,
        what=lambda: f"the policy's drill ending; worker log:\n{start_worker.log(0)}",
    )
    Policy.objects.filter(pk=policy.pk).update(paused=True)  # no second run while the test ends

    assert drill.status == Job.Status.SUCCEEDED, drill.error_message
    backup = drill.backup
    assert backup.policy_id == policy.pk and backup.status == Backup.Status.SUCCEEDED
    assert backup.trigger == Backup.Trigger.SCHEDULE
    assert drill.actor == "policy nightly" and drill.source == "schedule"
    assert drill.started_at >= backup.finished_at, "the drill runs after the backup, not in it"
    assert drill.result["outcome"] == "passed" and drill.result["problem_count"] == 0
    assert (drill.result["indices"], drill.result["documents"]) == (2, 41)
    assert drill.result["files"] == 2 and drill.result["restore_seconds"] > 0
    # nothing Alien4Cloud reads changed, nothing of the drill is left
    assert a4c.state() == live_before
    assert tree(a4c.data_dir) == files_before
    assert elastic_drills.indices_named(a4c.cluster, drill_scratch.index_prefix(drill.pk)) == []
    assert not drill_scratch.scratch_dir(drill.pk).exists()
    # the audit history: asked for by the policy, started and succeeded in the worker
    events = AuditEvent.objects.filter(
        action__in=("drill.request", "drill.run"), target=backup.name
    ).order_by("id")
    assert [(e.action, e.outcome) for e in events] == [
        ("drill.request", "requested"),
        ("drill.run", "started"),
        ("drill.run", "succeeded"),
    ]
    assert {e.actor for e in events} == {"policy nightly"}
    policy.refresh_from_db()
    assert policy.drill_due_at is None and policy.backups_since_drill == 0
