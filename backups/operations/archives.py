"""Off-site copies: exporting a backup set into one archive, importing one on another machine.

The archive (backups/storage/archive.py) carries the set's record, history, manifest, blobs
and its snapshot's own files from the repository (backups/elastic/repository.py knows which).
An import writes the snapshot files into a repository directory of their own beside this
console's (A4C_ES_REPOSITORY_PATH-import-NAME), registered read-only when a restore needs it,
so that they never mix with the snapshots this cluster writes.

An archive's SHA256SUMS, and so every member, is signed with this installation's key; an
import believes an archive only when a trusted key signed it (operations/signing.py), or
takes it in as a foreign set when asked (``foreign``).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction

from backups import audit
from backups.audit import Actor, Outcome
from backups.elastic import repository as repository_files
from backups.errors import Cancelled, InvalidInput, StorageError
from backups.models import Backup
from backups.operations import records, signing, storage_leases
from backups.operations.lookup import get_backup
from backups.operations.places import store
from backups.operations.record_schema import parse_signed_record
from backups.operations.storage_leases import storage_lease
from backups.signing import SigningKey
from backups.storage import (
    ArchiveHeader,
    ArchiveProgress,
    BackupRecord,
    Catalog,
    ImportStaging,
    RepositoryFile,
    Store,
    Unpacked,
    commit_import,
    locked_staging,
    parse_recipients,
    read_archive,
    read_archive_stream,
    read_identities,
    terminated_as_interrupt,
    write_archive,
)
from backups.storage import discard_import_leftovers as storage_leftovers

__all__ = [
    "ArchiveJob",
    "ArchiveSource",
    "ArchiveProgress",
    "discard_import_leftovers",
    "export_backup",
    "import_archive",
    "import_stream",
    "prepare_export",
]


def _repository_files(backup: Backup) -> list[RepositoryFile]:
    if not (backup.include_elasticsearch and backup.indices and backup.snapshot_name):
        return []
    location = Path(backup.repository_location or settings.A4C_ES_REPOSITORY_PATH)
    found = repository_files.snapshot_files(location, backup.snapshot_name)
    files = [RepositoryFile(rel, path=location / rel) for rel in found.files]
    files.append(RepositoryFile(found.catalog_name, data=found.catalog))
    files.append(RepositoryFile("index.latest", data=found.latest))
    return files


@dataclasses.dataclass(frozen=True)
class ArchiveJob:
    """An export decided and checked, ready to stream: writing it touches no database, so a
    thread can feed it to a download while the request's thread reads the pipe."""

    record: BackupRecord  # what the archive says of the set: built from this console's row
    store: Store
    catalog: Catalog
    repository: list[RepositoryFile]
    recipients: list
    signer: SigningKey

    @property
    def name(self) -> str:
        return self.record.name

    def write(self, out: BinaryIO, progress=None, *, created: str | None = None) -> ArchiveHeader:
        return write_archive(
            out,
            self.store,
            self.catalog,
            self.record,
            self.repository,
            recipients=self.recipients or None,
            signer=self.signer,
            progress=progress,
            created=created,
        )


def archive_job(backup: Backup, recipients: list) -> ArchiveJob:
    """The archive of a succeeded set, ready to stream (its record written first if the set
    predates records); ``recipients`` parsed age keys, or [] for the plain archive."""
    if not records.catalog().exists(backup.name):
        records.write_record(backup)
    return ArchiveJob(
        # From the row, the truth: the archive vouches for what this console holds (a foreign
        # set stays foreign), whatever the storage's record says.
        records.record_of(backup),
        store(),
        records.catalog(),
        _repository_files(backup),
        recipients,
        signing.installation_key(),
    )


def prepare_export(
    backup_id: int | str, actor: Actor, *, recipients: list[str], destination: str
) -> ArchiveJob:
    """Checks that the set can be exported (and describes it if it predates records)."""
    backup = get_backup(backup_id)
    if not backup.is_restorable or backup.vanished_at:
        raise InvalidInput(
            f"Backup {backup.name} is {backup.status}"
            + (" and gone from the storage" if backup.vanished_at else "")
            + "; only a succeeded backup can be exported."
        )
    keys = parse_recipients(recipients) if recipients else []
    job = archive_job(backup, keys)
    audit.record(
        actor,
        "backup.export",
        target=backup.name,
        outcome=Outcome.STARTED,
        backup=backup,
        parameters={"to": destination, "encrypted": bool(keys)},
    )
    return job


