"""Authenticity (issue 23, item 2): records and archives are signed by the installation that
wrote them; sync and import believe only this installation's key and A4C_TRUSTED_KEYS; a set
no trusted key vouches for is refused, or taken in as foreign and then kept out of policies,
"the newest good backup", series lookups and retention (real Elasticsearch, real files)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from fault_support import backed_up, lose_the_console_database

from backups import operations, selectors
from backups.doctor.settings_checks import check_settings
from backups.errors import InvalidInput
from backups.models import AuditEvent, Backup, Policy, RestoreRun
from backups.operations import records, signing
from backups.operations.record_schema import parse_record
from backups.operations.retention import prune_preview
from backups.signing import ForgedSignature, load_or_create_key
from backups.storage import Catalog, PolicyRecord, write_archive

pytestmark = pytest.mark.django_db(transaction=True)

# Later than every genuine backup, yet within the clock skew the record schema allows: what
# a planted record can still claim once the schema refuses dates in the future.
SOON = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()


def plant(settings, source: str, name: str, **changes) -> Path:
    """A record of ``name`` made from ``source``'s, its manifest beside it, unsigned: what
    anyone who can write to the backup storage can leave there."""
    storage = Path(settings.A4C_BACKUP_DIR)
    data = json.loads((storage / "records" / f"{source}.json").read_text())
    data.pop("signature")
    data["record"] = {**data["record"], "name": name, "set_id": "a" * 32, **changes}
    path = storage / "records" / f"{name}.json"
    path.write_text(json.dumps(data))
    manifests = storage / "manifests"
    shutil.copy(manifests / f"{source}.manifest", manifests / f"{name}.manifest")
    return path


def signed_elsewhere(settings, tmp_path, source: str, name: str, **changes):
    """A record of ``name`` written and signed by another installation's key."""
    other = load_or_create_key(tmp_path / "other-installation.key", "a4c-backup@other")
    plant(settings, source, name, **changes)
    catalog = Catalog(settings.A4C_BACKUP_DIR, signer=other)
    path = Path(settings.A4C_BACKUP_DIR) / "records" / f"{name}.json"
    catalog.rewrite(parse_record(path.read_bytes(), name))
    return other


def test_records_and_archives_carry_this_installations_signature(
    small_a4c, cli_actor, settings, tmp_path
):
    backed_up(cli_actor, "acc1")
    own = signing.installation_key()

    data = json.loads((Path(settings.A4C_BACKUP_DIR) / "records" / "acc1.json").read_text())
    archive = tmp_path / "acc1.tar.gz"
    operations.export_backup("acc1", archive, cli_actor, recipients=[])

    assert data["signature"]["algorithm"] == "ed25519"
    assert data["signature"]["key"] == own.key_id and own.key_id.startswith("SHA256:")
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        sig = json.loads(tar.extractfile("SHA256SUMS.sig").read())
    assert names[-2:] == ["SHA256SUMS", "SHA256SUMS.sig"] and sig["key"] == own.key_id
    shown = call_command_output("keys", "--trusted")
    assert shown.splitlines()[0] == own.public.line
    assert shown.splitlines()[0].startswith("ssh-ed25519 AAAA")
    assert f"# this installation: {own.key_id}" in shown


