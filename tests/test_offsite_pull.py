"""Restoring from the bucket alone (issue 27, item 4): a set pushed into the real S3 server
(S3Proxy) from a real backup of real files and a real Elasticsearch is pulled onto a new
machine (a new console database, backup storage, repository and signing key) and restored byte
for byte; a wrong key, a missing marker or segment, a truncated or tampered segment, a marker
changed after it was signed, and a copy no trusted installation signed are each refused with
the import command's exit code, the catalog, the storage and the repositories unchanged;
`sync --offsite` lists what the bucket holds, the unverifiable copies named and escaped."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from fault_support import backed_up, lose_the_cluster_state, lose_the_console_database, tree
from offsite_support import CuttingForwarder
from pyrage import x25519

from backups import objectstore, operations
from backups.models import Backup, Job, RestoreRun
from backups.objectstore import OffsiteCopy, SignedMarker
from backups.operations import records
from backups.operations import signing as installation
from backups.signing import canonical, load_or_create_key

pytestmark = pytest.mark.django_db(transaction=True)

SEGMENT = 64 << 10


@pytest.fixture
def keyfile(settings, tmp_path) -> Path:
    """The restorer's age key file; copies are encrypted to its public half."""
    identity = x25519.Identity.generate()
    settings.A4C_EXPORT_RECIPIENTS = [str(identity.to_public())]
    path = tmp_path / "restorer.key"
    path.write_text(f"# the restorer's key\n{identity}\n")
    return path


@pytest.fixture
def pushing(offsite, keyfile, settings, tmp_path):
    """Copies in 64 KiB segments, signed by the old machine's own key."""
    settings.A4C_OFFSITE_SEGMENT_SIZE = str(SEGMENT)
    settings.A4C_SIGNING_KEY_FILE = str(tmp_path / "old-machine" / "signing-key")
    return offsite


@pytest.fixture
def sizeable(files):
    """200 KiB of random data (it does not compress) in the data dir: a few segments."""
    (files.data_dir / "csar" / "random.bin").write_bytes(os.urandom(200 << 10))
    return files


def pushed(backup: Backup, actor) -> dict:
    report = operations.push_now(backup.pk, actor)
    assert report.segments >= 3 and report.segments_sent == report.segments
    return json.loads(pushing_bucket().get_bytes(objectstore.marker_key(backup.name)))


def pushing_bucket() -> objectstore.Bucket:
    return objectstore.configured()


def a_new_machine(a4c, settings, tmp_path, *, trust_the_old_one: bool = True) -> Path:
    """The host is lost: its database, its indices and repository registration, its data dir,
    its backup storage; the new machine has a storage, a repository path, a data dir (not yet
    there) and a signing key of its own, trusting the old machine's public key. Returns the
    new data dir."""
    old_key = installation.installation_key().public.line
    Job.objects.all().delete()  # the off-site copy jobs refer to the backups
    lose_the_console_database()
    lose_the_cluster_state(a4c, settings)
    shutil.rmtree(a4c.data_dir)
    shutil.rmtree(settings.A4C_BACKUP_DIR)
    new = tmp_path / "new-machine"
    settings.A4C_BACKUP_DIR = new / "storage"
    settings.A4C_ES_REPOSITORY_PATH = f"{settings.A4C_ES_REPOSITORY_PATH}-new"
    settings.A4C_DATA_DIR = new / "opt" / "a4c-data"
    settings.A4C_SIGNING_KEY_FILE = str(new / "signing-key")
    settings.A4C_TRUSTED_KEYS = [old_key] if trust_the_old_one else []
    return Path(settings.A4C_DATA_DIR)


def files_under(root) -> dict[str, str]:
    """Every file under ``root`` (if it exists) and its sha256: what a refusal must not change."""
    root = Path(root)
    found = {}
    if root.exists():
        for path in sorted(root.rglob("*")):
            if path.is_file():
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def what_counts(settings) -> tuple:
    """The catalog (rows and records), the backup storage and the repositories' files."""
    repositories = Path(settings.A4C_ES_REPOSITORY_PATH).parent
    return (
        list(Backup.objects.values_list("name", "status")),
        files_under(settings.A4C_BACKUP_DIR),
        {
            path.name: files_under(path)
            for path in repositories.glob(f"{Path(settings.A4C_ES_REPOSITORY_PATH).name}*")
        },
    )


