"""The Django admin shows every row and changes none that would then lie about what happened."""

from __future__ import annotations

import pytest
from django.urls import reverse

from backups import audit, operations
from backups.audit import Actor
from backups.models import AuditEvent, Backup, OperationLock, Policy, RestoreRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows():
    backup = Backup.objects.create(name="nightly-1", status="succeeded", actor="rita")
    run = RestoreRun.objects.create(backup=backup, status="succeeded", actor="rita")
    event = audit.record(Actor.system(), "backup.run", target="nightly-1", outcome="succeeded")
    return backup, run, event


def test_every_model_is_listed_and_each_row_opens(admin_client, rows):
    backup, run, event = rows
    for name, pk in (
        ("backup", backup.pk),
        ("restorerun", run.pk),
        ("auditevent", event.pk),
        ("operationlock", OperationLock.objects.get_or_create(pk=1)[0].pk),
    ):
        assert admin_client.get(reverse(f"admin:backups_{name}_changelist")).status_code == 200
        assert (
            admin_client.get(reverse(f"admin:backups_{name}_change", args=[pk])).status_code == 200
        )


def test_no_row_can_be_added_from_the_admin(admin_client, rows):
    for name in (
        "backup",
        "restorerun",
        "auditevent",
        "operationlock",
        "policy",
        "notificationdelivery",
        "systemstate",
    ):
        assert admin_client.get(reverse(f"admin:backups_{name}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:backups_{name}_add")).status_code == 403


def test_no_row_can_be_deleted_from_the_admin(admin_client, rows):
    backup, run, event = rows
    events = AuditEvent.objects.count()
    for name, pk in (("backup", backup.pk), ("restorerun", run.pk), ("auditevent", event.pk)):
        response = admin_client.post(
            reverse(f"admin:backups_{name}_delete", args=[pk]), {"post": "yes"}
        )
        assert response.status_code == 403
    assert Backup.objects.filter(pk=backup.pk).exists() and AuditEvent.objects.count() == events


def test_an_audit_event_cannot_be_changed_from_the_admin(admin_client, rows):
    _, _, event = rows
    url = reverse("admin:backups_auditevent_change", args=[event.pk])

    page = admin_client.get(url).content.decode()
    admin_client.post(url, {"actor": "mallory", "outcome": "failed"})

    assert 'name="actor"' not in page and "Save" not in page
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.actor == "system" and event.outcome == "succeeded"
    assert audit.verify_chain().ok


def test_the_audit_list_offers_no_bulk_delete(admin_client, rows):
    page = admin_client.get(reverse("admin:backups_auditevent_changelist")).content.decode()

    assert "delete_selected" not in page


def test_a_backup_status_cannot_be_changed_but_its_description_can(admin_client, rows):
    backup, _, _ = rows
    url = reverse("admin:backups_backup_change", args=[backup.pk])

    page = admin_client.get(url).content.decode()
    admin_client.post(url, {"description": "kept for the audit", "status": "failed"})

    assert 'name="description"' in page and 'name="status"' not in page
    backup.refresh_from_db()
    assert backup.description == "kept for the audit" and backup.status == "succeeded"


def test_a_running_restore_cannot_be_edited(admin_client, rows):
    _, run, _ = rows
    url = reverse("admin:backups_restorerun_change", args=[run.pk])

    admin_client.post(url, {"status": "failed"})

    run.refresh_from_db()
    assert run.status == "succeeded"


def test_a_policy_deleted_from_the_admin_goes_through_the_operation_and_is_audited(
    admin_client, settings, cli_actor
):
    policy = operations.save_policy(
        cli_actor, name="nightly", schedule="0 2 * * *", include_elasticsearch=False
    )

    response = admin_client.post(
        reverse("admin:backups_policy_delete", args=[policy.pk]), {"post": "yes"}
    )

    assert response.status_code == 302 and not Policy.objects.exists()
    event = AuditEvent.objects.get(action="policy.delete")
    assert event.target == "nightly" and event.source == "web"