def call_command_output(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_a_planted_unsigned_record_is_refused_by_sync_with_what_to_do(
    small_a4c, cli_actor, settings
):
    backed_up(cli_actor, "nb-1")
    plant(settings, "nb-1", "nb-planted", created_at=SOON, finished_at=SOON)

    report = operations.sync_catalog(cli_actor)

    assert report.imported == [] and not Backup.objects.filter(name="nb-planted").exists()
    (problem,) = report.problems
    assert problem.startswith("nb-planted: the record of nb-planted is not signed: it was not")
    assert "A4C_TRUSTED_KEYS" in problem and "sync --foreign" in problem
    said = call_command_output("sync", "--foreign")
    assert "of which foreign (no trusted key signed them): nb-planted" in said
    assert Backup.objects.get(name="nb-planted").foreign


def test_a_planted_set_taken_in_as_foreign_never_makes_a_policy_delete_the_genuine_backups(
    small_a4c, cli_actor, settings
):
    """Finding 1: a record with policy "nightly" dated 2099 became the policy's newest backup,
    and `policy run nightly` (keep the newest 1) deleted the genuine ones."""
    policy = operations.save_policy(cli_actor, name="nightly", keep_last=1)
    genuine = operations.run_backup(operations.run_policy_now(policy.pk, cli_actor).pk)
    assert genuine.status == Backup.Status.SUCCEEDED, genuine.error_message
    plant(
        settings,
        genuine.name,
        "nightly-2099",
        policy="nightly",
        created_at=SOON,
        finished_at=SOON,
    )

    report = operations.sync_catalog(cli_actor, foreign=True)
    planted = Backup.objects.get(name="nightly-2099")
    call_command("policy", "run", "nightly")

    assert report.imported == report.foreign == ["nightly-2099"]
    assert planted.foreign and planted.policy is None and planted.signed_by == ""
    assert "foreign: the record of nightly-2099 is not signed" in planted.imported_from
    newest = Backup.objects.filter(policy=policy).order_by("-created_at").first()
    assert newest.pk != genuine.pk and newest.status == Backup.Status.SUCCEEDED
    assert selectors.newest_good_backup() == newest
    assert Backup.objects.get(pk=genuine.pk).status == Backup.Status.DELETED  # keep 1: by rule
    assert Backup.objects.get(name="nightly-2099").status == Backup.Status.SUCCEEDED
    considered = {v.backup.name for v in prune_preview(1, None)}
    assert "nightly-2099" not in considered, "prune neither counts nor deletes a foreign set"
    assert selectors.newest_of_series("nightly", r"-\d{4}") is None
    assert selectors.previous_backup(newest) is None, "a foreign manifest never lends hashes"
    with pytest.raises(InvalidInput, match="is a foreign set: no key trusted here vouches"):
        operations.request_restore(
            operations.RestoreRequest(planted.pk, safety_backup=False),
            cli_actor,
            confirm="nightly-2099",
        )
    plan = operations.plan_restore(operations.RestoreRequest(planted.pk, safety_backup=False))
    assert plan.foreign.startswith("Backup nightly-2099 is a foreign set")


def test_a_record_signed_by_a_trusted_installation_comes_in_trusted(
    small_a4c, cli_actor, settings, tmp_path
):
    Policy.objects.create(name="nightly", schedule="0 3 * * *")
    backed_up(cli_actor, "acc1")
    other = signed_elsewhere(settings, tmp_path, "acc1", "theirs", policy="nightly")

    refused = operations.sync_catalog(cli_actor)
    settings.A4C_TRUSTED_KEYS = [other.public.line]
    trusted = operations.sync_catalog(cli_actor)

    assert refused.imported == [] and f"signed by the key {other.key_id}" in refused.problems[0]
    assert "which this installation does not trust" in refused.problems[0]
    assert trusted.imported == ["theirs"] and trusted.foreign == [] and trusted.problems == []
    row = Backup.objects.get(name="theirs")
    assert not row.foreign and row.signed_by == other.key_id and row.policy.name == "nightly"
    # Their record, unsigned later, is theirs to write: not read, and not written over either.
    path = Path(settings.A4C_BACKUP_DIR) / "records" / "theirs.json"
    data = json.loads(path.read_text())
    data.pop("signature")
    data["record"]["pinned"] = True
    path.write_text(json.dumps(data))
    later = operations.sync_catalog(cli_actor)
    assert later.resigned == later.refreshed == [] and path.read_text() == json.dumps(data)
    assert Backup.objects.get(name="theirs").pinned is False


def test_a_signed_record_changed_afterwards_is_refused_even_as_foreign(
    small_a4c, cli_actor, settings, tmp_path
):
    backed_up(cli_actor, "acc1")
    other = signed_elsewhere(settings, tmp_path, "acc1", "theirs")
    settings.A4C_TRUSTED_KEYS = [other.public.line]
    path = Path(settings.A4C_BACKUP_DIR) / "records" / "theirs.json"
    data = json.loads(path.read_text())
    data["record"]["created_at"] = SOON
    path.write_text(json.dumps(data))

    report = operations.sync_catalog(cli_actor, foreign=True)

    assert report.imported == [] and not Backup.objects.filter(name="theirs").exists()
    assert f"does not match its signature by {other.key_id}" in report.problems[0]
    assert "changed after it was signed" in report.problems[0]


def test_this_installations_unsigned_records_are_signed_again_from_their_rows(
    small_a4c, cli_actor, settings
):
    """Records written before this change have no signature: their rows are here, so sync
    signs them, from the row; what an unsigned record says never reaches the row."""
    backup = backed_up(cli_actor, "acc1")
    assert backup.signed_by == signing.installation_key().key_id
    Backup.objects.filter(pk=backup.pk).update(signed_by="")  # a row from before signing
    path = Path(settings.A4C_BACKUP_DIR) / "records" / "acc1.json"
    data = json.loads(path.read_text())
    data.pop("signature")
    data["record"]["pinned"] = True
    path.write_text(json.dumps(data))

    report = operations.sync_catalog(cli_actor)
    again = operations.sync_catalog(cli_actor)

    assert report.resigned == ["acc1"] and report.refreshed == [] and again.resigned == []
    assert Backup.objects.get(pk=backup.pk).pinned is False
    signed = records.read_signed_record("acc1")
    assert signed.verdict.trusted and signed.verdict.key_id == signing.installation_key().key_id
    assert signed.record.pinned is False
    lose_the_console_database()
    assert operations.sync_catalog(cli_actor).imported == ["acc1"]
    assert not Backup.objects.get(name="acc1").foreign


@pytest.fixture
def other_installation(settings, tmp_path, es_path_repo, es_cluster):
    """Switches the console to another installation: its own key, storage and repository."""
    switched = []

    def switch():
        settings.A4C_SIGNING_KEY_FILE = tmp_path / "installation-2" / "signing-key"
        settings.A4C_BACKUP_DIR = tmp_path / "storage-2"
        settings.A4C_ES_REPOSITORY_PATH = str(es_path_repo / f"{settings.A4C_ES_REPOSITORY}-2")
        lose_the_console_database()
        switched.append(True)

    yield switch
    if not switched:
        return
    for name, repo in es_cluster.client.snapshot.get_repository().items():
        if repo["settings"].get("location", "").startswith(settings.A4C_ES_REPOSITORY_PATH):
            es_cluster.delete_repository(name)
    for path in es_path_repo.glob(f"{Path(settings.A4C_ES_REPOSITORY_PATH).name}*"):
        shutil.rmtree(path, ignore_errors=True)


def test_an_archive_imports_trusted_only_under_a_trusted_key_and_as_foreign_when_asked(
    small_a4c, cli_actor, settings, tmp_path, other_installation
):
    backed_up(cli_actor, "acc1")
    exporter = signing.installation_key()
    signed = tmp_path / "signed.tar.gz"
    operations.export_backup("acc1", signed, cli_actor, recipients=[])
    unsigned = tmp_path / "unsigned.tar.gz"
    job = operations.prepare_export("acc1", cli_actor, recipients=[], destination="test")
    with open(unsigned, "wb") as out:  # as an archive from before signing, or a forged one
        write_archive(out, job.store, Catalog(settings.A4C_BACKUP_DIR), job.record, job.repository)
    other_installation()
    assert signing.installation_key().key_id != exporter.key_id

    with pytest.raises(InvalidInput, match="is signed by the key .* does not trust") as untrusted:
        operations.import_archive(signed, cli_actor)
    with pytest.raises(InvalidInput, match="the archive unsigned.tar.gz is not signed"):
        operations.import_archive(unsigned, cli_actor)
    leftovers = list(Path(settings.A4C_BACKUP_DIR).rglob("*acc1*"))
    said = call_command_output("import", str(unsigned), "--foreign")
    foreign = Backup.objects.get(name="acc1")
    record = records.read_signed_record("acc1")

    assert "import --foreign" in str(untrusted.value) and leftovers == []
    assert foreign.foreign and foreign.signed_by == "" and "foreign:" in foreign.imported_from
    assert record.record.foreign and record.verdict.key_id == signing.installation_key().key_id
    assert selectors.newest_good_backup() is None
    assert "backup acc1 imported as a foreign set: restore it with `manage.py restore acc1 " in said
    assert re.search(r"foreign: +Backup acc1 is a foreign set", call_command_output("show", "acc1"))
    assert "succeeded (foreign)" in call_command_output("backups")
    # Exported again, it stays foreign: the archive says what this console holds.
    again = tmp_path / "again.tar.gz"
    operations.export_backup("acc1", again, cli_actor, recipients=[])
    with tarfile.open(again, "r:gz") as tar:
        carried = json.loads(tar.extractfile("record/acc1.json").read())
    assert carried["record"]["foreign"] is True
    assert carried["signature"]["key"] == signing.installation_key().key_id


def test_an_archive_signed_by_a_trusted_key_imports_trusted_and_a_changed_one_is_refused(
    small_a4c, cli_actor, settings, tmp_path, other_installation
):
    backed_up(cli_actor, "acc1")
    exporter = signing.installation_key()
    archive = tmp_path / "acc1.tar.gz"
    operations.export_backup("acc1", archive, cli_actor, recipients=[])
    changed = tmp_path / "changed.tar.gz"
    sums = {}
    with tarfile.open(archive, "r:gz") as src, tarfile.open(changed, "w:gz") as dst:
        for info in src:  # the header changed, and the sums made to match it
            data = src.extractfile(info).read()
            if info.name == "a4c-archive.json":
                data = json.dumps({**json.loads(data), "created": SOON}).encode()
                sums[info.name] = f"{hashlib.sha256(data).hexdigest()}  {len(data)}  {info.name}"
            if info.name == "SHA256SUMS":
                lines = data.decode().splitlines()
                data = "".join(sums.get(line.split("  ")[2], line) + "\n" for line in lines)
                data = data.encode()
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    other_installation()
    settings.A4C_TRUSTED_KEYS = [exporter.public.line]

    with pytest.raises(
        ForgedSignature, match=re.escape(f"does not match its signature by {exporter.key_id}")
    ):
        operations.import_archive(changed, cli_actor, foreign=True)
    backup = operations.import_archive(archive, cli_actor)

    assert not backup.foreign and backup.signed_by == exporter.key_id
    assert selectors.newest_good_backup() == backup


def test_the_settings_checks_name_a_bad_trusted_key_and_an_unusable_signing_key(settings, tmp_path):
    settings.A4C_TRUSTED_KEYS = ["ssh-ed25519 not-base64", str(tmp_path / "missing.pub")]
    bad_key = tmp_path / "signing-key"
    bad_key.write_text("not a key\n")
    settings.A4C_SIGNING_KEY_FILE = bad_key

    found = {p.id: p.msg for p in check_settings() if p.id in ("a4c.E021", "a4c.E022")}

    assert "does not hold an unencrypted Ed25519 private key" in found["a4c.E021"]
    assert "is not an Ed25519 public key (ssh-ed25519 AAAA...)" in found["a4c.E022"]
    settings.A4C_TRUSTED_KEYS = [str(tmp_path / "missing.pub")]
    settings.A4C_SIGNING_KEY_FILE = tmp_path / "made" / "signing-key"
    found = {p.id: p.msg for p in check_settings() if p.id in ("a4c.E021", "a4c.E022")}
    assert list(found) == ["a4c.E022"] and "missing.pub, which cannot be read" in found["a4c.E022"]
    assert oct((tmp_path / "made" / "signing-key").stat().st_mode & 0o777) == "0o600"


def test_restoring_a_foreign_set_needs_the_word_and_the_audit_keeps_it(
    small_a4c, cli_actor, settings
):
    backed_up(cli_actor, "acc1")
    plant(settings, "acc1", "planted")
    operations.sync_catalog(cli_actor, foreign=True)
    planted = Backup.objects.get(name="planted")

    run = operations.request_restore(
        operations.RestoreRequest(planted.pk, foreign=True, safety_backup=False),
        cli_actor,
        confirm="planted",
    )
    run = operations.run_restore(run.pk)

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    asked = AuditEvent.objects.get(action="restore.request", outcome="requested")
    assert asked.parameters["foreign"] is True


def test_a_history_swapped_beside_a_signed_record_brings_no_policy_and_no_event(
    small_a4c, cli_actor, settings, tmp_path
):
    Policy.objects.create(name="nightly", schedule="0 3 * * *")
    backed_up(cli_actor, "acc1")
    elsewhere = Catalog(tmp_path / "elsewhere")
    record = records.read_record("acc1")
    elsewhere.write(record, [], [PolicyRecord("planted", {"schedule": "* * * * *"})])
    shutil.copy(
        elsewhere.history_path("acc1"), Catalog(settings.A4C_BACKUP_DIR).history_path("acc1")
    )
    lose_the_console_database()

    report = operations.sync_catalog(cli_actor)

    assert report.imported == ["acc1"] and report.policies_imported == []
    assert report.events_imported == 0 and not Policy.objects.exists()
    assert "is not the one its signed record names" in report.problems[0]