def pull(name: str, keyfile: Path, *options: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "offsite", "pull", name, "--identity", str(keyfile), *options, stdout=out, stderr=err
    )
    return out.getvalue(), err.getvalue()


def cleanup_repositories(es_cluster, settings, es_path_repo, prefix: str) -> None:
    for name, repo in es_cluster.client.snapshot.get_repository().items():
        if repo["settings"].get("location", "").startswith(prefix):
            es_cluster.delete_repository(name)
    for path in es_path_repo.glob(f"{Path(prefix).name}*"):
        shutil.rmtree(path, ignore_errors=True)


def test_a_lost_host_is_restored_from_the_bucket_alone_byte_for_byte(
    small_a4c, pushing, keyfile, cli_actor, settings, tmp_path, es_cluster, es_path_repo
):
    (small_a4c.data_dir / "csar" / "random.bin").write_bytes(os.urandom(200 << 10))
    before_es, before_files = small_a4c.state(), tree(small_a4c.data_dir)
    backup = backed_up(cli_actor, "acc1")
    set_id = backup.set_id
    marker = pushed(backup, cli_actor)
    old_prefix = settings.A4C_ES_REPOSITORY_PATH
    new_data = a_new_machine(small_a4c, settings, tmp_path)
    assert not Backup.objects.exists() and not new_data.exists()
    try:
        out, _ = pull("acc1", keyfile)

        assert "backup acc1 imported (signed by SHA256:" in out
        imported = Backup.objects.get(name="acc1")
        assert imported.set_id == set_id and not imported.foreign
        assert imported.imported_from.startswith(
            f"off-site copy {pushing.where('acc1/').rstrip('/')} "
            f"(copied {marker['copy']['completed']})"
        )
        assert records.catalog().exists("acc1")
        assert operations.verify_backup(imported.pk, cli_actor).ok

        run = operations.request_restore(
            operations.RestoreRequest(imported.pk), cli_actor, confirm="acc1"
        )
        run = operations.run_restore(run.pk)

        assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
        assert small_a4c.state() == before_es
        assert tree(new_data) == before_files
    finally:
        cleanup_repositories(es_cluster, settings, es_path_repo, old_prefix)


def test_import_reads_an_s3_address_as_offsite_pull_does(
    pushing, sizeable, take, keyfile, cli_actor, settings, tmp_path
):
    backup = take("files-1", include_elasticsearch=False)
    pushed(backup, cli_actor)
    url = pushing.where()
    a_new_machine_for_files(settings, tmp_path)
    out = io.StringIO()

    call_command("import", f"{url}/files-1", "--identity", str(keyfile), "--json", stdout=out)

    summary = json.loads(out.getvalue().splitlines()[-1])
    assert summary["name"] == "files-1" and summary["status"] == "succeeded"
    assert Backup.objects.get(name="files-1").set_id == backup.set_id


def a_new_machine_for_files(settings, tmp_path) -> None:
    """A files-only new machine: no rows, a storage and a signing key of its own."""
    old_key = installation.installation_key().public.line
    Job.objects.all().delete()
    lose_the_console_database()
    new = tmp_path / "new-machine"
    settings.A4C_BACKUP_DIR = new / "storage"
    settings.A4C_ES_REPOSITORY_PATH = f"{settings.A4C_ES_REPOSITORY_PATH}-new"
    settings.A4C_SIGNING_KEY_FILE = str(new / "signing-key")
    settings.A4C_TRUSTED_KEYS = [old_key]


# --- refusals ----------------------------------------------------------------------------


def segment(index: int) -> str:
    return objectstore.segment_key("files-1", index)


def put_back(bucket, key: str, data: bytes, like: str | None = None) -> None:
    info = bucket.head(like or key)
    bucket.put_bytes(key, data, info.metadata if info else None)


def wrong_key(bucket, tmp_path, settings) -> Path:
    other = tmp_path / "other.key"
    other.write_text(f"{x25519.Identity.generate()}\n")
    return other


def no_marker(bucket, tmp_path, settings) -> None:
    bucket.delete(objectstore.marker_key("files-1"))


def a_missing_segment(bucket, tmp_path, settings) -> None:
    bucket.delete(segment(1))


def a_truncated_segment(bucket, tmp_path, settings) -> None:
    put_back(bucket, segment(2), bucket.get_bytes(segment(2))[:-100])