def export_backup(
    backup_id: int | str,
    target: Path,
    actor: Actor,
    *,
    recipients: list[str] | None = None,
    progress=None,
) -> ArchiveHeader:
    """Writes the archive to ``target`` (whole or not at all), encrypted to ``recipients``
    (A4C_EXPORT_RECIPIENTS by default)."""
    recipients = settings.A4C_EXPORT_RECIPIENTS if recipients is None else recipients
    target = Path(target)
    if target.exists():
        raise InvalidInput(f"{target} exists already: choose another file, or remove it.")
    job = prepare_export(backup_id, actor, recipients=recipients, destination=str(target))
    partial = target.with_name(f".{target.name}.partial-{secrets.token_hex(4)}")
    try:
        with open(partial, "wb") as out:
            header = job.write(out, progress)
            out.flush()
            os.fsync(out.fileno())
        os.rename(partial, target)
    except OSError as exc:
        raise StorageError(f"cannot write the archive {target}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    audit.record(
        actor,
        "backup.export",
        target=job.record.name,
        outcome=Outcome.SUCCEEDED,
        backup=get_backup(job.record.name),
        parameters={
            "to": str(target),
            "encrypted": bool(job.recipients),
            "bytes": header.bytes,
            "blobs": header.blobs,
            "repository_files": header.repository_files,
        },
    )
    return header


def import_location(name: str) -> tuple[str, Path]:
    """The repository name and directory an imported set's snapshot files go to."""
    return (
        f"{settings.A4C_ES_REPOSITORY}-import-{name}",
        Path(f"{settings.A4C_ES_REPOSITORY_PATH}-import-{name}"),
    )


@dataclasses.dataclass(frozen=True)
class ArchiveSource:
    """An archive imported as a stream, not from a file: an off-site copy being read from the
    bucket (operations/offsite_pull.py). Its bytes are the plain archive (the source decrypts
    and checks what it reads); nothing it says is believed before it is checked."""

    where: str  # names it in messages and the audit (s3://BUCKET/PREFIX/NAME)
    described: str  # what the imported set records it came from
    size: int  # the archive's bytes, for the progress
    open: Callable[[], BinaryIO]  # the stream of the plain archive (closed after)
    # The record read must be the set the source promised; raises to refuse.
    expect: Callable[[BackupRecord], None]
    # Once unpacked, before the signature is judged: the stream read to its end and checked
    # whole; raises to refuse.
    finish: Callable[[BinaryIO], None]


