"""One lifecycle for every run: the moves a status may make, and an ending written last."""

from __future__ import annotations

import pytest

from backups import operations
from backups.models import Backup, Job, RestoreRun, TransitionNotAllowed
from backups.operations import locking
from backups.operations import restore as restore_ops


@pytest.mark.django_db
def test_a_status_moves_only_along_its_table_and_a_move_that_lost_says_so():
    backup = Backup.objects.create(name="moved", actor="t", status=Backup.Status.SUCCEEDED)
    late = Backup.objects.get(pk=backup.pk)

    with pytest.raises(TransitionNotAllowed):
        backup.transition(Backup.Status.RUNNING)
    assert backup.transition(Backup.Status.DELETING)
    assert not late.transition(Backup.Status.DELETING), "read as succeeded, it moved since"

    assert Backup.objects.get(pk=backup.pk).status == Backup.Status.DELETING
    assert backup.status == Backup.Status.DELETING


@pytest.mark.django_db
def test_every_status_a_table_names_is_one_its_model_has():
    for model in (Backup, RestoreRun, Job):
        named = set(model.TRANSITIONS) | {s for to in model.TRANSITIONS.values() for s in to}
        assert named <= set(model.Status.values), model


@pytest.mark.django_db(transaction=True)
def test_a_restore_reads_succeeded_only_once_everything_it_did_has_ended(
    installed, cli_actor, monkeypatch
):
    seen = {}
    end_of_restore = restore_ops.end_of_restore

    def watched(run, window, outcome):
        end_of_restore(run, window, outcome)  # maintenance off, the restart advice
        seen.update(
            outcome=outcome,
            row=RestoreRun.objects.get(pk=run.pk).status,
            lock=locking.lock_holder() is not None,
        )

    monkeypatch.setattr(restore_ops, "end_of_restore", watched)
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="last"), cli_actor).pk
    )
    run = operations.request_restore(
        operations.RestoreRequest(backup.pk), cli_actor, confirm=backup.name
    )

    run = operations.run_restore(run.pk)

    assert seen == {"outcome": "succeeded", "row": "running", "lock": True}
    assert run.status == RestoreRun.Status.SUCCEEDED
    assert locking.lock_holder() is None
