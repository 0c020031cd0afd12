"""Where a backup set's off-site copy lies in the bucket, and its marker (see the package's
docstring for the layout and why it is segmented)."""

from __future__ import annotations

import dataclasses
import json

from backups.errors import DamagedBackup

COPY_FORMAT = "a4c-backup-offsite-copy"
COPY_VERSION = 1
MARKER = "COPY.json"
SEGMENTS = "segments"
SEGMENT_SUFFIX = ".age"
# The plain archive is cut into segments of this many bytes (the last one shorter).
SEGMENT_BYTES = 64 << 20
# Object metadata each segment carries, so a resumed push knows what a segment holds
# without the marker (written last) and without decrypting it.
META_PLAIN_SHA256 = "a4c-plain-sha256"
META_PLAIN_SIZE = "a4c-plain-size"
META_SHA256 = "a4c-sha256"
MARKER_MAX_BYTES = 4 << 20


def set_prefix(name: str) -> str:
    return f"{name}/"


def marker_key(name: str) -> str:
    return f"{name}/{MARKER}"


def segments_prefix(name: str) -> str:
    return f"{name}/{SEGMENTS}/"


def segment_key(name: str, index: int) -> str:
    return f"{name}/{SEGMENTS}/{index:06d}{SEGMENT_SUFFIX}"


@dataclasses.dataclass(frozen=True)
class Segment:
    """One segment: ``plain_*`` of the archive's bytes it holds, ``size``/``sha256`` of the
    encrypted object."""

    index: int
    key: str  # relative to the configured prefix
    plain_size: int
    plain_sha256: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class OffsiteCopy:
    """What the marker says: the copy is complete, of which set, signed by whom."""

    name: str
    set_id: str
    archive_size: int  # the plain archive's (tar.gz, what `export` writes unencrypted)
    archive_sha256: str  # the plain archive's own checksum
    segment_bytes: int
    segments: tuple[Segment, ...]
    completed: str  # ISO 8601, UTC
    installation: str  # the signing key's id (backups/signing.py) of the pushing console
    recipients: tuple[str, ...]  # the age public keys the segments are encrypted to
    format: str = COPY_FORMAT
    version: int = COPY_VERSION

    def body(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_body(cls, body: dict, where: str) -> OffsiteCopy:
        if body.get("format") != COPY_FORMAT:
            raise DamagedBackup(f"{where} is not an a4c-backup off-site marker")
        if int(body.get("version", 0)) > COPY_VERSION:
            raise DamagedBackup(
                f"{where} is of marker version {body.get('version')}, newer than this "
                f"a4c-backup reads ({COPY_VERSION}): upgrade a4c-backup"
            )
        try:
            segments = tuple(Segment(**item) for item in body["segments"])
            fields = {k: body[k] for k in body if k not in ("segments", "recipients")}
            return cls(segments=segments, recipients=tuple(body["recipients"]), **fields)
        except (KeyError, TypeError) as exc:
            raise DamagedBackup(f"{where} is not a well-formed off-site marker ({exc})") from None


@dataclasses.dataclass(frozen=True)
class SignedMarker:
    """The marker object as stored: the copy's body and the installation's signature of
    its canonical JSON (backups.signing.canonical)."""

    copy: OffsiteCopy
    signature: dict

    def to_bytes(self) -> bytes:
        data = {"copy": self.copy.body(), "signature": self.signature}
        return json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> SignedMarker:
        if len(raw) > MARKER_MAX_BYTES:
            raise DamagedBackup(f"{where} is larger than any off-site marker")
        try:
            data = json.loads(raw)
            return cls(OffsiteCopy.from_body(data["copy"], where), dict(data["signature"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise DamagedBackup(f"{where} is not a well-formed off-site marker ({exc})") from None