def a_tampered_segment(bucket, tmp_path, settings) -> None:
    data = bytearray(bucket.get_bytes(segment(1)))
    data[len(data) // 2] ^= 0x01
    put_back(bucket, segment(1), bytes(data))


def a_swapped_segment(bucket, tmp_path, settings) -> None:
    put_back(bucket, segment(1), bucket.get_bytes(segment(0)))


def a_marker_changed_after_signing(bucket, tmp_path, settings) -> None:
    key = objectstore.marker_key("files-1")
    marker = json.loads(bucket.get_bytes(key))
    marker["copy"]["segments"][1]["sha256"] = "0" * 64
    bucket.put_bytes(key, json.dumps(marker).encode())


def an_untrusted_installation(bucket, tmp_path, settings) -> None:
    settings.A4C_TRUSTED_KEYS = []


@pytest.mark.parametrize(
    ("damage", "code", "said"),
    [
        (wrong_key, 2, "the key given does not open the off-site copy s3://"),
        (no_marker, 2, "holds no complete off-site copy (no COPY.json"),
        (a_missing_segment, 5, "segments/000001.age is missing though the marker lists it"),
        (a_truncated_segment, 5, "its marker vouches for"),
        (a_tampered_segment, 5, "does not hash to the sha256 its marker vouches for"),
        (a_swapped_segment, 5, "its marker vouches for"),
        (a_marker_changed_after_signing, 5, "does not match its signature"),
        (an_untrusted_installation, 2, "which this installation does not trust"),
    ],
    ids=lambda v: getattr(v, "__name__", None) if callable(v) else None,
)
def test_a_bad_copy_is_refused_and_nothing_is_written(
    pushing, sizeable, take, keyfile, cli_actor, settings, tmp_path, damage, code, said
):
    backup = take("files-1", include_elasticsearch=False)
    pushed(backup, cli_actor)
    a_new_machine_for_files(settings, tmp_path)
    key = damage(pushing, tmp_path, settings) or keyfile
    before = what_counts(settings)

    with pytest.raises(CommandError) as refused:
        pull("files-1", key)

    assert refused.value.returncode == code
    assert said in str(refused.value)
    assert what_counts(settings) == before
    assert not Backup.objects.exists()


# --- what the bucket holds ---------------------------------------------------------------


def test_sync_offsite_lists_the_bucket_naming_the_unverifiable_copies_escaped(
    pushing, sizeable, take, cli_actor, tmp_path
):
    pushed(take("files-1", include_elasticsearch=False), cli_actor)
    marker = json.loads(pushing.get_bytes(objectstore.marker_key("files-1")))
    changed = json.loads(json.dumps(marker))
    changed["copy"]["archive_size"] += 1
    pushing.put_bytes("changed-1/COPY.json", json.dumps(changed).encode())
    pushing.put_bytes("junk-1/COPY.json", b"\x1b[2J not a marker")
    other = load_or_create_key(tmp_path / "other-installation" / "key", "elsewhere")
    stranger = dict(marker["copy"], name="stranger-1", completed="2026-12-01T00:00:00Z\x1b[2J")
    stranger["installation"] = "\x1b]0;evil\x07"
    signed = SignedMarker(OffsiteCopy.from_body(stranger, "test"), {})
    signed = SignedMarker(signed.copy, other.sign(canonical(signed.copy.body())))
    pushing.put_bytes("stranger-1/COPY.json", signed.to_bytes())

    out = io.StringIO()
    call_command("sync", "--offsite", stdout=out)
    lines = {line.split()[0]: line for line in out.getvalue().splitlines()[1:]}

    assert set(lines) == {"files-1", "changed-1", "junk-1", "stranger-1"}
    assert "succeeded" in lines["files-1"] and "cannot be verified" not in lines["files-1"]
    assert "cannot be verified" in lines["changed-1"]
    assert "does not match its signature" in lines["changed-1"]
    assert "cannot be verified" in lines["junk-1"]
    assert "not a well-formed off-site marker" in lines["junk-1"]
    assert "an untrusted installation" in lines["stranger-1"]
    assert "\\x1b[2J" in lines["stranger-1"] and "\\x1b]0;evil\\x07" in lines["stranger-1"]
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()

    out = io.StringIO()
    call_command("sync", "--offsite", "--json", stdout=out)
    listed = {c["name"]: c for c in json.loads(out.getvalue())}
    assert listed["files-1"]["trusted"] and not listed["files-1"]["problem"]
    assert listed["changed-1"]["problem"] and listed["junk-1"]["problem"]
    assert not listed["stranger-1"]["trusted"] and not listed["stranger-1"]["problem"]


def test_a_copy_no_trusted_installation_signed_comes_in_as_a_foreign_set_when_asked(
    pushing, sizeable, take, keyfile, cli_actor, settings, tmp_path
):
    backup = take("files-1", include_elasticsearch=False)
    pushed(backup, cli_actor)
    a_new_machine_for_files(settings, tmp_path)
    settings.A4C_TRUSTED_KEYS = []

    out, _ = pull("files-1", keyfile, "--foreign")

    assert "backup files-1 imported as a foreign set" in out
    imported = Backup.objects.get(name="files-1")
    assert imported.foreign and imported.set_id == backup.set_id
    assert "foreign: " in imported.imported_from


def an_oversized_marker(bucket, tmp_path, settings) -> None:
    bucket.put_bytes(objectstore.marker_key("files-1"), b" " * (objectstore.MARKER_MAX_BYTES + 1))


def test_an_oversized_marker_is_refused_before_it_is_read(
    pushing, sizeable, take, keyfile, cli_actor, settings, tmp_path
):
    pushed(take("files-1", include_elasticsearch=False), cli_actor)
    a_new_machine_for_files(settings, tmp_path)
    an_oversized_marker(pushing, tmp_path, settings)
    before = what_counts(settings)

    with pytest.raises(CommandError, match="larger than any off-site marker") as refused:
        pull("files-1", keyfile)

    assert refused.value.returncode == 5
    assert what_counts(settings) == before


def test_a_set_pulled_twice_is_refused_the_second_time(
    pushing, sizeable, take, keyfile, cli_actor, settings, tmp_path
):
    pushed(take("files-1", include_elasticsearch=False), cli_actor)
    a_new_machine_for_files(settings, tmp_path)
    pull("files-1", keyfile)
    before = what_counts(settings)

    with pytest.raises(CommandError, match="Backup files-1 is here already") as refused:
        pull("files-1", keyfile)

    assert refused.value.returncode == 2
    assert what_counts(settings) == before


def test_a_bucket_that_does_not_answer_is_named_and_nothing_is_written(
    pushing, sizeable, take, keyfile, cli_actor, settings, tmp_path
):
    pushed(take("files-1", include_elasticsearch=False), cli_actor)
    a_new_machine_for_files(settings, tmp_path)
    forwarder = CuttingForwarder()  # cuts every connection: the server is down
    settings.A4C_OFFSITE_ENDPOINT_URL = forwarder.endpoint
    before = what_counts(settings)
    try:
        with pytest.raises(CommandError, match="did not answer") as refused:
            pull("files-1", keyfile)
    finally:
        forwarder.close()

    assert refused.value.returncode == 1
    assert "A4C_OFFSITE_ENDPOINT_URL" in str(refused.value)
    assert what_counts(settings) == before


def test_offsite_pull_without_a_bucket_names_the_setting(keyfile, settings):
    settings.A4C_OFFSITE_URL = ""

    with pytest.raises(CommandError, match="A4C_OFFSITE_URL is not set") as refused:
        pull("files-1", keyfile)

    assert refused.value.returncode == 2


@pytest.mark.parametrize(
    ("address", "code", "said"),
    [
        ("s3://bucket-only", 2, "s3://bucket-only is not an off-site copy's address"),
        ("s3://b/p/", 2, "s3://b is not an off-site copy's address"),
        ("s3://a4c-bucket/p/bad name", 2, "The backup name may not contain space"),
        ("s3://a4c-no-such-bucket/p/acc1", 1, "the bucket a4c-no-such-bucket does not exist"),
    ],
)
def test_import_refuses_an_s3_address_that_names_no_copy(
    address, code, said, keyfile, settings, offsite
):
    with pytest.raises(CommandError, match=re.escape(said)) as refused:
        call_command("import", address, "--identity", str(keyfile))

    assert refused.value.returncode == code
    assert not Backup.objects.exists()


def test_import_of_an_s3_address_needs_the_key(keyfile, settings, offsite):
    with pytest.raises(CommandError, match="--identity KEYFILE") as refused:
        call_command("import", f"{offsite.where()}/files-1")

    assert refused.value.returncode == 2
