"""The console's side of disaster recovery: the archive download, the other-cluster checkbox
and the "catalog last synced" line (real files, real Elasticsearch)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from fault_support import lose_the_console_database
from people import member
from pyrage import x25519

from backups import operations
from backups.models import AuditEvent, Backup

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_restorer_downloads_an_encrypted_archive_that_imports_on_another_machine(
    client, a4c, rita, settings, tmp_path, cli_actor, take
):
    identity = x25519.Identity.generate()
    keyfile = tmp_path / "key.txt"
    keyfile.write_text(f"{identity}\n")
    settings.A4C_EXPORT_RECIPIENTS = [str(identity.to_public())]
    backup = take("files-1", rita, include_elasticsearch=False)

    page = client.get(reverse("backups:backup_detail", args=[backup.pk]))
    response = client.get(reverse("backups:backup_archive", args=[backup.pk]))

    assert b'id="download-archive"' in page.content
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="files-1.a4c"'
    archive = tmp_path / "files-1.a4c"
    archive.write_bytes(b"".join(response.streaming_content))
    assert archive.read_bytes().startswith(b"age-encryption.org/v1\n")
    asked = AuditEvent.objects.get(action="backup.export")
    assert asked.actor == "rita" and asked.parameters["to"] == "download from the console"

    settings.A4C_BACKUP_DIR = tmp_path / "second-storage"
    lose_the_console_database()
    imported = operations.import_archive(archive, cli_actor, identity=keyfile)
    assert imported.name == "files-1" and operations.verify_backup("files-1", cli_actor).ok


def test_the_console_hands_out_no_unencrypted_archive(client, a4c, rita, settings, take):
    settings.A4C_EXPORT_RECIPIENTS = []
    backup = take("files-1", rita, include_elasticsearch=False)

    response = client.get(reverse("backups:backup_archive", args=[backup.pk]), follow=True)

    assert "encrypted archives only: set A4C_EXPORT_RECIPIENTS" in response.content.decode()
    assert not AuditEvent.objects.filter(action="backup.export").exists()


def test_an_operator_refused_an_archive_is_told_the_right_it_takes(
    client, a4c, settings, otto, take
):
    settings.A4C_EXPORT_RECIPIENTS = [str(x25519.Identity.generate().to_public())]
    member("ruth", "restorers")  # the group as migration 0002 made it (a flush removes it)
    backup = take("files-1", otto, include_elasticsearch=False)

    response = client.get(reverse("backups:backup_archive", args=[backup.pk]))

    assert response.status_code == 403
    assert AuditEvent.objects.get(action="backup.export").outcome == "denied"
    refusal = " ".join(response.content.decode().split())
    assert "may not download backup archives: that takes the right “Can restore backups” " in (
        refusal
    )
    assert "(<code>backups.restore_backup</code>), which the group restorers gives." in refusal
    assert "may not restore backups" not in refusal


def test_the_backups_page_says_when_the_catalog_was_last_synced(client, a4c, rita, cli_actor):
    before = client.get(reverse("backups:backup_list")).content.decode()
    operations.sync_catalog(cli_actor)
    after = client.get(reverse("backups:backup_list")).content.decode()

    assert "Catalog never synced with the backup storage" in before
    assert "Catalog last synced with the backup storage" in after


def test_a_restore_from_another_cluster_starts_only_with_its_checkbox(
    client, a4c, rita, queued, take
):
    a4c.cluster.client.indices.create(index=a4c.index("user"), settings={"number_of_replicas": 0})
    a4c.cluster.client.index(index=a4c.index("user"), id="1", document={"u": 1}, refresh=True)
    backup = take("both-1", rita)
    Backup.objects.filter(pk=backup.pk).update(es_cluster_name="lost", es_cluster_uuid="x" * 22)
    data = {"backup": backup.pk, "scope": "all", "file_mode": "mirror", "confirm": "both-1"}

    plan = client.get(
        reverse("backups:restore_new"), {k: v for k, v in data.items() if k != "confirm"}
    )
    refused = client.post(reverse("backups:restore_new"), data)
    started = client.post(reverse("backups:restore_new"), {**data, "other_cluster": "on"})

    assert 'id="other-cluster"' in plan.content.decode()
    assert "Restore into this other cluster: Backup both-1 was taken on cluster lost" in (
        plan.content.decode()
    )
    assert "Confirm that you restore into another cluster" in refused.content.decode()
    assert started.status_code == 302 and [kind for kind, _ in queued] == ["restore"]
