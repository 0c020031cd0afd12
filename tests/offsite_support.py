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


def offsite_env(settings) -> dict[str, str]:
    """The off-site settings of the test, for a worker process."""
    names = (
        "A4C_OFFSITE_URL",
        "A4C_OFFSITE_ENDPOINT_URL",
        "A4C_OFFSITE_REGION",
        "A4C_OFFSITE_ACCESS_KEY",
        "A4C_OFFSITE_SECRET_KEY",
        "A4C_OFFSITE_SEGMENT_SIZE",
        "A4C_OFFSITE_ATTEMPTS",
        "A4C_OFFSITE_RETRY_SECONDS",
        "A4C_SIGNING_KEY_FILE",
    )
    env = {name: str(getattr(settings, name)) for name in names}
    env["A4C_EXPORT_RECIPIENTS"] = ",".join(settings.A4C_EXPORT_RECIPIENTS)
    return env


def read_copy(bucket, name: str, identity) -> tuple[dict, bytes]:
    """The set's marker (as JSON) and its plain archive, decrypted segment by segment and
    checked against the marker as a reader would."""
    import hashlib
    import json

    import pyrage

    marker = json.loads(bucket.get_bytes(f"{name}/COPY.json"))
    plain = b""
    for segment in marker["copy"]["segments"]:
        sealed = bucket.get_bytes(segment["key"])
        assert len(sealed) == segment["size"]
        assert hashlib.sha256(sealed).hexdigest() == segment["sha256"]
        assert not sealed.startswith(b"\x1f\x8b"), "a segment is stored in clear"
        part = pyrage.decrypt(sealed, [identity])
        assert hashlib.sha256(part).hexdigest() == segment["plain_sha256"]
        plain += part
    assert len(plain) == marker["copy"]["archive_size"]
    assert hashlib.sha256(plain).hexdigest() == marker["copy"]["archive_sha256"]
    return marker, plain


class CuttingForwarder:
    """A TCP forwarder to the S3 server that cuts every connection at once (a server down, a
    network cut) until ``heal()``, then forwards: a push's retry finds the bucket back."""

    def __init__(self, healed: bool = False):
        import socket
        import threading

        self.accepted = 0
        self.live: list = []  # the sockets of the connections it forwards
        self.healed = threading.Event()
        if healed:
            self.healed.set()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket
        import threading

        self.server.settimeout(0.2)
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if not self.healed.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", S3_PORT))
            self.live += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, target) -> None:
        try:
            while chunk := source.recv(1 << 16):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.close()
                except OSError:
                    pass

    def heal(self) -> None:
        self.healed.set()

    def cut(self) -> None:
        """The server goes down: the connections open are cut, new ones refused."""
        import socket

        self.healed.clear()
        for end in self.live:
            try:
                end.shutdown(socket.SHUT_RDWR)
                end.close()
            except OSError:
                pass
        self.live.clear()

    def close(self) -> None:
        self.closed.set()
        self.server.close()


class HealOnRetry:
    """A logging handler that heals the forwarder when a push logs its first failed attempt:
    the retry, and only it, finds the bucket back."""

    def __init__(self, forwarder: CuttingForwarder):
        import logging

        class Handler(logging.Handler):
            def emit(self, record):
                if "attempt 1 failed" in record.getMessage():
                    forwarder.heal()

        self.handler = Handler()
        self.logger = logging.getLogger("backups.operations")

    def __enter__(self):
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
