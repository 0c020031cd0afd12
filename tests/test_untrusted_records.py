"""What comes back from the backup storage or an archive is untrusted input (issue 23): planted
records are refused by name and the good ones beside them still come in; a record cannot move
this console's own repository; an import that fails after its commit leaves nothing behind
(real Elasticsearch, real files)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import shutil
import tarfile
from datetime import datetime, timedelta
from pathlib import Path

import pyrage
import pytest
from commands import manage
from django.urls import reverse
from django.utils import timezone
from fault_support import backed_up, lose_the_cluster_state, lose_the_console_database
from people import member
from pyrage import x25519

from backups import audit, operations
from backups.errors import DamagedBackup
from backups.formatting import printable
from backups.models import AuditEvent, Backup, Policy
from backups.operations import archives, records, signing
from backups.operations.record_schema import RecordRefused, parse_record
from backups.signing import ForgedSignature
from backups.storage import Catalog

pytestmark = pytest.mark.django_db(transaction=True)

ESCAPE = "\x1b[2J"


def plant(settings, like: str, file_name: str, **changes) -> dict:
    """A record written into the shared storage by someone else, copied from ``like``'s: no
    trusted key signed it (a signature kept over changed fields is refused as forged first)."""
    folder = Path(settings.A4C_BACKUP_DIR) / "records"
    data = json.loads((folder / f"{like}.json").read_text())
    data.pop("signature")
    data["record"] = {**data["record"], "set_id": "ab" * 16, "name": file_name, **changes}
    (folder / f"{file_name}.json").write_text(json.dumps(data))
    return data


def test_sync_refuses_each_bad_record_by_name_and_imports_the_good_one_beside_them(
    small_a4c, cli_actor, settings, capsys, tmp_path, client
):
    backed_up(cli_actor, "acc1")
    plant(settings, "acc1", "counts", file_count=10**30)
    plant(settings, "acc1", "flags", pinned="x")
    plant(settings, "acc1", "later", created_at="2099-01-01T00:00:00+00:00", policy="nightly")
    plant(settings, "acc1", f"{ESCAPE}x")
    plant(settings, "acc1", "=2+5")
    fake = tmp_path / "fake-repository"  # well-formed, but what it points at is not
    fake.mkdir()
    (fake / "index-0").write_text("[1]")
    plant(settings, "acc1", "pointer", repository_location=str(fake), include_files=False)
    lose_the_console_database()

    report = operations.sync_catalog(cli_actor, foreign=True)  # the well-formed ones may come in

    assert report.imported == ["acc1"]
    assert sorted(report.refused) == sorted(["counts", "flags", "later", f"{ESCAPE}x", "=2+5"])
    text = "\n".join(report.problems)
    assert "file_count: a 31-digit number is out of range (0 to 2147483647)" in text
    assert "pinned: text 'x' where true or false belongs" in text
    assert "created_at: 2099-01-01T00:00:00+00:00 is in the future" in text
    assert "\\x1b[2Jx" in text and "\x1b" not in text
    assert "'=2+5': A backup name uses lowercase ASCII letters" in text
    assert "pointer was not imported: what its record points at could not be read" in text
    assert list(Backup.objects.values_list("name", flat=True)) == ["acc1"]

    ran = manage(capsys, "sync")

    assert ran.code == 1 and "Traceback" not in ran.err
    assert ran.err.startswith("error: sync refused 5 record(s) of the backup storage")
    assert "refused: 5 record(s), not imported:" in ran.out
    assert "\x1b" not in ran.out + ran.err and "'\\x1b[2Jx'" in ran.out
    client.force_login(member("vera", "viewers"))
    page = client.get(reverse("backups:backup_list")).content.decode()
    assert "5 records refused (not imported: malformed or planted;" in page


def test_a_carried_history_is_checked_like_its_record(small_a4c, cli_actor, settings):
    Policy.objects.create(name="nightly", schedule="0 3 * * *")
    backed_up(cli_actor, "acc1")
    history = Path(settings.A4C_BACKUP_DIR) / "records" / "acc1.history.jsonl.gz"
    lines = [json.loads(line) for line in gzip.decompress(history.read_bytes()).splitlines()]

    def carry(change) -> None:
        changed = [change(item) for item in lines]
        history.write_bytes(
            gzip.compress(b"".join(json.dumps(i).encode() + b"\n" for i in changed))
        )
        # Written by a console this one trusts (its own key): the signed record names the
        # history's digest, so only the history's own checks stand between it and the rows.
        digest = hashlib.sha256(history.read_bytes()).hexdigest()
        signed = Catalog(settings.A4C_BACKUP_DIR, signer=signing.installation_key())
        signed.rewrite(dataclasses.replace(records.read_record("acc1"), history_sha256=digest))

    def many(item):
        if "policy" in item:
            return {"policy": {**item["policy"], "settings": {"keep_last": "many"}}}
        return item

    carry(many)
    lose_the_console_database()
    report = operations.sync_catalog(cli_actor)

    assert report.imported == ["acc1"] and report.events_imported > 0
    assert "the policy 'nightly' carried by the record of acc1 was refused: keep_last:" in (
        " ".join(report.problems)
    )
    assert not Policy.objects.exists()

    def later(item):
        if "event" in item:
            return {"event": {**item["event"], "at": "2099-01-01T00:00:00.000000+00:00"}}
        return item

    carry(later)
    lose_the_console_database()
    report = operations.sync_catalog(cli_actor)

    assert report.imported == ["acc1"] and report.events_imported == 0
    assert "at: 2099-01-01T00:00:00.000000+00:00 is in the future" in " ".join(report.problems)


def test_the_schema_holds_types_ranges_and_lengths(small_a4c, cli_actor, settings):
    backed_up(cli_actor, "acc1")
    good = (Path(settings.A4C_BACKUP_DIR) / "records" / "acc1.json").read_bytes()
    assert parse_record(good, "acc1").name == "acc1"

    def refused(**changes) -> str:
        data = json.loads(good)
        data["record"].update(changes)
        with pytest.raises(RecordRefused) as caught:
            parse_record(json.dumps(data).encode(), "the record")
        return str(caught.value)

    assert "include_files: a number where true or false belongs" in refused(include_files=1)
    assert "file_bytes: -1 is out of range" in refused(file_bytes=-1)
    assert "file_count: a boolean where a whole number belongs" in refused(file_count=True)
    assert "trigger: 'nightly' is not one of web, cli, schedule, safety" in refused(
        trigger="nightly"
    )
    assert "description: 100001 characters; at most 100000" in refused(description="d" * 100_001)
    assert "description: holds control characters (\\x1b[2J" in refused(description=ESCAPE)
    typed = json.loads(good)
    typed["record"]["description"] = "typed in a text area:\r\nsecond line\tand a tab"
    assert parse_record(json.dumps(typed).encode(), "acc1").description.endswith("a tab")
    assert "actor: holds control characters" in refused(actor="root\u202egnp.exe")
    assert "manifest_sha256: 'abc' is not 64 lowercase hex digits" in refused(manifest_sha256="abc")
    assert "unknown fields 'owner'" in refused(owner="root")
    assert "has no time zone" in refused(finished_at="2020-01-01T00:00:00")
    assert "repository_location: '../../etc' is not an absolute path" in refused(
        repository_location="../../etc"
    )
    created = datetime.fromisoformat(json.loads(good)["record"]["created_at"])
    # another host's clock a little ahead is fine; A4C_RECORD_CLOCK_SKEW_SECONDS says how much
    assert parse_record(good, "acc1", now=created - timedelta(minutes=4)).name == "acc1"
    with pytest.raises(RecordRefused, match="created_at: .* is in the future"):
        parse_record(good, "acc1", now=created - timedelta(minutes=6))
    with pytest.raises(RecordRefused, match="it is not JSON"):
        parse_record(b"{" * 100_000, "deep")


def test_a_planted_record_in_an_archive_is_refused_with_nothing_written(
    small_a4c, cli_actor, settings, tmp_path, capsys
):
    backed_up(cli_actor, "acc1")
    archive = tmp_path / "acc1.a4c"
    operations.export_backup("acc1", archive, cli_actor, recipients=[])
    planted = tmp_path / "planted.a4c"

    forged = tmp_path / "forged.a4c"

    def later(name: str, data: bytes, *, signed: bool = False) -> bytes:
        if name != "record/acc1.json":
            return data
        body = json.loads(data)
        body["record"]["created_at"] = "2099-12-08T03:00:00+00:00"
        if not signed:
            body.pop("signature")
        return json.dumps(body).encode()

    rewrite(archive, planted, later)
    rewrite(archive, forged, lambda name, data: later(name, data, signed=True))
    storage = Path(settings.A4C_BACKUP_DIR)
    settings.A4C_BACKUP_DIR = tmp_path / "storage-2"
    lose_the_console_database()

    with pytest.raises(DamagedBackup, match="created_at: 2099-12-08T03:00:00\\+00:00 is in the"):
        operations.import_archive(planted, cli_actor, foreign=True)
    # Its signature kept, the record is refused for that first, before its fields are read.
    with pytest.raises(ForgedSignature, match="it was changed after it was signed"):
        operations.import_archive(forged, cli_actor, foreign=True)
    ran = manage(capsys, "import", str(planted))

    assert ran.code == 5 and "Traceback" not in ran.err
    assert "\nerror: the record in" in ran.err and "was refused: created_at" in ran.err
    assert Backup.objects.count() == 0
    second = Path(settings.A4C_BACKUP_DIR)
    assert not second.exists() or [p for p in second.rglob("*") if p.is_file()] == []
    assert not list(Path(settings.A4C_ES_REPOSITORY_PATH).parent.glob(".a4c-import-*"))
    assert storage.exists()


def test_refused_encrypted_imports_say_why_without_a_traceback(
    small_a4c, cli_actor, settings, tmp_path, capsys
):
    identity = x25519.Identity.generate()
    keyfile = tmp_path / "restorer.key"
    keyfile.write_text(f"{identity}\n")
    backed_up(cli_actor, "acc1")
    plain = tmp_path / "acc1.tar.gz"
    operations.export_backup("acc1", plain, cli_actor, recipients=[])
    archive = tmp_path / "acc1.a4c"
    operations.export_backup("acc1", archive, cli_actor, recipients=[str(identity.to_public())])
    planted = tmp_path / "planted.tar.gz"
    rewrite(
        plain, planted, lambda n, d: unsigned(n, d).replace(b'"pinned": false', b'"pinned": "x"')
    )
    sealed = tmp_path / "planted.a4c"
    sealed.write_bytes(pyrage.encrypt(planted.read_bytes(), [identity.to_public()]))
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key\n")

    here = manage(capsys, "import", str(archive), "--identity", str(keyfile))
    assert here.code == 2 and "is here already" in here.err
    settings.A4C_BACKUP_DIR = tmp_path / "storage-2"
    lose_the_console_database()
    refused = manage(capsys, "import", str(sealed), "--identity", str(keyfile))
    assert refused.code == 5 and "pinned: text 'x' where true or false belongs" in refused.err
    bad_key = manage(capsys, "import", str(archive), "--identity", str(garbage))
    assert bad_key.code == 2 and "error:" in bad_key.err

    for ran in (here, refused, bad_key):
        assert "Traceback" not in ran.err and ran.err.count("error:") == 1
    assert Backup.objects.count() == 0
    assert not list(Path(settings.A4C_ES_REPOSITORY_PATH).parent.glob(".a4c-import-*"))


def test_a_malformed_sha256sums_is_said_without_a_traceback(
    small_a4c, cli_actor, settings, tmp_path, capsys
):
    backed_up(cli_actor, "acc1")
    archive = tmp_path / "acc1.a4c"
    operations.export_backup("acc1", archive, cli_actor, recipients=[])
    broken = tmp_path / "broken.a4c"
    rewrite(archive, broken, lambda n, d: b"not a sums line\n" if n == "SHA256SUMS" else d)
    settings.A4C_BACKUP_DIR = tmp_path / "storage-2"
    lose_the_console_database()

    ran = manage(capsys, "import", str(broken))

    assert ran.code == 5 and "Traceback" not in ran.err
    assert "the SHA256SUMS of" in ran.err and "is malformed at its line 1" in ran.err
    assert Backup.objects.count() == 0


def test_an_archive_whose_indices_come_without_their_snapshot_is_refused(
    small_a4c, cli_actor, settings, tmp_path
):
    """Else its snapshot would be looked for in whatever repository its record names."""
    backed_up(cli_actor, "acc1")
    archive = tmp_path / "acc1.a4c"
    operations.export_backup("acc1", archive, cli_actor, recipients=[])
    stripped = tmp_path / "stripped.a4c"

    def without_snapshot(name: str, data: bytes) -> bytes | None:
        if name == "a4c-archive.json":  # the header agrees, so only the record can tell
            return json.dumps(json.loads(data) | {"repository_files": 0}).encode()
        if name == "SHA256SUMS":
            return b"".join(
                line for line in data.splitlines(keepends=True) if b"  repository/" not in line
            )
        return None if name.startswith("repository/") else data

    rewrite(archive, stripped, without_snapshot)
    settings.A4C_BACKUP_DIR = tmp_path / "storage-2"
    lose_the_console_database()

    with pytest.raises(DamagedBackup, match="lists [0-9]+ indices but the archive carries no"):
        operations.import_archive(stripped, cli_actor)
    assert Backup.objects.count() == 0
    second = Path(settings.A4C_BACKUP_DIR)
    assert not second.exists() or [p for p in second.rglob("*") if p.is_file()] == []


def test_an_import_that_fails_after_its_commit_takes_the_set_back_and_can_run_again(
    small_a4c, cli_actor, settings, tmp_path, es_path_repo, es_cluster, monkeypatch
):
    backed_up(cli_actor, "acc1")
    archive = tmp_path / "acc1.a4c"
    operations.export_backup("acc1", archive, cli_actor, recipients=[])
    settings.A4C_BACKUP_DIR = tmp_path / "storage-2"
    settings.A4C_ES_REPOSITORY_PATH = str(es_path_repo / f"{settings.A4C_ES_REPOSITORY}-2")
    lose_the_console_database()
    location = Path(f"{settings.A4C_ES_REPOSITORY_PATH}-import-acc1")
    real_record = archives.audit.record

    def audit_down(*args, **kwargs):
        raise RuntimeError("the audit table is locked")

    monkeypatch.setattr(archives.audit, "record", audit_down)
    try:
        with pytest.raises(RuntimeError, match="locked"):
            operations.import_archive(archive, cli_actor)

        store = operations.places.store()
        assert Backup.objects.count() == 0 and AuditEvent.objects.count() == 0
        assert not store.manifests.exists("acc1") and store.records.names() == []
        assert not location.exists()

        monkeypatch.setattr(archives.audit, "record", real_record)
        backup = operations.import_archive(archive, cli_actor)

        assert backup.name == "acc1" and store.manifests.exists("acc1") and location.is_dir()
        assert operations.verify_backup("acc1", cli_actor).ok
    finally:
        for name, repo in es_cluster.client.snapshot.get_repository().items():
            if repo["settings"].get("location", "").startswith(settings.A4C_ES_REPOSITORY_PATH):
                es_cluster.delete_repository(name)
        shutil.rmtree(location, ignore_errors=True)


def test_a_record_cannot_move_this_console_s_own_repository(
    small_a4c, cli_actor, settings, es_path_repo
):
    backed_up(cli_actor, "acc1")
    elsewhere = es_path_repo / f"{settings.A4C_ES_REPOSITORY}-elsewhere"
    shutil.copytree(settings.A4C_ES_REPOSITORY_PATH, elsewhere)  # a repository it controls
    try:
        plant(
            settings,
            "acc1",
            "planted",
            snapshot_name="acc1",
            repository_location=str(elsewhere),
            include_files=False,
        )
        report = operations.sync_catalog(cli_actor, foreign=True)
        assert report.imported == ["planted"], report.problems

        report = operations.verify_backup("planted", cli_actor)

        assert not report.ok
        assert "this console's own repository" in " ".join(report.problems)
        assert "a record cannot move it" in " ".join(report.problems)
        registered = small_a4c.cluster.repository_location(settings.A4C_ES_REPOSITORY)
        assert registered == settings.A4C_ES_REPOSITORY_PATH

        lose_the_cluster_state(small_a4c, settings)
        planted = Backup.objects.get(name="planted")
        with pytest.raises(DamagedBackup, match="a record cannot move it"):
            records.ensure_repository_for(planted)
        assert small_a4c.cluster.repository_location(settings.A4C_ES_REPOSITORY) is None

        # the genuine set still registers the repository where this console keeps it
        records.ensure_repository_for(Backup.objects.get(name="acc1"))
        registered = small_a4c.cluster.client.snapshot.get_repository(
            name=settings.A4C_ES_REPOSITORY
        )[settings.A4C_ES_REPOSITORY]["settings"]
        assert registered["location"] == settings.A4C_ES_REPOSITORY_PATH
        assert registered.get("readonly") in (None, "false")
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_texts_from_outside_are_shown_escaped_on_terminals_and_pages(
    small_a4c, cli_actor, client, capsys
):
    backup = backed_up(cli_actor, "acc1")
    # a row from before the schema (or typed here): its texts still reach no terminal raw
    Backup.objects.filter(pk=backup.pk).update(
        description=f"{ESCAPE}wiped", actor="eve\u202egnp", warnings=[f"{ESCAPE}warned"]
    )

    for argv in (("backups",), ("show", "acc1")):
        ran = manage(capsys, *argv)
        assert ran.code == 0 and "\x1b" not in ran.out + ran.err and "\u202e" not in ran.out
        assert "eve\\u202egnp" in ran.out

    assert "\\x1b[2Jwiped" in manage(capsys, "show", "acc1").out
    client.force_login(member("vera", "viewers"))
    for url in (reverse("backups:backup_list"), reverse("backups:backup_detail", args=[backup.pk])):
        page = client.get(url).content.decode()
        assert "\x1b" not in page and "\u202e" not in page and "eve\\u202egnp" in page
    # an audit event carried in from another console, its text kept as written (hashed so)
    audit.append_imported(
        at=timezone.now(),
        imported_from="another console",
        imported_hash="c" * 64,
        actor=f"{ESCAPE}eve",
        source="cli",
        action="backup.delete",
        target="acc1\u202e",
        parameters={"why": f"{ESCAPE}because"},
        outcome="succeeded",
        message=f"{ESCAPE}deleted",
        ip=None,
        user_agent="",
    )
    page = client.get(reverse("backups:audit")).content.decode()
    assert "\x1b" not in page and "\u202e" not in page
    assert "\\x1b[2Jeve" in page and "\\x1b[2Jdeleted" in page and "\\x1b[2Jbecause" in page
    assert printable("=2+5") == "=2+5" and printable("a\tb\nc") == "a\tb\nc"


def unsigned(name: str, data: bytes) -> bytes:
    """An archive's record member without its signature (as someone else would plant it)."""
    if not name.startswith("record/") or not name.endswith(".json"):
        return data
    body = json.loads(data)
    body.pop("signature")
    return json.dumps(body, indent=1).encode()


def rewrite(path: Path, target: Path, change) -> None:
    """A copy of an unencrypted archive with members' bytes changed (None: left out)."""
    with tarfile.open(path, "r:gz") as src, tarfile.open(target, "w:gz") as dst:
        for info in src:
            data = change(info.name, src.extractfile(info).read())
            if data is None:
                continue
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
