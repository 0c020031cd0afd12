"""The bucket itself, through boto3: the only module of the app that imports boto3/botocore.

Keys given to ``Bucket`` are relative to the configured prefix; the values it answers with are
frozen dataclasses, its failures ``OffsiteError`` (``OffsiteUnreachable`` when the server did
not answer, worth a retry).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import BinaryIO

import boto3
import botocore.exceptions
from botocore.config import Config

from backups.errors import OffsiteError, OffsiteUnreachable
from backups.objectstore.config import OffsiteConfig

# S3's smallest part (but the last) is 5 MiB; 8 MiB parts keep memory flat and requests few.
PART_SIZE = 8 << 20
MIN_PART_SIZE = 5 << 20
READ_CHUNK = 1 << 20
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the prefix
    size: int
    etag: str
    modified: dt.datetime
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PutResult:
    key: str
    size: int
    sha256: str  # of the bytes sent, hashed on the way
    etag: str


@dataclasses.dataclass(frozen=True)
class MultipartUpload:
    key: str
    upload_id: str
    started: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class UploadedPart:
    number: int
    size: int
    etag: str


PutProgress = Callable[[int], None] | None  # bytes sent so far


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class Bucket:
    """One bucket and prefix. Built lazily by ``bucket()``; cheap to keep."""

    def __init__(self, config: OffsiteConfig, *, timeout: float | None = None, attempts: int = 3):
        """``timeout`` (seconds, for connecting and each read) and ``attempts`` are for quick
        looks such as the doctor's; transfers keep the defaults."""
        self.config = config
        self.name = config.location.bucket
        self.prefix = config.location.prefix
        options = {
            "config": Config(
                # S3-compatible servers (S3Proxy among them) refuse the CRC checksums current
                # boto3 sends by default ("NotImplemented"); S3 itself takes either.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                connect_timeout=timeout or CONNECT_TIMEOUT,
                read_timeout=timeout or READ_TIMEOUT,
                retries={"max_attempts": attempts, "mode": "standard"},
                s3={"addressing_style": "path"} if config.endpoint_url else {},
            )
        }
        if config.endpoint_url:
            options["endpoint_url"] = config.endpoint_url
        if config.region:
            options["region_name"] = config.region
        if config.access_key:
            options["aws_access_key_id"] = config.access_key
            options["aws_secret_access_key"] = config.secret_key
        if config.ca_cert:
            options["verify"] = config.ca_cert
        self.client = boto3.session.Session().client("s3", **options)

    # --- names ---------------------------------------------------------------------------

    def full_key(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def relative(self, full_key: str) -> str:
        if self.prefix and full_key.startswith(self.prefix + "/"):
            return full_key[len(self.prefix) + 1 :]
        return full_key

    def where(self, key: str = "") -> str:
        return f"s3://{self.name}/{self.full_key(key)}" if key else self.config.location.url

    # --- errors --------------------------------------------------------------------------

    def _fail(self, exc: Exception, doing: str, key: str = "") -> OffsiteError:
        where = self.where(key)
        if isinstance(exc, botocore.exceptions.ClientError):
            code = _code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            # HEAD has no body: a missing bucket is a bare 404 there.
            if code == "NoSuchBucket" or (code in ("404", "NotFound") and not key):
                return OffsiteError(
                    f"the bucket {self.name} does not exist at "
                    f"{self.config.endpoint_url or 'AWS S3'}: create it, or fix A4C_OFFSITE_URL"
                )
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
                return OffsiteError(
                    f"{doing} {where} was refused ({code}): check A4C_OFFSITE_ACCESS_KEY and "
                    "A4C_OFFSITE_SECRET_KEY (or the AWS variables) and the key's permissions"
                )
            return OffsiteError(
                f"{doing} {where} failed: {code or status} "
                f"{exc.response.get('Error', {}).get('Message', '')}".rstrip(),
                retryable=status >= 500 or code in ("SlowDown", "RequestTimeout"),
            )
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return OffsiteError(
                "no credentials for the off-site bucket: set A4C_OFFSITE_ACCESS_KEY and "
                "A4C_OFFSITE_SECRET_KEY (or their _FILE variants), or the AWS variables"
            )
        if isinstance(exc, botocore.exceptions.SSLError):
            return OffsiteError(
                f"{doing} {where}: the server's certificate was not trusted ({exc}): "
                "point A4C_OFFSITE_CA_CERT at its CA bundle"
            )
        if isinstance(
            exc,
            (
                botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionError,
                botocore.exceptions.ReadTimeoutError,
                botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ResponseStreamingError,
                botocore.exceptions.HTTPClientError,  # a connection cut before the answer
            ),
        ):
            return OffsiteUnreachable(
                f"{doing} {where}: the server at {self.config.endpoint_url or 'AWS S3'} did not "
                f"answer ({exc.__class__.__name__}); check A4C_OFFSITE_ENDPOINT_URL and the "
                "network, it is tried again"
            )
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            return OffsiteError(f"{doing} {where} failed: {exc}")
        raise exc

    def _call(self, doing: str, key: str, method: str, **kwargs):
        try:
            return getattr(self.client, method)(**kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail(exc, doing, key) from exc

    # --- whole objects -------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None):
        answer = self._call(
            "writing",
            key,
            "put_object",
            Bucket=self.name,
            Key=self.full_key(key),
            Body=data,
            Metadata=dict(metadata or {}),
        )
        return PutResult(key, len(data), hashlib.sha256(data).hexdigest(), answer["ETag"])

    def head(self, key: str) -> ObjectInfo | None:
        """The object's size and metadata, or None when there is none."""
        try:
            answer = self.client.head_object(Bucket=self.name, Key=self.full_key(key))
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail(exc, "reading", key) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail(exc, "reading", key) from exc
        return ObjectInfo(
            key,
            answer["ContentLength"],
            answer.get("ETag", ""),
            answer.get("LastModified"),
            dict(answer.get("Metadata", {})),
        )

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as body:
            return body.read()

    def open(self, key: str) -> BinaryIO:
        """A stream of the object's bytes (close it); OffsiteError when there is none."""
        answer = self._call("reading", key, "get_object", Bucket=self.name, Key=self.full_key(key))
        return answer["Body"]

    def digest(self, key: str) -> tuple[int, str]:
        """Reads the object through: its size and sha256 (a check that it holds what was sent)."""
        digest, size = hashlib.sha256(), 0
        try:
            with self.open(key) as body:
                for chunk in iter(lambda: body.read(READ_CHUNK), b""):
                    digest.update(chunk)
                    size += len(chunk)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail(exc, "reading", key) from exc
        return size, digest.hexdigest()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key (relative) starts with ``prefix``, in key order."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=self.full_key(prefix) if prefix or self.prefix else ""
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    if item["Key"].endswith("/"):
                        continue  # a folder marker (S3Proxy's filesystem backend lists its dirs)
                    yield ObjectInfo(
                        self.relative(item["Key"]),
                        item["Size"],
                        item.get("ETag", ""),
                        item.get("LastModified"),
                    )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail(exc, "listing", prefix) from exc

    def delete(self, key: str) -> None:
        self._call("deleting", key, "delete_object", Bucket=self.name, Key=self.full_key(key))

    def delete_prefix(self, prefix: str) -> int:
        """Deletes every object under ``prefix`` (and the uploads begun there); how many."""
        for upload in self.uploads(prefix):
            self.abort_upload(upload)
        # One request per object: DeleteObjects needs a checksum header that S3-compatible
        # servers (S3Proxy among them) do not all take, and a set has few objects.
        keys = [item.key for item in self.list(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)

    # --- multipart uploads ---------------------------------------------------------------

    def start_upload(self, key: str, metadata: Mapping[str, str] | None = None) -> MultipartUpload:
        answer = self._call(
            "starting an upload to",
            key,
            "create_multipart_upload",
            Bucket=self.name,
            Key=self.full_key(key),
            Metadata=dict(metadata or {}),
        )
        return MultipartUpload(key, answer["UploadId"])

    def upload_part(self, upload: MultipartUpload, number: int, data: bytes) -> UploadedPart:
        answer = self._call(
            f"sending part {number} of",
            upload.key,
            "upload_part",
            Bucket=self.name,
            Key=self.full_key(upload.key),
            UploadId=upload.upload_id,
            PartNumber=number,
            Body=data,
        )
        return UploadedPart(number, len(data), answer["ETag"])

    def parts(self, upload: MultipartUpload) -> list[UploadedPart]:
        """The parts the server holds of an upload begun before (to resume it)."""
        found: list[UploadedPart] = []
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.name, Key=self.full_key(upload.key), UploadId=upload.upload_id
        )
        try:
            for page in pages:
                for part in page.get("Parts", []):
                    found.append(UploadedPart(part["PartNumber"], part["Size"], part["ETag"]))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail(exc, "listing the parts of", upload.key) from exc
        return sorted(found, key=lambda p: p.number)

    def complete_upload(self, upload: MultipartUpload, parts: list[UploadedPart]) -> str:
        answer = self._call(
            "completing the upload of",
            upload.key,
            "complete_multipart_upload",
            Bucket=self.name,
            Key=self.full_key(upload.key),
            UploadId=upload.upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
        )
        return answer.get("ETag", "")

    def abort_upload(self, upload: MultipartUpload) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.name, Key=self.full_key(upload.key), UploadId=upload.upload_id
            )
        except botocore.exceptions.ClientError as exc:
            if _code(exc) not in ("NoSuchUpload", "404"):
                raise self._fail(exc, "abandoning the upload of", upload.key) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail(exc, "abandoning the upload of", upload.key) from exc

    def uploads(self, prefix: str = "") -> list[MultipartUpload]:
        """Multipart uploads begun under ``prefix`` and neither completed nor abandoned."""
        found: list[MultipartUpload] = []
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.name, Prefix=self.full_key(prefix) if prefix or self.prefix else ""
        )
        try:
            for page in pages:
                for item in page.get("Uploads", []):
                    found.append(
                        MultipartUpload(
                            self.relative(item["Key"]), item["UploadId"], item.get("Initiated")
                        )
                    )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail(exc, "listing the uploads under", prefix) from exc
        return found

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        metadata: Mapping[str, str] | None = None,
        *,
        part_size: int = PART_SIZE,
        progress: PutProgress = None,
        resume: MultipartUpload | None = None,
    ) -> PutResult:
        """Sends ``stream`` to ``key`` in parts of ``part_size`` (one part in memory at a
        time, no local copy) and completes the upload; abandons it when anything fails.

        ``resume``: an upload begun before whose parts the server holds; ``stream`` must then
        yield the same bytes again: the parts held are read past (hashed and checked against
        the size held), only the rest is sent.
        """
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE}")
        upload = resume or self.start_upload(key, metadata)
        held = {p.number: p for p in self.parts(upload)} if resume else {}
        digest, sent, parts, number = hashlib.sha256(), 0, [], 0
        try:
            while True:
                data = _read_full(stream, part_size)
                if not data and number:
                    break
                number += 1
                digest.update(data)
                known = held.get(number)
                if known is not None and known.size == len(data):
                    parts.append(known)
                else:
                    parts.append(self.upload_part(upload, number, data))
                sent += len(data)
                if progress:
                    progress(sent)
                if len(data) < part_size:
                    break
            etag = self.complete_upload(upload, parts)
        except BaseException:
            try:
                self.abort_upload(upload)
            except OffsiteError:
                pass  # the first failure is the one to report; a later sweep removes it
            raise
        return PutResult(key, sent, digest.hexdigest(), etag)

    # --- the bucket ----------------------------------------------------------------------

    def check_bucket(self) -> None:
        """Raises OffsiteError (naming the setting) unless the bucket answers."""
        self._call("reaching", "", "head_bucket", Bucket=self.name)

    def create_bucket(self) -> None:
        """Creates the bucket (tests and first setups against an S3-compatible server)."""
        try:
            options = {"Bucket": self.name}
            if self.config.region and self.config.region != "us-east-1":
                options["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
            self.client.create_bucket(**options)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._fail(exc, "creating the bucket", "") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail(exc, "creating the bucket", "") from exc

    def remove_bucket(self) -> None:
        """Empties and removes the bucket (tests' cleanup)."""
        for upload in self.uploads():
            self.abort_upload(upload)
        keys = [item.key for item in self.list()]
        for key in keys:
            self.delete(key)
        self._call("removing the bucket", "", "delete_bucket", Bucket=self.name)


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the stream's end (pipes answer in pieces)."""
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(min(left, READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
