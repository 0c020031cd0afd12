"""Alien4Cloud's REST API, as ../shared/reference/alien4cloud-maintenance-api.md describes it.

A Server signs in with the form login once, keeps the JSESSIONID cookie in its session and
signs in again when Alien4Cloud forgets it (a restart). Every failure becomes an
Alien4CloudError whose message names the setting to fix. Transient transport errors of calls
that change nothing twice (GET, PUT, DELETE) are tried again a few times, briefly: disabling
maintenance must survive a connection reset, or Alien4Cloud stays locked.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import requests
from django.conf import settings
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

# re-exported: the door's whole API is here
from backups.alien4cloud.configuration import (  # noqa: F401
    MODES,
    PASSWORD_SETTINGS,
    configured,
    mode,
    password,
    settings_problems,
)
from backups.errors import (
    Alien4CloudError,
    Alien4CloudSignInError,
    Alien4CloudUnreachable,
    ConfigError,
    MaintenanceHeldElsewhere,
)

MAINTENANCE_PATH = "/rest/latest/maintenance"
HEALTH_PATH = "/rest/admin/health"
STATUS_PATH = "/rest/auth/status"
# Alien4Cloud saves its maintenance state in this index (one document while it is on).
MAINTENANCE_INDEX = "maintenancemodestate"
# ... and one AuditTrace document here for every call to an audited endpoint, the
# maintenance endpoints among them, whatever its answer (AuditLogFilter, 3.7.0).
AUDIT_INDEX = "audittrace"
MAINTENANCE_PATHS = ("/rest/maintenance", "/rest/v1/maintenance", MAINTENANCE_PATH)


@dataclasses.dataclass(frozen=True)
class LogLine:
    at: datetime | None
    user: str
    message: str


@dataclasses.dataclass(frozen=True)
class Maintenance:
    """Alien4Cloud's maintenance mode while it is on."""

    user: str
    user_triggered: bool  # False: Alien4Cloud enabled it itself (start-up migrations)
    progress: int | None
    log: tuple[LogLine, ...] = ()

    @property
    def message(self) -> str:
        return self.log[-1].message if self.log else ""


@dataclasses.dataclass(frozen=True)
class Account:
    username: str
    roles: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "ADMIN" in self.roles


@dataclasses.dataclass(frozen=True)
class Health:
    up: bool
    status_code: int
    detail: str


def is_maintenance_index(name: str) -> bool:
    """Alien4Cloud's maintenance index, also under an index prefix (tests use one)."""
    return name == MAINTENANCE_INDEX or name.endswith("-" + MAINTENANCE_INDEX)


def is_audit_index(name: str) -> bool:
    return name == AUDIT_INDEX or name.endswith("-" + AUDIT_INDEX)


def own_maintenance_calls(username: str, since: datetime) -> dict:
    """An Elasticsearch query for the audit traces Alien4Cloud wrote of ``username``'s calls
    that change maintenance mode since ``since``: what a run's own calls add to the index."""
    return {
        "bool": {
            "filter": [
                {"terms": {"path": list(MAINTENANCE_PATHS)}},
                {"terms": {"method": ["POST", "PUT", "DELETE"]}},
                {"term": {"userName": username}},
                {"range": {"timestamp": {"gte": int(since.timestamp() * 1000)}}},
            ]
        }
    }


def server(*, attempts: int = 3, timeout: float | None = None) -> Server:
    """The configured Alien4Cloud, or ConfigError naming the setting that is missing."""
    problems = settings_problems()
    if not settings.A4C_SERVER_URL:
        problems.insert(0, "A4C_SERVER_URL is not set: give Alien4Cloud's URL.")
    if problems:
        raise ConfigError(" ".join(problems))
    return Server(
        settings.A4C_SERVER_URL,
        settings.A4C_SERVER_USERNAME,
        password(),
        ca_cert=settings.A4C_SERVER_CA_CERT,
        timeout=timeout or settings.A4C_SERVER_TIMEOUT,
        attempts=attempts,
    )


def anonymous(*, timeout: float = 2.0) -> Server:
    """The configured Alien4Cloud without credentials: for its health, which needs none."""
    return Server(
        settings.A4C_SERVER_URL, "", "", ca_cert=settings.A4C_SERVER_CA_CERT, timeout=timeout
    )