def import_archive(
    path: Path,
    actor: Actor,
    *,
    identity: Path | None = None,
    foreign: bool = False,
    progress=None,
) -> Backup:
    """Makes an archive's set restorable and verifiable here; refuses with nothing written.
    ``foreign``: an archive no trusted key signed is taken in as a foreign set."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file: give the archive `manage.py export` wrote.")
    identities = read_identities(identity) if identity else None

    def unpack(staged: ImportStaging, parse, check, authenticate, progress) -> Unpacked:
        return read_archive(
            path,
            staged.staging,
            staged.repository_staging,
            identities=identities,
            parse=parse,
            check=check,
            authenticate=authenticate,
            progress=progress,
        )

    return _import(
        unpack,
        _Origin(path.name, f"the archive {path.name}", f"archive {path.name}", {"file": str(path)}),
        actor,
        encrypted=identities is not None,
        foreign=foreign,
        progress=progress,
    )


def import_stream(
    source: ArchiveSource, actor: Actor, *, foreign: bool = False, progress=None
) -> Backup:
    """``import_archive`` for an archive read as a stream (``ArchiveSource``): the same
    checks, the same staging, nothing written where it counts before all of it is checked."""

    def unpack(staged: ImportStaging, parse, check, authenticate, progress) -> Unpacked:
        def expected(header: ArchiveHeader, record: BackupRecord) -> None:
            source.expect(record)
            check(header, record)

        stream = source.open()
        try:

            def finished(unpacked: Unpacked) -> None:
                source.finish(stream)
                authenticate(unpacked)

            return read_archive_stream(
                stream,
                source.where,
                source.size,
                staged.staging,
                staged.repository_staging,
                identities=None,
                parse=parse,
                check=expected,
                authenticate=finished,
                progress=progress,
            )
        finally:
            stream.close()

    return _import(
        unpack,
        _Origin(source.where, source.where, source.described, {"from": source.where}),
        actor,
        encrypted=True,
        foreign=foreign,
        progress=progress,
    )


@dataclasses.dataclass(frozen=True)
class _Origin:
    label: str  # the storage lease's
    what: str  # in the signature's verdict
    described: str  # the set's imported_from, before the export's time
    audit: dict


def _import(unpack, origin: _Origin, actor: Actor, *, encrypted, foreign, progress) -> Backup:
    catalog = records.catalog()

    def check(header: ArchiveHeader, record: BackupRecord) -> None:
        row = Backup.objects.filter(name=record.name).first()
        if row is not None and row.set_id == record.set_id:
            raise InvalidInput(f"Backup {record.name} is here already: nothing to import.")
        if row is not None or catalog.exists(record.name):
            raise InvalidInput(
                f"A backup named {record.name} exists already here, another set than the "
                "archive's: two sets cannot share one name; delete or rename the one here first."
            )
        if import_location(record.name)[1].exists():
            raise InvalidInput(
                f"{import_location(record.name)[1]} exists already: remove what is left of an "
                "earlier import there, then import again."
            )

    # Staged beside the final places, so that committing is a rename on one filesystem; a
    # stop (SIGTERM, Ctrl-C) removes what was unpacked, and what a killed import left goes too.
    try:
        with (
            terminated_as_interrupt(),
            storage_lease(f"import {origin.label}") as lease,
            locked_staging(*staging_places()) as staged,
        ):

            def progress_and_renew(*args) -> None:
                storage_leases.renew(lease)
                if progress:
                    progress(*args)

            return _unpack_and_commit(
                unpack, origin, check, staged, progress_and_renew, actor, foreign, encrypted
            )
    except KeyboardInterrupt as stop:
        raise Cancelled(
            f"the import of {origin.label} was stopped ({stop or 'Ctrl-C'}): nothing was "
            "imported, and what it had unpacked was removed."
        ) from None


def staging_places() -> tuple[Path, Path]:
    """Where imports stage: the storage's tmp dir, and the snapshot repository's parent."""
    return store().tmp, Path(settings.A4C_ES_REPOSITORY_PATH).parent


def discard_import_leftovers() -> list[str]:
    """What imports that died left in their staging places, removed (a live one is kept)."""
    return storage_leftovers(*staging_places())


def _unpack_and_commit(
    unpack,
    origin: _Origin,
    check,
    staged: ImportStaging,
    progress,
    actor: Actor,
    foreign: bool,
    encrypted: bool,
) -> Backup:
    catalog = records.catalog()
    trust: list[signing.Trust] = []

    def parse(raw: bytes, where: str) -> BackupRecord:
        # The one seam for records from outside: the record's own signature (a trusted key's
        # that does not match is refused before anything is written), then the schema.
        return parse_signed_record(raw, where).record

    def authenticate(unpacked: Unpacked) -> None:
        # The archive's SHA256SUMS, signed, vouches for every member: it decides the trust.
        verdict = signing.keyring().check(unpacked.sums, unpacked.signature, origin.what)
        trust.append(
            signing.judge(
                verdict, unpacked.record, allow_foreign=foreign, option="`import --foreign`"
            )
        )

    unpacked = unpack(staged, parse, check, authenticate, progress)
    name = unpacked.record.name
    repo_name, location = import_location(name)
    repo_staging = staged.repository_staging
    has_snapshot = any(repo_staging.iterdir()) if repo_staging.exists() else False
    record = dataclasses.replace(
        unpacked.record,
        repository=repo_name if has_snapshot else "",
        repository_location=str(location) if has_snapshot else "",
        imported_from=f"{origin.described} (exported {unpacked.header.created})"
        + (f"; foreign: {trust[0].why}" if trust[0].foreign else ""),
        foreign=trust[0].foreign,
        signed_by=trust[0].signed_by,
    )
    committed = commit_import(unpacked, store(), catalog, record, location)
    try:
        with transaction.atomic():
            backup = Backup.objects.create(**records.row_fields(record, record.imported_from))
            audit.record(
                actor,
                "backup.import",
                target=name,
                outcome=Outcome.SUCCEEDED,
                backup=backup,
                parameters={
                    **origin.audit,
                    "encrypted": encrypted,
                    "repository": repo_name if has_snapshot else "",
                    "location": str(location) if has_snapshot else "",
                    "blobs": unpacked.header.blobs,
                    "foreign": backup.foreign,
                    "signed_by": backup.signed_by,
                },
            )
    except BaseException:
        # Nothing half-imported: without its row the set must not stay in the storage, or a
        # second import would find its manifest there ("File exists").
        committed.undo()
        raise
    return backup
