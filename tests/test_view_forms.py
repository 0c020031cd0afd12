"""What a person sees when the console refuses their input: the engine's own sentences."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from backups import operations
from backups.audit import Actor
from backups.models import AuditEvent, Backup, RestoreRun, Source

pytestmark = pytest.mark.django_db(transaction=True)


def hold_the_lock() -> Backup:
    """Another person's backup, queued and holding the operation lock."""
    return operations.request_backup(
        operations.BackupRequest(name="otto-backup", include_elasticsearch=False),
        Actor(name="otto", source=Source.CLI),
    )


def new_backup(client, **fields):
    data = {"name": "", "description": "", "include_elasticsearch": "on", "include_files": "on"}
    data.update(fields)
    return client.post(
        reverse("backups:backup_new"), {k: v for k, v in data.items() if v is not None}
    )


def restore(client, backup, **fields):
    data = {"backup": backup.pk, "scope": "files", "file_mode": "mirror", "safety_backup": "on"}
    data.update(fields)
    return client.post(reverse("backups:restore_new"), data)


def test_it_refuses_a_name_with_a_space_and_says_which_characters_are_wrong(
    client, a4c, rita, queued
):
    response = new_backup(client, name="before upgrade")

    assert response.status_code == 200
    assert (
        "The backup name may not contain space; use letters, digits and - _ ."
        in response.content.decode()
    )
    assert not Backup.objects.exists() and queued == []


def test_it_refuses_an_uppercase_name_and_suggests_the_lowercase_one(client, a4c, rita, queued):
    html = new_backup(client, name="Nightly").content.decode()

    assert (
        "Backup names are lowercase (Elasticsearch requires it): try &#x27;nightly&#x27;." in html
    )


def test_it_refuses_a_name_already_taken(client, rita, files_backup, queued):
    html = new_backup(client, name="files-1").content.decode()

    assert "A backup named &#x27;files-1&#x27; exists already; choose another name." in html


def test_it_refuses_a_backup_of_nothing(client, a4c, rita, queued):
    html = new_backup(client, include_elasticsearch=None, include_files=None).content.decode()

    assert "Choose what to back up: Elasticsearch, files, or both." in html


def test_the_name_is_checked_as_it_is_typed(client, rita, files_backup):
    url = reverse("backups:backup_name_check")

    slash = client.get(url, {"name": "a/b"}).content.decode()
    taken = client.get(url, {"name": "files-1"}).content.decode()
    free = client.get(url, {"name": "files-2"}).content.decode()
    empty = client.get(url, {"name": ""}).content.decode()

    assert "may not contain /" in slash and 'class="error"' in slash
    assert "exists already" in taken
    assert "files-2 is free" in free and 'class="ok"' in free
    assert "A dated name will be used" in empty


def test_a_backup_while_another_operation_runs_gets_the_busy_sentence(client, a4c, rita, queued):
    hold_the_lock()

    response = new_backup(client, name="mine")
    html = response.content.decode()

    assert "Another operation is running: backup otto-backup started by otto" in html
    assert "Wait for it to finish, or cancel it." in html
    assert not Backup.objects.filter(name="mine").exists() and queued == []


def test_a_restore_without_the_typed_name_is_refused_with_what_to_type(
    client, rita, files_backup, queued
):
    response = restore(client, files_backup)

    assert response.status_code == 200
    assert (
        "Type the backup&#x27;s name (files-1) to confirm the restore." in response.content.decode()
    )
    assert not RestoreRun.objects.exists() and queued == []


def test_a_restore_with_a_wrong_typed_name_is_refused(client, rita, files_backup, queued):
    html = restore(client, files_backup, confirm="files-2").content.decode()

    assert "Type the backup&#x27;s name (files-1) to confirm the restore." in html
    assert 'id="plan"' in html, "the plan stays on the page next to the error"
    assert not RestoreRun.objects.exists()


def test_a_restore_while_another_operation_runs_gets_the_busy_sentence(
    client, rita, files_backup, queued
):
    hold_the_lock()

    response = restore(client, files_backup, confirm="files-1")
    html = response.content.decode()

    assert response.status_code == 409
    assert "Another operation is running: backup otto-backup started by otto" in html
    assert not RestoreRun.objects.exists() and queued == []
    refused = AuditEvent.objects.get(action="restore.request")
    assert refused.outcome == "refused" and refused.actor == "rita"


def test_the_plan_of_chosen_indices_needs_at_least_one_index(client, rita, files_backup):
    html = client.get(
        reverse("backups:restore_new"),
        {
            "backup": files_backup.pk,
            "scope": "indices",
            "file_mode": "mirror",
        },
    ).content.decode()

    assert "Choose at least one index to restore, or restore everything." in html


