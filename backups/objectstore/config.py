"""Where the off-site bucket is and how to sign in to it, read once from the settings' values.

``offsite_config(values)`` takes the A4C_OFFSITE_* values (and the standard AWS variables'
values) as a mapping, so a settings check can judge values without a client, and parses
``A4C_OFFSITE_URL`` into a bucket and a prefix.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

from backups.errors import ConfigError

# S3's rules for bucket names (lower case, digits, dots, hyphens; 3-63 long).
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclasses.dataclass(frozen=True)
class OffsiteLocation:
    bucket: str
    prefix: str  # without a leading or trailing slash; "" for the bucket's root

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


@dataclasses.dataclass(frozen=True)
class OffsiteConfig:
    location: OffsiteLocation
    endpoint_url: str  # "" for AWS itself
    region: str  # "" lets boto3 pick (AWS_REGION or its own default)
    access_key: str  # "" lets boto3 find credentials (AWS_* variables, profiles, roles)
    secret_key: str = dataclasses.field(repr=False, default="")
    ca_cert: str = ""  # a CA bundle for an https endpoint with a private CA


def parse_offsite_url(url: str) -> OffsiteLocation:
    """``s3://bucket/some/prefix`` into its bucket and prefix; a ConfigError says what is wrong."""
    text = (url or "").strip()
    match = re.match(r"^s3://([^/]+)(?:/(.*))?$", text)
    if not match:
        raise ConfigError(
            f"A4C_OFFSITE_URL={text!r} is not an s3:// URL: write it as s3://BUCKET/PREFIX "
            "(for example s3://acme-backups/a4c)."
        )
    bucket, prefix = match.group(1), (match.group(2) or "").strip("/")
    if not BUCKET_NAME.match(bucket) or ".." in bucket:
        raise ConfigError(
            f"A4C_OFFSITE_URL names the bucket {bucket!r}, which is not a valid bucket name "
            "(3-63 lower-case letters, digits, dots and hyphens): fix A4C_OFFSITE_URL."
        )
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ConfigError(
            f"A4C_OFFSITE_URL's prefix {prefix!r} has an empty, '.' or '..' part: "
            "write it as s3://BUCKET/some/prefix."
        )
    return OffsiteLocation(bucket, prefix)


def _secret(values: Mapping[str, str], name: str) -> str:
    """The value of NAME_FILE's first line when that is set, else NAME's value."""
    path = values.get(f"{name}_FILE", "")
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(
                f"{name}_FILE names {path}, which cannot be read ({exc.strerror}): "
                "fix the path or its permissions."
            ) from None
        if not lines or not lines[0].strip():
            raise ConfigError(f"{name}_FILE names {path}, whose first line is empty.")
        return lines[0].strip()
    return values.get(name, "") or ""


def offsite_config(values: Mapping[str, str]) -> OffsiteConfig | None:
    """The off-site bucket the values describe, or None when A4C_OFFSITE_URL is empty."""
    if not (values.get("A4C_OFFSITE_URL") or "").strip():
        return None
    location = parse_offsite_url(values["A4C_OFFSITE_URL"])
    access_key = _secret(values, "A4C_OFFSITE_ACCESS_KEY")
    secret_key = _secret(values, "A4C_OFFSITE_SECRET_KEY")
    if bool(access_key) != bool(secret_key):
        raise ConfigError(
            "A4C_OFFSITE_ACCESS_KEY and A4C_OFFSITE_SECRET_KEY go together: set both (or their "
            "_FILE variants), or neither to use the standard AWS variables."
        )
    ca_cert = values.get("A4C_OFFSITE_CA_CERT", "") or ""
    if ca_cert and not Path(ca_cert).is_file():
        raise ConfigError(f"A4C_OFFSITE_CA_CERT names {ca_cert}, which is not a file.")
    endpoint = (values.get("A4C_OFFSITE_ENDPOINT_URL", "") or "").strip()
    if endpoint and not re.match(r"^https?://[^/\s]+", endpoint):
        raise ConfigError(
            f"A4C_OFFSITE_ENDPOINT_URL={endpoint!r} is not an http(s):// URL: write it as "
            "https://HOST:PORT, or leave it empty for AWS S3."
        )
    return OffsiteConfig(
        location=location,
        endpoint_url=endpoint,
        region=(values.get("A4C_OFFSITE_REGION", "") or "").strip(),
        access_key=access_key,
        secret_key=secret_key,
        ca_cert=ca_cert,
    )
