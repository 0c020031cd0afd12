"""Off-site copies pushed into the real S3 server (S3Proxy) from real backups of real files and
a real Elasticsearch: after a backup, by `manage.py offsite push`, refused without recipients,
retried when the server cuts the connection, failed and notified when it stays down (the
backup stays good), listed from the bucket's markers, and deleted by retention."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone
from offsite_support import CuttingForwarder, HealOnRetry, read_copy
from pyrage import x25519

from backups import operations
from backups.errors import ConfigError
from backups.models import AuditEvent, Backup, Job, NotificationDelivery, RunKind
from backups.operations import signing as installation
from backups.operations.offsite import PAUSE_POINT
from backups.signing import canonical

pytestmark = pytest.mark.django_db(transaction=True)

SEGMENT = 256 << 10


@pytest.fixture
def identity(settings):
    """An age key pair: copies are encrypted to its public half."""
    key = x25519.Identity.generate()
    settings.A4C_EXPORT_RECIPIENTS = [str(key.to_public())]
    return key


@pytest.fixture
def copying(offsite, identity, files, settings):
    """Off-site copies on, in segments small enough for a few to make a set, retried fast; a
    megabyte of random data (it does not compress) in the data dir."""
    settings.A4C_OFFSITE_SEGMENT_SIZE = str(SEGMENT)
    settings.A4C_OFFSITE_RETRY_SECONDS = 0.05
    settings.A4C_OFFSITE_ATTEMPTS = 3
    (files.data_dir / "csar" / "random.bin").write_bytes(os.urandom(1 << 20))
    return offsite


def copy_job(backup: Backup) -> Job:
    return Job.objects.filter(kind=RunKind.OFFSITE, backup=backup).latest("id")


def members(plain: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(plain)), mode="r:") as tar:
        return tar.getnames()


def test_a_succeeded_backup_asks_for_its_copy_which_lands_encrypted_and_checked(
    copying, identity, take
):
    backup = take("nightly-1", include_elasticsearch=False)
    job = copy_job(backup)
    assert job.status == Job.Status.PENDING  # asked by the backup's aftercare, for a worker

    job = operations.run_copy(job.pk)  # what the worker runs

    assert job.status == Job.Status.SUCCEEDED, job.error_message
    marker, plain = read_copy(copying, "nightly-1", identity)
    copy = marker["copy"]
    assert copy["set_id"] == backup.set_id and copy["name"] == "nightly-1"
    assert len(copy["segments"]) >= 4, "a megabyte in 256 KiB segments"
    assert copy["installation"] == installation.installation_key().key_id
    assert installation.keyring().check(canonical(copy), marker["signature"], "marker").trusted
    names = members(plain)
    assert names[0] == "a4c-archive.json" and "record/nightly-1.json" in names
    assert "SHA256SUMS" in names and "SHA256SUMS.sig" in names
    assert job.result["archive_sha256"] == copy["archive_sha256"]
    assert job.result["segments_sent"] == len(copy["segments"])
    assert job.phase == "done" and job.percent == 100 and job.bytes_done == copy["archive_size"]
    # The marker is written last, and only the copy's objects are there.
    keys = sorted(o.key for o in copying.list())
    assert keys == sorted(["nightly-1/COPY.json"] + [s["key"] for s in copy["segments"]])
    assert AuditEvent.objects.filter(
        action="offsite.copy", target="nightly-1", outcome="succeeded"
    ).exists()


def test_a_set_with_indices_is_copied_whole(copying, identity, backup):
    job = operations.run_copy(copy_job(backup).pk)
    assert job.status == Job.Status.SUCCEEDED, job.error_message
    _, plain = read_copy(copying, backup.name, identity)
    names = members(plain)
    assert any(n.startswith("repository/") for n in names)
    assert any(n.startswith("blobs/") for n in names)


def test_offsite_push_copies_a_set_and_a_second_push_sends_nothing(copying, identity, take):
    settings_off = take("manual-1", include_elasticsearch=False)
    Job.objects.filter(backup=settings_off).delete()  # as if taken before copies were on

    out = io.StringIO()
    call_command("offsite", "push", "manual-1", "--json", stdout=out)
    first = json.loads(out.getvalue())
    assert first["segments_sent"] == first["segments"] >= 4 and not first["already"]
    read_copy(copying, "manual-1", identity)

    out = io.StringIO()
    call_command("offsite", "push", "manual-1", stdout=out)
    assert "already has a complete copy off-site" in out.getvalue()


def test_without_recipients_a_copy_is_refused_and_nothing_is_written(copying, take, settings):
    settings.A4C_EXPORT_RECIPIENTS = []
    backup = take("clear-1", include_elasticsearch=False)

    assert not Job.objects.filter(kind=RunKind.OFFSITE, backup=backup).exists()
    with pytest.raises(ConfigError, match="never written in clear"):
        operations.push_now(backup.pk, operations_actor())
    with pytest.raises(CommandError, match="A4C_EXPORT_RECIPIENTS is empty"):
        call_command("offsite", "push", "clear-1")
    assert list(copying.list()) == []
    backup.refresh_from_db()
    assert backup.status == Backup.Status.SUCCEEDED


def operations_actor():
    from backups.audit import Actor

    return Actor.system("test")


def test_a_cut_connection_is_retried_and_the_copy_lands(copying, identity, take, settings):
    forwarder = CuttingForwarder()  # cuts every connection until the first retry
    settings.A4C_OFFSITE_ENDPOINT_URL = forwarder.endpoint
    try:
        backup = take("cut-1", include_elasticsearch=False)
        with HealOnRetry(forwarder):
            job = operations.run_copy(copy_job(backup).pk)
    finally:
        forwarder.close()

    assert job.status == Job.Status.SUCCEEDED, job.error_message
    assert job.result["attempts"] == 2
    assert "did not answer" in job.result["last_error"]
    read_copy(copying, "cut-1", identity)


def test_a_server_that_goes_down_mid_push_is_retried_keeping_what_was_sent(
    copying, identity, take, settings, pause_points
):
    forwarder = CuttingForwarder(healed=True)
    settings.A4C_OFFSITE_ENDPOINT_URL = forwarder.endpoint
    backup = take("mid-1", include_elasticsearch=False)
    pause_points.arm(PAUSE_POINT, 0.5)

    def server_dies_at_the_pause() -> None:
        pause_points.reached(PAUSE_POINT)
        forwarder.cut()  # down until the push's first failed attempt is logged
        pause_points.disarm(PAUSE_POINT)

    dying = threading.Thread(target=server_dies_at_the_pause, daemon=True)
    dying.start()
    try:
        with HealOnRetry(forwarder):
            job = operations.run_copy(copy_job(backup).pk)
    finally:
        forwarder.close()
    dying.join(timeout=10)

    assert job.status == Job.Status.SUCCEEDED, job.error_message
    assert job.result["attempts"] == 2
    assert job.result["segments_kept"] >= 2, "the segments sent before the cut were kept"
    assert job.result["segments_sent"] == job.result["segments"] - job.result["segments_kept"]
    read_copy(copying, "mid-1", identity)
    assert copying.uploads() == []


def test_a_server_down_fails_the_copy_after_its_retries_and_alerts_the_backup_stays_good(
    copying, take, settings
):
    settings.A4C_NOTIFY_EMAILS = ["ops@example.org"]
    forwarder = CuttingForwarder()  # never healed: the server stays down
    settings.A4C_OFFSITE_ENDPOINT_URL = forwarder.endpoint
    backup = take("down-1", include_elasticsearch=False)

    try:
        job = operations.run_copy(copy_job(backup).pk)
    finally:
        forwarder.close()

    assert job.status == Job.Status.FAILED
    assert job.result["attempts"] == 3
    assert "did not answer" in job.error_message
    (sent,) = mail.outbox
    assert "Off-site copy of backup down-1 failed" in sent.subject
    assert "The backup itself is good" in sent.body
    assert NotificationDelivery.objects.filter(event="offsite.failed", ok=True).exists()
    backup.refresh_from_db()
    assert backup.status == Backup.Status.SUCCEEDED
    assert operations.verify_backup(backup.pk, operations_actor()).ok
    assert list(copying.list()) == []


def test_offsite_list_reads_the_markers_in_the_bucket(copying, take):
    for name in ("list-1", "list-2"):
        backup = take(name, include_elasticsearch=False)
        assert operations.run_copy(copy_job(backup).pk).status == Job.Status.SUCCEEDED
    copying.put_bytes("half-1/segments/000000.age", b"no marker: no copy")

    out = io.StringIO()
    call_command("offsite", "list", "--json", stdout=out)
    listed = json.loads(out.getvalue())

    assert sorted(c["name"] for c in listed) == ["list-1", "list-2"]
    assert all(c["trusted"] and c["local_status"] == "succeeded" for c in listed)
    out = io.StringIO()
    call_command("offsite", "list", stdout=out)
    assert "list-1" in out.getvalue() and "half-1" not in out.getvalue()


def test_retention_deletes_the_copies_of_the_sets_it_deletes(copying, take, cli_actor):
    names = ["keep-old", "keep-new"]
    for name in names:
        backup = take(name, include_elasticsearch=False)
        assert operations.run_copy(copy_job(backup).pk).status == Job.Status.SUCCEEDED
    old = Backup.objects.get(name="keep-old")

    deleted = operations_retention_delete(old, cli_actor)

    assert deleted == ["keep-old"]
    assert copying.head("keep-old/COPY.json") is None
    assert list(copying.list("keep-old/")) == []
    assert copying.head("keep-new/COPY.json") is not None
    assert AuditEvent.objects.filter(action="offsite.delete", target="keep-old").exists()


def test_keep_days_keep_a_copy_longer_than_the_set(copying, take, cli_actor, settings):
    settings.A4C_OFFSITE_KEEP_DAYS = 30
    backup = take("kept-1", include_elasticsearch=False)
    assert operations.run_copy(copy_job(backup).pk).status == Job.Status.SUCCEEDED

    operations_retention_delete(backup, cli_actor)
    assert copying.head("kept-1/COPY.json") is not None, "younger than 30 days: kept"
    assert operations.offsite_upkeep(cli_actor) == []

    later = timezone.now() + timedelta(days=31)
    assert operations.offsite_upkeep(cli_actor, later) == ["kept-1"]
    assert list(copying.list("kept-1/")) == []


def operations_retention_delete(backup: Backup, actor) -> list[str]:
    """Deletes one set through the retention engine's one path (as a policy's retention and
    `prune` do)."""
    from backups.operations.retention import Candidate, Verdict, delete_backups

    done = delete_backups([Verdict(Candidate.of(backup), True, "test")], actor)
    assert not done.failed, done.failed
    return done.names


def test_the_backups_page_says_which_sets_have_a_copy(copying, take, client, vic, settings):
    copied = take("page-1", include_elasticsearch=False)
    assert operations.run_copy(copy_job(copied).pk).status == Job.Status.SUCCEEDED
    take("page-2", include_elasticsearch=False)  # its copy asked, not run yet

    html = client.get(reverse("backups:backup_list")).content.decode()

    assert "<th>Off-site</th>" in html
    row = html[html.index(">page-1<") :].split("</tr>")[0]
    assert "✓" in row and "a verified encrypted copy is in the bucket" in row
    row = html[html.index(">page-2<") :].split("</tr>")[0]
    assert "copying" in row

    settings.A4C_OFFSITE_URL = ""
    Job.objects.filter(kind=RunKind.OFFSITE).delete()
    assert "Off-site" not in client.get(reverse("backups:backup_list")).content.decode()


def test_the_backups_own_page_shows_its_copy(copying, take, client, vic, settings):
    backup = take("detail-1", include_elasticsearch=False)
    url = reverse("backups:backup_detail", args=[backup.pk])
    assert "Copying off-site" in client.get(url).content.decode()  # asked, for a worker

    assert operations.run_copy(copy_job(backup).pk).status == Job.Status.SUCCEEDED
    html = client.get(url).content.decode()
    assert "Copied off-site" in html and "each read back and checked" in html

    settings.A4C_OFFSITE_ENDPOINT_URL = "http://127.0.0.1:9"
    settings.A4C_OFFSITE_ATTEMPTS = 1
    job = operations.request_copy(backup.pk, operations_actor())
    assert operations.run_copy(job.pk).status == Job.Status.FAILED
    html = client.get(url).content.decode()
    assert "after 1 attempt:" in html and "The backup itself is good." in html


def test_a_backup_taken_by_the_command_line_is_copied_there_after(copying, identity):
    err = io.StringIO()
    call_command("backup", "--name", "cli-1", "--files-only", stderr=err, stdout=io.StringIO())

    job = copy_job(Backup.objects.get(name="cli-1"))
    assert job.status == Job.Status.SUCCEEDED, job.error_message
    read_copy(copying, "cli-1", identity)


def test_a_copy_can_be_cancelled_and_sends_nothing(copying, take):
    backup = take("cancel-1", include_elasticsearch=False)
    job = operations.cancel(RunKind.OFFSITE, copy_job(backup).pk, operations_actor())

    assert job.status == Job.Status.CANCELLED
    assert operations.run_copy(job.pk).status == Job.Status.CANCELLED  # a worker skips it
    assert list(copying.list()) == []
