"""The real S3 server of the off-site tests: S3Proxy, started by scripts/services.sh."""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The same defaults as scripts/lib.sh, which starts it.
S3_PORT = int(os.environ.get("A4C_S3_PORT", "9390"))
S3_ENDPOINT = f"http://127.0.0.1:{S3_PORT}"
S3_IDENTITY = os.environ.get("A4C_S3_IDENTITY", "a4c-local")
S3_CREDENTIAL = os.environ.get("A4C_S3_CREDENTIAL", "a4c-local-secret")


def s3_answers() -> bool:
    try:
        urllib.request.urlopen(S3_ENDPOINT + "/", timeout=3)
    except urllib.error.HTTPError:
        return True  # 403 without credentials: it serves
    except OSError:
        return False
    return True


def start_s3() -> str:
    """Starts S3Proxy through the project's script (a no-op when it runs); its output."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "services.sh"), "start", "s3"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.stdout + done.stderr


def offsite_settings(bucket: str, prefix: str = "a4c") -> dict[str, str]:
    return {
        "A4C_OFFSITE_URL": f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
        "A4C_OFFSITE_ENDPOINT_URL": S3_ENDPOINT,
        "A4C_OFFSITE_REGION": "us-east-1",
        "A4C_OFFSITE_ACCESS_KEY": S3_IDENTITY,
        "A4C_OFFSITE_SECRET_KEY": S3_CREDENTIAL,
    }
