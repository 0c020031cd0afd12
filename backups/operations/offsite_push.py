"""Pushing one set's copy into the off-site bucket, in the layout backups/objectstore/__init__.py
describes: the plain archive written by a thread into a pipe, cut into segments, each encrypted
with age on its own and sent; a segment a cut-short push already sent with the same plain
bytes is kept; every segment read back and checked; the signed marker written last.

No Django rows here: operations/offsite.py runs it as a Job's steps and says what happened.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import threading
from collections.abc import Callable

import pyrage
from django.utils import timezone

from backups import objectstore
from backups.errors import DamagedBackup, OffsiteError, StorageError
from backups.objectstore import OffsiteCopy, Segment, SignedMarker
from backups.operations.archives import ArchiveJob
from backups.signing import SigningKey, canonical
from backups.storage import ArchiveProgress

READ_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class PushReport:
    """What a push did: the Job's result, and the command's report."""

    name: str
    archive_size: int
    archive_sha256: str
    segments: int
    segments_sent: int
    segments_kept: int
    bytes_sent: int
    completed: str
    already: bool = False  # a complete copy was there: nothing was sent

    def as_result(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PushHooks:
    """How a push reports (called from the thread that runs it)."""

    phase: Callable[[str], None]
    progress: Callable[[int, int], None]  # plain bytes done, and the archive's estimate
    segment_stored: Callable[[int, int], None]  # the same, after each segment is in the bucket
    check: Callable[[], None]  # raises Cancelled


class PlainArchive:
    """The plain archive written by a thread into an OS pipe, read here as it comes."""

    def __init__(self, job: ArchiveJob, created: str):
        read_fd, write_fd = os.pipe()
        self.reader = os.fdopen(read_fd, "rb", buffering=READ_CHUNK)
        writer = os.fdopen(write_fd, "wb", buffering=READ_CHUNK)
        self.error: BaseException | None = None
        self.seen = ArchiveProgress(0, 0, "")

        def watch(p: ArchiveProgress) -> None:
            self.seen = p  # read by the other thread: it alone writes rows

        def run() -> None:
            try:
                job.write(writer, watch, created=created)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
                self.error = exc
            finally:
                try:
                    writer.close()  # the reader sees the end
                except OSError:
                    pass

        self.thread = threading.Thread(target=run, name="offsite-archive", daemon=True)
        self.thread.start()

    def read(self, size: int) -> bytes:
        return self.reader.read(size)

    def close(self) -> BaseException | None:
        """Stops reading (a writer still writing stops on a broken pipe); what it raised."""
        if not self.reader.closed:
            self.reader.close()
        self.thread.join(timeout=120)
        return self.error


def push_copy(
    job: ArchiveJob,
    bucket: objectstore.Bucket,
    recipients: list[str],
    signer: SigningKey,
    *,
    created: str,
    segment_bytes: int,
    hooks: PushHooks,
) -> PushReport:
    """Sends the set's copy (resuming what a push cut short left), checks it, and writes its
    marker last; raises OffsiteError (OffsiteUnreachable: worth a retry) or what the archive's
    writing raised."""
    name, set_id = job.record.name, job.record.set_id
    keys = [pyrage.x25519.Recipient.from_str(key.strip()) for key in recipients]
    hooks.phase("looking at the bucket")
    present = existing_copy(bucket, name, set_id)
    if present is not None:
        return PushReport(
            name,
            present.archive_size,
            present.archive_sha256,
            len(present.segments),
            0,
            len(present.segments),
            0,
            present.completed,
            already=True,
        )
    for upload in bucket.uploads(objectstore.set_prefix(name)):
        bucket.abort_upload(upload)  # cut short: a segment is sent again whole
    if bucket.head(objectstore.marker_key(name)) is not None:
        bucket.delete(objectstore.marker_key(name))  # it no longer vouches for what is there
    held = held_segments(bucket, name)

    hooks.phase("sending")
    archive = PlainArchive(job, created)
    digest, done, segments, sent, bytes_sent = hashlib.sha256(), 0, [], 0, 0
    resuming = True  # segments are kept while each holds the bytes written again
    try:
        while True:
            hooks.check()
            plain = _read_segment(archive, segment_bytes, done, hooks)
            if not plain and segments:
                break
            index = len(segments)
            digest.update(plain)
            done += len(plain)
            plain_sha = hashlib.sha256(plain).hexdigest()
            kept = held_segment(bucket, name, index, plain_sha, len(plain)) if resuming else None
            if kept is None:
                resuming = False
                segment = send_segment(bucket, name, index, plain, plain_sha, keys)
                sent += 1
                bytes_sent += segment.size
            else:
                segment = kept
            segments.append(segment)
            hooks.segment_stored(done, max(done, archive.seen.bytes_total))
            if len(plain) < segment_bytes:
                break
    finally:
        error = archive.close()
    if error is not None:
        if isinstance(error, (StorageError, DamagedBackup)):
            raise error
        raise StorageError(f"writing the archive of {name} failed: {error}") from error
    for index in sorted(i for i in held if i >= len(segments)):
        bucket.delete(objectstore.segment_key(name, index))  # a longer attempt's tail

    hooks.phase("checking the copy")
    for segment in segments:
        hooks.check()
        check_segment(bucket, segment)
    copy = OffsiteCopy(
        name=name,
        set_id=set_id,
        archive_size=done,
        archive_sha256=digest.hexdigest(),
        segment_bytes=segment_bytes,
        segments=tuple(segments),
        completed=timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        installation=signer.key_id,
        recipients=tuple(recipients),
    )
    marker = SignedMarker(copy, signer.sign(canonical(copy.body())))
    hooks.phase("writing the marker")
    bucket.put_bytes(objectstore.marker_key(name), marker.to_bytes())
    return PushReport(
        name,
        copy.archive_size,
        copy.archive_sha256,
        len(segments),
        sent,
        len(segments) - sent,
        bytes_sent,
        copy.completed,
    )


def _read_segment(archive: PlainArchive, size: int, done: int, hooks: PushHooks) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = archive.read(min(left, READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
        now = done + size - left
        hooks.progress(now, max(now, archive.seen.bytes_total))
    return b"".join(chunks)


def read_marker(bucket: objectstore.Bucket, name: str) -> SignedMarker | None:
    """The set's marker in the bucket, or None; DamagedBackup when it is not one."""
    key = objectstore.marker_key(name)
    if bucket.head(key) is None:
        return None
    return SignedMarker.from_bytes(bucket.get_bytes(key), bucket.where(key))


