"""Restoring from the bucket alone: a set's off-site copy read back and imported (issue 27, 4).

`manage.py offsite pull NAME --identity KEY` and `manage.py import s3://BUCKET/PREFIX/NAME`
call ``pull_copy``. Nothing the bucket says is believed before it is checked, in this order:

1. the marker (objectstore/layout.py): its signature by this installation or a key in
   A4C_TRUSTED_KEYS (one that does not match is refused always; one by a key not trusted here
   is refused unless ``foreign``), then its shape (the set's name, segments that follow each
   other and add up to the archive);
2. each segment, read into memory (a segment is at most A4C_OFFSITE_SEGMENT_SIZE of plain
   bytes): its size and sha256 against the marker BEFORE it is decrypted, its plain size and
   sha256 after;
3. the whole archive's size and sha256 against the marker once it is read to its end;
4. then import's own checks (operations/archives.import_stream: the staging, the declared
   sizes against the free space, the archive's SHA256SUMS and their signature, the record's).

The first segment is read and decrypted before the import begins, so a wrong key, a missing
or damaged copy is refused before anything is staged; any later refusal removes what was
staged. The catalog, the backup storage and the repositories are written only by the import's
commit, after all of the above.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pyrage

from backups import objectstore
from backups.audit import Actor
from backups.errors import ConfigError, DamagedBackup, InvalidInput, OffsiteError
from backups.formatting import printable
from backups.models import Backup
from backups.objectstore import OffsiteCopy, Segment, SignedMarker
from backups.operations import signing as installation
from backups.operations.archives import ArchiveSource, import_stream
from backups.operations.names import validate_backup_name
from backups.signing import canonical
from backups.storage import BackupRecord, read_identities

READ_CHUNK = 1 << 20
# A segment's age encryption adds a header and 16 bytes per 64 KiB chunk: a sealed segment
# larger than this is not one a push wrote, whatever the marker says.
MAX_SEGMENT_BYTES = (1 << 30) + (1 << 20)


def bucket_of(url: str | None) -> objectstore.Bucket:
    """The bucket to read: A4C_OFFSITE_URL's, or ``url``'s (s3://BUCKET/PREFIX) with the other
    off-site settings (endpoint, region, credentials)."""
    values = objectstore.settings_values()
    if url is not None:
        values["A4C_OFFSITE_URL"] = url
    elif not values["A4C_OFFSITE_URL"]:
        raise ConfigError(
            "A4C_OFFSITE_URL is not set: there is no off-site bucket to pull from; set it "
            "(s3://BUCKET/PREFIX), with A4C_OFFSITE_ENDPOINT_URL and the credentials "
            "(README, 'Off-site copies')."
        )
    try:
        config = objectstore.offsite_config(values)
    except ConfigError as exc:
        if url is None:
            raise
        raise InvalidInput(f"{printable(url)} is not an off-site copy's address: {exc}") from None
    return objectstore.Bucket(config)


def split_copy_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX/NAME`` as the bucket's URL and the set's name."""
    base, _, name = url.rstrip("/").rpartition("/")
    if not base.startswith("s3://") or base == "s3:/" or not name:
        raise InvalidInput(
            f"{printable(url)} is not an off-site copy's address: give "
            "s3://BUCKET/PREFIX/NAME (`manage.py offsite list` names the sets)."
        )
    return base, name


def trusted_marker(
    target: objectstore.Bucket, name: str, *, foreign: bool, option: str
) -> OffsiteCopy:
    """The set's marker, its signature and shape checked; refuses (see the module's docstring)."""
    key = objectstore.marker_key(name)
    where = target.where(objectstore.set_prefix(name)).rstrip("/")
    info = target.head(key)
    if info is None:
        raise InvalidInput(
            f"{where} holds no complete off-site copy (no {objectstore.MARKER}: never pushed, "
            "pushed only in part, or deleted by retention): nothing was imported; "
            "`manage.py offsite list` names the sets the bucket holds."
        )
    if info.size > objectstore.MARKER_MAX_BYTES:
        raise DamagedBackup(
            f"{target.where(key)} is {info.size} bytes, larger than any off-site marker: it "
            "was not written by a push; nothing was imported"
        )
    marker = SignedMarker.from_bytes(target.get_bytes(key), target.where(key))
    copy = marker.copy
    what = f"the off-site marker {target.where(key)}"
    verdict = installation.keyring().check(canonical(copy.body()), marker.signature, what)
    if not verdict.trusted and not foreign:
        raise installation.Untrusted(
            f"{verdict.why}: it was not imported. If you trust the installation that pushed "
            "it, add its public key (`manage.py keys` there prints it) to A4C_TRUSTED_KEYS; "
            f"or take the set in as a foreign set with {option} (it then joins no policy "
            "and is restored only when confirmed)."
        )
    check_shape(copy, name, what)
    return copy


def check_shape(copy: OffsiteCopy, name: str, what: str) -> None:
    """A marker that cannot describe a copy a push wrote is refused (signed or not)."""
    problems = []
    if copy.name != name:
        problems.append(f"it is of the set {printable(copy.name)}, not {name}")
    if not copy.segments:
        problems.append("it lists no segment")
    for index, segment in enumerate(copy.segments):
        if segment.index != index or segment.key != objectstore.segment_key(name, index):
            problems.append(f"its segment {index} is {printable(segment.key)}")
            break
        if not 0 <= segment.plain_size <= copy.segment_bytes or not (
            0 < segment.size <= MAX_SEGMENT_BYTES
        ):
            problems.append(f"its segment {index} has impossible sizes")
            break
    if sum(s.plain_size for s in copy.segments) != copy.archive_size:
        problems.append("its segments do not add up to the archive's size")
    if problems:
        raise DamagedBackup(f"{what} is not one a push wrote: {'; '.join(problems)}")


class CopyReader(io.RawIOBase):
    """The plain archive of a copy, segment by segment, each checked against the (trusted)
    marker before its bytes are handed on; ``finish`` reads to the end and checks the whole."""

    def __init__(self, target: objectstore.Bucket, copy: OffsiteCopy, identities: list):
        self.target, self.copy, self.identities = target, copy, identities
        self.digest = hashlib.sha256()
        self.size = 0
        self.next = 0  # the next segment to read
        self.held = memoryview(b"")
        self._load()  # the first: a wrong key or a damaged copy refused before any import

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.held and self.next < len(self.copy.segments):
            self._load()
        count = min(len(buffer), len(self.held))
        buffer[:count] = self.held[:count]
        self.held = self.held[count:]
        return count

    def finish(self) -> None:
        """Reads what the archive's reader left (its end) and checks the whole archive."""
        while self.next < len(self.copy.segments):
            self._load()
        self.held = memoryview(b"")
        if self.size != self.copy.archive_size or (
            self.digest.hexdigest() != self.copy.archive_sha256
        ):
            raise DamagedBackup(
                f"the off-site copy {self._where()} reads {self.size} bytes that do not hash "
                f"to the {self.copy.archive_size} its marker vouches for: it was tampered "
                "with; nothing was imported"
            )

    def _where(self, key: str = "") -> str:
        return self.target.where(key or objectstore.set_prefix(self.copy.name)).rstrip("/")

    def _load(self) -> None:
        segment = self.copy.segments[self.next]
        sealed = self._fetch(segment)
        try:
            plain = pyrage.decrypt(sealed, self.identities)
        except pyrage.DecryptError as exc:
            raise InvalidInput(
                f"the key given does not open the off-site copy {self._where()} ({exc}): it was "
                "encrypted to other recipients; use the key file that matches one of "
                "A4C_EXPORT_RECIPIENTS where it was pushed. Nothing was imported."
            ) from None
        if len(plain) != segment.plain_size or (
            hashlib.sha256(plain).hexdigest() != segment.plain_sha256
        ):
            raise DamagedBackup(
                f"{self._where(segment.key)} decrypts to bytes its marker does not vouch for: "
                "it was tampered with; nothing was imported"
            )
        self.digest.update(plain)
        self.size += len(plain)
        self.next += 1
        self.held = memoryview(plain)

    def _fetch(self, segment: Segment) -> bytes:
        where = self._where(segment.key)
        if self.target.head(segment.key) is None:
            raise DamagedBackup(
                f"{where} is missing though the marker lists it: the copy is incomplete; "
                "nothing was imported (push it again from where the set is, or pull another set)"
            )
        chunks, got = [], 0
        with self.target.open(segment.key) as body:
            while got <= segment.size:
                try:
                    chunk = body.read(min(READ_CHUNK, segment.size + 1 - got))
                except Exception as exc:  # noqa: BLE001 - the HTTP body's own errors
                    raise OffsiteError(f"reading {where} was cut: {exc}") from None
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        sealed = b"".join(chunks)
        if len(sealed) != segment.size:
            raise DamagedBackup(
                f"{where} holds {'more than ' if len(sealed) > segment.size else ''}"
                f"{len(sealed)} bytes, its marker vouches for {segment.size}: it is "
                f"{'truncated' if len(sealed) < segment.size else 'not what was pushed'}; "
                "nothing was imported"
            )
        if hashlib.sha256(sealed).hexdigest() != segment.sha256:
            raise DamagedBackup(
                f"{where} does not hash to the sha256 its marker vouches for: it was tampered "
                "with; nothing was imported"
            )
        return sealed


def pull_copy(
    name: str,
    actor: Actor,
    *,
    identity: Path,
    foreign: bool = False,
    url: str | None = None,
    option: str = "`offsite pull --foreign`",
    progress=None,
) -> Backup:
    """Imports the set ``name``'s copy from the off-site bucket (A4C_OFFSITE_URL's, or
    ``url``'s), decrypted with the age key file ``identity``; refuses with nothing written."""
    validate_backup_name(name)
    identities = read_identities(identity)
    target = bucket_of(url)
    target.check_bucket()  # a bucket that is not there is named as such, not as "no copy"
    copy = trusted_marker(target, name, foreign=foreign, option=option)
    reader = CopyReader(target, copy, identities)
    where = target.where(objectstore.set_prefix(name)).rstrip("/")

    def expect(record: BackupRecord) -> None:
        if record.name != copy.name or record.set_id != copy.set_id:
            raise DamagedBackup(
                f"the off-site copy {where} holds the set {printable(record.name)} "
                f"({printable(record.set_id)}), not the one its marker names: it was tampered "
                "with; nothing was imported"
            )

    def finish(stream) -> None:  # the stream is the reader
        reader.finish()

    source = ArchiveSource(
        where=where,
        described=f"off-site copy {where} (copied {printable(copy.completed)})",
        size=copy.archive_size,
        open=lambda: reader,
        expect=expect,
        finish=finish,
    )
    try:
        return import_stream(source, actor, foreign=foreign, progress=progress)
    finally:
        reader.close()