class Server:
    """One Alien4Cloud, one signed-in session."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        ca_cert: str = "",
        timeout: float = 10.0,
        attempts: int = 3,
    ):
        self.url = url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.session = requests.Session()
        self.session.verify = ca_cert or True
        self.session.headers["Accept"] = "application/json"
        self._signed_in = False

    # --- transport ------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, self.url + path, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise Alien4CloudError(
                f"Alien4Cloud at {self.url} offers a certificate this tool does not trust "
                f"({exc}): set A4C_SERVER_CA_CERT to the CA file that signed it."
            ) from None
        except requests.exceptions.RequestException as exc:
            raise Alien4CloudUnreachable(
                f"Alien4Cloud cannot be reached at {self.url} ({type(exc).__name__}): start it, "
                "or correct A4C_SERVER_URL.",
                detail=str(exc),
            ) from None

    def _retrying(self, call):
        for attempt in Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception_type(Alien4CloudUnreachable),
            reraise=True,
        ):
            with attempt:
                return call()
        raise AssertionError("unreachable")  # pragma: no cover - Retrying reraises

    def _rest(self, method: str, path: str, *, retry: bool = True, **kwargs):
        """A signed-in REST call: (status code, data, error) of the RestResponse envelope."""

        def once():
            if not self._signed_in:
                self.sign_in()
            response = self._send(method, path, **kwargs)
            if response.status_code in (401, 403) and _error_code(response) == 100:
                # The session was forgotten (Alien4Cloud restarted): sign in again, once.
                self.sign_in()
                response = self._send(method, path, **kwargs)
            return response

        response = self._retrying(once) if retry else once()
        data, error = _envelope(response)
        return response.status_code, data, error

    # --- sign-in --------------------------------------------------------------------------
    def sign_in(self) -> Account:
        """The form login; the session cookie is kept. Returns who is signed in."""
        self.session.cookies.clear()
        response = self._send(
            "POST",
            "/login",
            data={"username": self.username, "password": self._password, "submit": "Login"},
            allow_redirects=False,
        )
        where = response.headers.get("Location", "")
        if "authenticationfailed" in where or response.status_code in (401, 403):
            raise Alien4CloudSignInError(
                f"Alien4Cloud at {self.url} refused the sign-in of {self.username!r}: correct "
                f"A4C_SERVER_USERNAME or {PASSWORD_SETTINGS}."
            )
        if response.status_code not in (301, 302, 303) or STATUS_PATH not in where:
            raise Alien4CloudError(
                f"{self.url}/login answered {response.status_code}"
                + (f" (to {where})" if where else "")
                + ", not Alien4Cloud's sign-in redirect: does A4C_SERVER_URL name Alien4Cloud?"
            )
        self._signed_in = True
        return self.account()

    def account(self) -> Account:
        status, data, error = self._rest("GET", STATUS_PATH)
        if not _succeeded(status) or not isinstance(data, dict):
            raise Alien4CloudError(
                f"Alien4Cloud at {self.url} did not say who is signed in ({status}: "
                f"{_said(error)})."
            )
        roles = data.get("roles") or []
        return Account(username=str(data.get("username") or self.username), roles=tuple(roles))

    # --- maintenance ----------------------------------------------------------------------
    def maintenance(self) -> Maintenance | None:
        """The maintenance state, None when it is off."""
        status, data, error = self._rest("GET", MAINTENANCE_PATH)
        if not _succeeded(status):
            raise self._refused("read maintenance mode", status, error)
        if not data:
            return None
        log = tuple(
            LogLine(
                at=datetime.fromtimestamp(line["date"] / 1000, UTC) if line.get("date") else None,
                user=str(line.get("user") or ""),
                message=str(line.get("message") or ""),
            )
            for line in data.get("log") or []
        )
        progress = data.get("progressPercent")
        return Maintenance(
            user=str(data.get("user") or ""),
            user_triggered=bool(data.get("userTriggered", True)),
            progress=int(progress) if progress is not None else None,
            log=log,
        )

    def enable_maintenance(self) -> None:
        """Turns it on in this user's name; MaintenanceHeldElsewhere when it is on already.

        Never tried twice: a POST whose answer was lost may have enabled it, and a second one
        would then read as someone else's maintenance.
        """
        status, _, error = self._rest("POST", MAINTENANCE_PATH, retry=False)
        if _succeeded(status):  # 3.7.0 answers 201
            return
        if status == 409:
            raise MaintenanceHeldElsewhere(
                f"Alien4Cloud at {self.url} is in maintenance mode already; it was left as it is."
            )
        raise self._refused("enable maintenance mode", status, error)

    def update_maintenance(self, message: str, progress: int) -> None:
        """Adds a log line and sets the progress Alien4Cloud shows its users."""
        body = {"message": message[:500], "progressPercentage": max(0, min(100, int(progress)))}
        status, _, error = self._rest("PUT", MAINTENANCE_PATH, json=body)
        if not _succeeded(status):  # 3.7.0 answers 201, the reference implied 200
            raise self._refused("update maintenance mode", status, error)

    def disable_maintenance(self) -> bool:
        """Turns it off; False when it was off already."""
        status, _, error = self._rest("DELETE", MAINTENANCE_PATH)
        if _succeeded(status):
            return True
        if status == 404:
            return False
        if status == 500:
            raise Alien4CloudError(
                f"Alien4Cloud at {self.url} refused to leave maintenance mode ({_said(error)}): "
                "it enabled it itself (start-up migrations) and ends it when they are done."
            )
        raise self._refused("disable maintenance mode", status, error)

    # --- health ---------------------------------------------------------------------------
    def health(self) -> Health:
        """GET /rest/admin/health, which answers without signing in."""
        response = self._send("GET", HEALTH_PATH)
        return Health(
            up=response.status_code == 200,
            status_code=response.status_code,
            detail=response.text[:200],
        )

    def _refused(self, what: str, status: int, error) -> Alien4CloudError:
        if status in (401, 403):
            return Alien4CloudSignInError(
                f"Alien4Cloud at {self.url} refused to let {self.username!r} {what} ({status}: "
                f"{_said(error)}): A4C_SERVER_USERNAME must name a user with the ADMIN role."
            )
        if status == 503:
            return Alien4CloudUnreachable(
                f"Alien4Cloud at {self.url} is not ready ({status}: {_said(error)}): wait for it "
                "to start, then try again."
            )
        return Alien4CloudError(
            f"Alien4Cloud at {self.url} could not {what}: {status}: {_said(error)}."
        )


def _succeeded(status: int) -> bool:
    """Any 2xx: Alien4Cloud's controllers choose 200 or 201 per call, not per meaning."""
    return 200 <= status < 300


def _envelope(response: requests.Response):
    try:
        body = response.json()
    except ValueError:
        return None, {"code": None, "message": response.text[:200]}
    if not isinstance(body, dict):
        return body, None
    return body.get("data"), body.get("error")


def _error_code(response: requests.Response):
    _, error = _envelope(response)
    return error.get("code") if isinstance(error, dict) else None


def _said(error) -> str:
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message") or ""
        return f"error {code}, {message}" if code is not None else message or "no message"
    return "no message"
