"""The only door to object storage (the off-site bucket, S3 API, through boto3).

No other module imports boto3 or botocore (tests/test_layout.py and the import-linter
contracts in pyproject.toml hold that), and this package knows no models, operations or web.

Settings: ``A4C_OFFSITE_URL`` (s3://BUCKET/PREFIX), ``A4C_OFFSITE_ENDPOINT_URL`` (empty for
AWS), ``A4C_OFFSITE_REGION``, ``A4C_OFFSITE_ACCESS_KEY``/``A4C_OFFSITE_SECRET_KEY`` (or their
``_FILE`` variants; empty: boto3's own chain, the standard AWS variables first),
``A4C_OFFSITE_CA_CERT``. ``configured()`` builds the ``Bucket`` they describe.

The layout in the bucket, under the prefix of A4C_OFFSITE_URL::

    <prefix>/<backup name>/segments/000000.age   the archive `export` writes, cut in segments
    <prefix>/<backup name>/segments/000001.age   ... (each segment_bytes of the plain archive)
    <prefix>/<backup name>/COPY.json             the marker, written LAST

The plain archive is the gzip'd tar stream of backups/storage/archive.py (its members hashed
in SHA256SUMS, signed by the installation). It is cut into segments of ``SEGMENT_BYTES``
(64 MiB) of plain bytes; each segment is encrypted ON ITS OWN with age to
A4C_EXPORT_RECIPIENTS (never stored in clear: without recipients there is no copy) and sent
with a multipart upload streamed from the encryption, without a local copy. Each segment
object carries, as metadata, the sha256 and size of the plain bytes it holds and the sha256
of its own (encrypted) bytes.

The marker (``layout.SignedMarker``) says the copy is complete: the set's name and id, the
plain archive's size and sha256 (its own checksum), every segment's plain and encrypted sizes
and sha256, when it was completed, the age recipients, and the pushing installation's key id;
it is signed by that installation's Ed25519 key (backups/signing.py) over its canonical JSON.
A set whose marker is missing has no copy, whatever segments lie there. The marker is the
truth of "which sets have a verified copy"; what the console records of it is a cache.

Why segments: age encrypts with a random file key, so encrypting the same archive twice
never gives the same bytes, and a multipart upload cut by a crash cannot be resumed with a
fresh encryption. A push that is resumed (after a crash, a killed worker, a network cut)
writes the plain archive again and, segment by segment, hashes its plain bytes: a segment
already in the bucket whose plain sha256 and size (its metadata) match is kept, not sent
again; from the first that differs (or is missing) on, every segment is encrypted and sent
anew. A segment kept is thus always the same plain bytes as the archive now written, so the
copy is whole whatever was resumed. (The archive's header carries the backup's end as its
time, not the push's, so the same set writes the same plain bytes again and a resumed push
keeps what it sent.) Multipart uploads left by the crash are abandoned (a segment is at most
A4C_OFFSITE_SEGMENT_SIZE, 64 MiB by default: redoing one is cheap).

Reading a copy back (the pull) checks the marker's signature, each segment's size and sha256
before decrypting it, and the plain archive's sha256 at the end, and the archive's own
SHA256SUMS and its signature as `import` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backups.objectstore.config import (
    OffsiteConfig,
    OffsiteLocation,
    offsite_config,
    parse_offsite_url,
)
from backups.objectstore.layout import (
    MARKER,
    MARKER_MAX_BYTES,
    META_PLAIN_SHA256,
    META_PLAIN_SIZE,
    META_SHA256,
    SEGMENT_BYTES,
    OffsiteCopy,
    Segment,
    SignedMarker,
    marker_key,
    segment_key,
    segments_prefix,
    set_prefix,
)

if TYPE_CHECKING:
    from backups.objectstore import client

SETTING_NAMES = (
    "A4C_OFFSITE_URL",
    "A4C_OFFSITE_ENDPOINT_URL",
    "A4C_OFFSITE_REGION",
    "A4C_OFFSITE_ACCESS_KEY",
    "A4C_OFFSITE_ACCESS_KEY_FILE",
    "A4C_OFFSITE_SECRET_KEY",
    "A4C_OFFSITE_SECRET_KEY_FILE",
    "A4C_OFFSITE_CA_CERT",
)


def settings_values() -> dict[str, str]:
    """The off-site settings' values, from Django's settings."""
    from django.conf import settings

    return {name: getattr(settings, name, "") or "" for name in SETTING_NAMES}


def configured(*, timeout: float | None = None, attempts: int = 3) -> client.Bucket | None:
    """The bucket the settings describe, or None when A4C_OFFSITE_URL is empty.
    ConfigError names a wrong setting."""
    config = offsite_config(settings_values())
    from backups.objectstore import client

    return client.Bucket(config, timeout=timeout, attempts=attempts) if config else None


__all__ = [
    "MARKER",
    "MARKER_MAX_BYTES",
    "META_PLAIN_SHA256",
    "META_PLAIN_SIZE",
    "META_SHA256",
    "PART_SIZE",
    "SEGMENT_BYTES",
    "SETTING_NAMES",
    "Bucket",
    "MultipartUpload",
    "ObjectInfo",
    "OffsiteConfig",
    "OffsiteCopy",
    "OffsiteLocation",
    "PutResult",
    "Segment",
    "SignedMarker",
    "UploadedPart",
    "configured",
    "marker_key",
    "offsite_config",
    "parse_offsite_url",
    "segment_key",
    "segments_prefix",
    "set_prefix",
    "settings_values",
]


# The bucket's client (boto3) loads on first use (PEP 562): every command's settings check reads
# the settings above, and a command that never reaches the bucket should not pay for boto3
# (issue 28, item 3).
_CLIENT_NAMES = (
    "PART_SIZE",
    "Bucket",
    "MultipartUpload",
    "ObjectInfo",
    "PutResult",
    "UploadedPart",
)


def __getattr__(name: str):
    if name in _CLIENT_NAMES:
        from backups.objectstore import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
