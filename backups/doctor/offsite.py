"""The doctor's look at the off-site bucket: do the settings hold, does the bucket answer, and
can the credentials write, list, read and delete (a small probe object, removed after).

Asked by ``manage.py doctor``, the dashboard and ``manage.py check --deploy``; the settings'
own shape is a system check (a4c.E026, and the warning a4c.W003) that every command runs.
"""

from __future__ import annotations

import secrets
import time

from django.conf import settings

from backups import objectstore
from backups.doctor.result import NETWORK_TIMEOUT, Check
from backups.errors import BackupError, ConfigError

NAME = "Off-site bucket"
# The dashboard asks every 30 s: the bucket is asked each time, the write probe (four
# requests, billed by some services) at most this often once it passed, in each process.
PROBE_EVERY = 600.0
_PROBED: dict[tuple, float] = {}
PROBE_PREFIX = ".a4c-doctor-probe/"
CREDENTIALS = "A4C_OFFSITE_ACCESS_KEY and A4C_OFFSITE_SECRET_KEY (or the AWS variables)"


def settings_problem() -> str:
    """What is wrong with the off-site settings themselves, or ""."""
    try:
        if objectstore.offsite_config(objectstore.settings_values()) is not None:
            # here, not at the top: every command's settings check asks this (issue 28, item 3)
            from backups.operations.offsite import segment_bytes

            segment_bytes()
    except ConfigError as exc:
        return exc.message
    return ""


def recipients_problem() -> str:
    if settings.A4C_OFFSITE_URL and not settings.A4C_EXPORT_RECIPIENTS:
        return (
            "A4C_OFFSITE_URL is set but A4C_EXPORT_RECIPIENTS is empty: off-site copies are "
            "encrypted to those age keys and never written in clear, so every copy would be "
            "refused. Set A4C_EXPORT_RECIPIENTS (`manage.py keygen KEYFILE` makes a key pair)."
        )
    return ""


def offsite_check() -> Check:
    if not settings.A4C_OFFSITE_URL:
        return Check(NAME, True, "not configured (A4C_OFFSITE_URL is not set): no off-site copies")
    problem = settings_problem() or recipients_problem()
    if problem:
        return Check(NAME, False, problem, "Correct the setting named.", "error")
    bucket = objectstore.configured(timeout=NETWORK_TIMEOUT, attempts=1)
    try:
        bucket.check_bucket()
    except BackupError as exc:
        return Check(
            NAME,
            False,
            exc.message,
            "Check A4C_OFFSITE_URL, A4C_OFFSITE_ENDPOINT_URL and A4C_OFFSITE_REGION.",
            "error",
        )
    key = (bucket.where(), bucket.config.endpoint_url, bucket.config.access_key)
    passed = _PROBED.get(key)
    if passed is not None and time.monotonic() - passed < PROBE_EVERY:
        return Check(NAME, True, f"{bucket.where()} answers; the credentials write, list and read")
    found = probe(bucket)
    if found.ok:
        _PROBED[key] = time.monotonic()
    return found


def probe(bucket: objectstore.Bucket) -> Check:
    """Writes, lists, reads and deletes one small object; names the right that is missing."""
    key = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
    payload = secrets.token_bytes(32)
    steps = (
        ("write", lambda: bucket.put_bytes(key, payload)),
        ("list", lambda: _listed(bucket, key)),
        ("read", lambda: _read_back(bucket, key, payload)),
        ("delete", lambda: bucket.delete(key)),
    )
    for right, step in steps:
        try:
            step()
        except BackupError as exc:
            if right != "write":
                _forget(bucket, key)
            return Check(
                NAME,
                False,
                f"the credentials cannot {right} in {bucket.where()}: {exc.message}",
                f"Give the key of {CREDENTIALS} the right to {right} objects under the prefix "
                "(s3:PutObject, s3:ListBucket, s3:GetObject, s3:DeleteObject).",
                "error",
            )
    return Check(NAME, True, f"{bucket.where()} answers; the credentials write, list and read")


def _listed(bucket: objectstore.Bucket, key: str) -> None:
    if key not in {item.key for item in bucket.list(PROBE_PREFIX)}:
        raise BackupError(f"the probe object {key} was written but is not listed")


def _read_back(bucket: objectstore.Bucket, key: str, payload: bytes) -> None:
    if bucket.get_bytes(key) != payload:
        raise BackupError(f"the probe object {key} reads back different bytes")


def _forget(bucket: objectstore.Bucket, key: str) -> None:
    try:
        bucket.delete(key)
    except BackupError:
        pass  # the check already reports what is wrong
