"""Leases: how runs on several consoles sharing one backup storage keep their blobs alive.

The only module that reads or writes ``leases/`` under the storage root. A run that writes
blobs, or relies on them staying (a backup, a restore and its safety backup, a verify, a
drill, an import), takes a lease before it starts, renews it while it lives (at most every
``RENEW_SECONDS``) and removes it at its end:

    leases/<holder>.json    {"format": "a4c-backup-lease", "version": 1, "holder": ...,
                             "run": ..., "host": ..., "pid": ..., "started_at": ...,
                             "expires_at": ...}

The rule every collector follows (``Store.collect_garbage``): while any lease other than the
collector's own is live (its expiry not passed), no blob is removed, and the collection says
which lease held it; the blobs wait for the next collection. That is the simplest correct
rule: a run in flight may rely on an old blob (an unchanged file's) whose only manifest
another console is deleting, so keeping only the blobs newer than a lease would not do.

A dead run stops renewing: its lease expires (A4C_STORAGE_LEASE_SECONDS after its last
renewal) and is then ignored, and said to be. A lease written on this host by a process that
no longer exists is ignored at once (a killed run on this machine holds nothing up). Lease
files are written by other consoles and hosts, so they are untrusted input: read without
following links, small, parsed strictly; a malformed one is reported and ignored, and nothing
in one names a path to anything.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backups.errors import StorageError
from backups.storage.fileio import os_error, show

LEASE_FORMAT = "a4c-backup-lease"
LEASE_VERSION = 1
LEASE_MAX_BYTES = 4096
RENEW_SECONDS = 30.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,120}\.json$")
_FIELDS = {"format", "version", "holder", "run", "host", "pid", "started_at", "expires_at"}


@dataclass(frozen=True)
class Lease:
    """One lease as read from the storage."""

    holder: str  # the file's name without .json: who holds it
    run: str  # what it is held for, in the operator's words ("backup nightly (12)")
    host: str
    pid: int
    started_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        return (
            f"{self.run} on {self.host} (pid {self.pid}, lease {self.holder}, "
            f"expires {self.expires_at:%Y-%m-%d %H:%M:%S} UTC)"
        )


@dataclass(frozen=True)
class LeaseReading:
    """What ``leases/`` holds at one moment: live leases, expired ones, and files that are
    not leases (each with why)."""

    live: tuple[Lease, ...] = ()
    expired: tuple[Lease, ...] = ()
    malformed: tuple[str, ...] = ()
    dead: tuple[Lease, ...] = ()  # unexpired, but held by a process of this host that is gone


def _parse_time(value: object, what: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError(f"{what} is not a time")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{what} has no time zone")
    return parsed.astimezone(UTC)


def parse_lease(holder: str, raw: bytes) -> Lease:
    """A lease from a file's bytes; ValueError saying what is wrong with it."""
    if len(raw) > LEASE_MAX_BYTES:
        raise ValueError(f"larger than {LEASE_MAX_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict) or set(data) != _FIELDS:
        raise ValueError(f"not a lease object with exactly the fields {', '.join(sorted(_FIELDS))}")
    if data["format"] != LEASE_FORMAT or data["version"] != LEASE_VERSION:
        raise ValueError(f"format {data['format']!r} version {data['version']!r} is not known")
    for key in ("holder", "run", "host"):
        if not isinstance(data[key], str) or not 0 < len(data[key]) <= 200:
            raise ValueError(f"{key} is not a short text")
    if data["holder"] != holder:
        raise ValueError(f"it names holder {data['holder']!r}, not its file's name")
    pid = data["pid"]
    if not isinstance(pid, int) or isinstance(pid, bool) or pid < 0:
        raise ValueError("pid is not a number")
    started = _parse_time(data["started_at"], "started_at")
    expires = _parse_time(data["expires_at"], "expires_at")
    return Lease(holder, data["run"], data["host"], pid, started, expires)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a pid of this kind: taken as alive
    return True


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "run"


class Leases:
    """The ``leases/`` directory of one backup storage."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def take(self, run: str, seconds: float, *, now: datetime | None = None) -> HeldLease:
        """Writes a new lease for ``run`` (the operator's words for it), valid ``seconds``;
        StorageError if the storage cannot hold it (then the run must not start)."""
        host = socket.gethostname()
        holder = f"{_slug(host)}-{_slug(run)}-{uuid.uuid4().hex[:12]}"
        held = HeldLease(self, holder, run, host, seconds, now or datetime.now(UTC))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise StorageError(
                f"{show(self.directory)} is not a directory: the backup storage keeps the leases "
                "of running runs there; move that file away and try again"
            ) from None
        except OSError as exc:
            raise os_error(exc, "creating", self.directory) from exc
        held.renew(now=now, force=True)
        return held

    def read(self, *, now: datetime | None = None) -> LeaseReading:
        """Every lease file, sorted into live, expired and malformed; never raises for a bad
        file (an unreadable directory is a StorageError)."""
        now = now or datetime.now(UTC)
        live, expired, malformed, dead = [], [], [], []
        here = socket.gethostname()
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return LeaseReading()
        except OSError as exc:
            raise os_error(exc, "reading", self.directory) from exc
        for name in names:
            if name.startswith(".") and name.endswith(".part"):
                continue  # a lease being written
            if not _NAME.match(name):
                malformed.append(f"{show(name)}: not a lease file's name")
                continue
            try:
                lease = parse_lease(name[: -len(".json")], self._read(name))
            except (OSError, ValueError) as exc:
                malformed.append(f"{name}: {exc}")
                continue
            if lease.expires_at <= now:
                expired.append(lease)
            elif lease.host == here and not _alive(lease.pid):
                dead.append(lease)
            else:
                live.append(lease)
        return LeaseReading(tuple(live), tuple(expired), tuple(malformed), tuple(dead))

    def _read(self, name: str) -> bytes:
        fd = os.open(self.directory / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise ValueError("not a regular file")
                return f.read(LEASE_MAX_BYTES + 1)
        finally:
            os.close(fd)


@dataclass
class HeldLease:
    """A lease this process holds: renew() keeps it alive, release() removes it."""

    leases: Leases
    holder: str
    run: str
    host: str
    seconds: float
    started_at: datetime
    _renewed: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def path(self) -> Path:
        return self.leases.directory / f"{self.holder}.json"

    def renew(self, *, now: datetime | None = None, force: bool = False) -> None:
        """Pushes the expiry ``seconds`` on; cheap to call often (it writes at most every
        RENEW_SECONDS, or a third of the lease, unless ``force``)."""
        every = min(RENEW_SECONDS, self.seconds / 3)
        with self._lock:
            if not force and time.monotonic() - self._renewed < every:
                return
            now = now or datetime.now(UTC)
            body = {
                "format": LEASE_FORMAT,
                "version": LEASE_VERSION,
                "holder": self.holder,
                "run": self.run[:200],
                "host": self.host[:200],
                "pid": os.getpid(),
                "started_at": self.started_at.isoformat(),
                "expires_at": (now + timedelta(seconds=self.seconds)).isoformat(),
            }
            partial = self.leases.directory / f".{self.holder}.part"
            try:
                partial.write_text(json.dumps(body, indent=1))
                os.replace(partial, self.path)
            except OSError as exc:
                raise os_error(exc, "writing the lease", self.path) from exc
            self._renewed = time.monotonic()

    def release(self) -> None:
        """Removes the lease; a lease already gone is fine (it had expired and was removed)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise os_error(exc, "removing the lease", self.path) from exc