def existing_copy(bucket: objectstore.Bucket, name: str, set_id: str) -> OffsiteCopy | None:
    """A complete copy of this set already in the bucket (marker and every segment there, of
    the sizes it says), or None. Another set of the same name there is refused."""
    try:
        marker = read_marker(bucket, name)
    except DamagedBackup:
        return None  # sent again; its marker is replaced last
    if marker is None:
        return None
    if marker.copy.set_id != set_id:
        raise OffsiteError(
            f"{bucket.where(objectstore.set_prefix(name))} holds another set named {name} "
            f"(set id {marker.copy.set_id}, pushed by {marker.copy.installation}): give each "
            "installation a prefix of its own in A4C_OFFSITE_URL"
        )
    for segment in marker.copy.segments:
        info = bucket.head(segment.key)
        if info is None or info.size != segment.size:
            return None
    return marker.copy


def held_segments(bucket: objectstore.Bucket, name: str) -> set[int]:
    found = set()
    for info in bucket.list(objectstore.segments_prefix(name)):
        stem = info.key.rsplit("/", 1)[-1].split(".", 1)[0]
        if stem.isdigit():
            found.add(int(stem))
    return found


def held_segment(
    bucket: objectstore.Bucket, name: str, index: int, plain_sha: str, plain_size: int
) -> Segment | None:
    """The segment already in the bucket, if it holds these plain bytes (its metadata)."""
    key = objectstore.segment_key(name, index)
    info = bucket.head(key)
    if info is None:
        return None
    meta = info.metadata
    if meta.get(objectstore.META_PLAIN_SHA256) != plain_sha or meta.get(
        objectstore.META_PLAIN_SIZE
    ) != str(plain_size):
        return None
    sha = meta.get(objectstore.META_SHA256, "")
    if not sha:
        return None
    return Segment(index, key, plain_size, plain_sha, info.size, sha)


def send_segment(
    bucket: objectstore.Bucket,
    name: str,
    index: int,
    plain: bytes,
    plain_sha: str,
    recipients: list,
) -> Segment:
    """Encrypts one segment on its own and sends it (multipart); its hashes as metadata."""
    sealed = pyrage.encrypt(plain, recipients)
    sha = hashlib.sha256(sealed).hexdigest()
    key = objectstore.segment_key(name, index)
    result = bucket.put_stream(
        key,
        io.BytesIO(sealed),
        {
            objectstore.META_PLAIN_SHA256: plain_sha,
            objectstore.META_PLAIN_SIZE: str(len(plain)),
            objectstore.META_SHA256: sha,
        },
    )
    if result.sha256 != sha or result.size != len(sealed):
        raise OffsiteError(f"{bucket.where(key)}: what was sent is not what was encrypted")
    return Segment(index, key, len(plain), plain_sha, len(sealed), sha)


def check_segment(bucket: objectstore.Bucket, segment: Segment) -> None:
    """Reads the segment back from the bucket: its size and sha256 as sent, or OffsiteError."""
    size, sha = bucket.digest(segment.key)
    if size != segment.size or sha != segment.sha256:
        raise OffsiteError(
            f"{bucket.where(segment.key)} reads back {size} bytes, sha256 "
            f"{sha[:12]}..; {segment.size} bytes, {segment.sha256[:12]}.. were "
            "sent: the bucket did not keep the segment; the copy is sent again"
        )