def test_a_failed_backup_cannot_be_planned_for_a_restore(client, rita):
    failed = Backup.objects.create(name="broken", status=Backup.Status.FAILED, actor="rita")

    html = client.get(
        reverse("backups:restore_new"),
        {
            "backup": failed.pk,
            "scope": "all",
            "file_mode": "mirror",
        },
    ).content.decode()

    assert "Backup broken is failed; only a succeeded backup can be restored." in html


def test_verifying_a_backup_whose_manifest_vanished_says_what_is_missing(
    client, rita, files_backup, settings, queued
):
    (settings.A4C_BACKUP_DIR / "manifests" / "files-1.manifest").unlink()

    client.post(reverse("backups:backup_verify", args=[files_backup.pk]))
    operations.run_verify(queued[0][1])  # what the worker does
    html = client.get(reverse("backups:backup_detail", args=[files_backup.pk])).content.decode()

    assert "Verification failed" in html
    assert "<li>the file manifest of files-1 is missing</li>" in html


def test_only_a_succeeded_backup_can_be_asked_for_verification(client, rita, queued):
    pending = hold_the_lock()

    html = client.post(reverse("backups:backup_verify", args=[pending.pk]), follow=True)

    assert "only a succeeded backup can be verified" in html.content.decode()
    assert queued == []


def test_a_broker_that_does_not_answer_cancels_the_backup_and_frees_the_lock(
    client, a4c, rita, monkeypatch
):
    def refuse(pk):
        raise ConnectionRefusedError("Connection refused")

    monkeypatch.setattr("backups.tasks.run_backup.delay", refuse)

    response = new_backup(client, name="no-broker", include_elasticsearch=None)

    backup = Backup.objects.get(name="no-broker")
    assert backup.status == Backup.Status.CANCELLED
    assert operations.lock_holder() is None
    page = client.get(response["Location"]).content.decode()
    assert "could not be handed to a worker" in page and "start Redis and try again" in page


def test_a_name_longer_than_kept_is_refused_with_the_limit_not_cut(client, a4c, rita, queued):
    form = client.get(reverse("backups:backup_new")).content.decode()
    response = client.post(
        reverse("backups:backup_new"), {"name": "n" * 300, "include_files": "on"}
    )

    field = re.search(r'<input[^>]*name="name"[^>]*>', form).group(0)
    assert "maxlength" not in field, "the browser must not cut the name silently"
    assert "The backup name is 300 characters long; the limit is 200." in response.content.decode()
    assert not Backup.objects.exists() and queued == []


@pytest.mark.parametrize("asked", ["99999", "abc", "-1"])
def test_a_restore_link_to_a_backup_that_is_not_there_is_a_404_not_another_backup(
    client, rita, files_backup, asked
):
    response = client.get(reverse("backups:restore_new") + f"?backup={asked}")

    assert response.status_code == 404
    html = response.content.decode()
    assert f"There is no backup number &#x27;{asked}&#x27;" in html
    assert "files-1" not in html, "no other backup is preselected"


def test_the_plan_lists_every_path_a_mirror_restore_deletes_flags_it_and_offers_the_list(
    client, a4c, rita, files_backup
):
    """Issue 15.6: 80 examples of ~1,600 paths, no "and N more", one deleted file missing."""
    extra = a4c.data_dir / "images" / "added-later"
    extra.mkdir(parents=True)
    for n in range(250):
        (extra / f"f-{n:03d}.bin").write_bytes(b"y" * 10)
    (a4c.data_dir / "csar" / "types.yml").write_text("changed since the backup\n")
    query = f"?backup={files_backup.pk}&scope=files&file_mode=mirror"

    html = client.get(reverse("backups:restore_new") + query).content.decode()

    assert "This mirror restore deletes 250 files and 2 folders" in html, "counted apart"
    assert "and 52 more" in html, "200 shown, the rest counted"
    assert 'id="plan-download"' in html
    link = re.search(r'id="plan-download" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    response = client.get(link)
    lines = b"".join(response.streaming_content).decode().splitlines()

    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    removed = [line.split("\t")[2] for line in lines if line.startswith("removed\t")]
    assert len(removed) == 252 and "images/added-later/f-249.bin" in removed
    assert len(set(removed)) == len(removed), "no path twice"
    assert [line.split("\t")[2] for line in lines if line.startswith("changed\t")] == [
        "csar/types.yml"
    ]


def test_a_merge_plan_deletes_nothing_and_is_not_flagged(client, a4c, rita, files_backup):
    for n in range(150):
        (a4c.data_dir / f"new-{n}.txt").write_text("n")
    query = f"?backup={files_backup.pk}&scope=files&file_mode=merge"

    html = client.get(reverse("backups:restore_new") + query).content.decode()

    assert "deletes" not in html or "deletes nothing" in html
    assert "This mirror restore deletes" not in html
