"""A small Alien4Cloud REST stand-in, following ../shared/reference/alien4cloud-maintenance-api.md.

Alien4Cloud cannot be downloaded here; this threaded HTTP server on a loopback port answers
what the tool uses of it, as the reference says Alien4Cloud does: the form login and its
JSESSIONID cookie, the ADMIN role, the maintenance endpoints under /rest, /rest/v1 and
/rest/latest with their 201/409/403/404/500 answers, 503 for every other REST path while
maintenance is on, and /rest/admin/health without signing in. Like Alien4Cloud, it saves its
maintenance state in a real Elasticsearch index (one document, rewritten on every enable and
progress update, deleted on disable) and reads it back only when it (re)starts. Every call is
recorded, so tests can assert the order of calls around an operation. As Alien4Cloud 3.7.0
does (shown on the real server by tests/test_real_alien4cloud.py), it answers 201 to PUT as to
POST, and writes an audit trace of every maintenance call that changes something into the
installation's audittrace index, just after answering.

Where the reference is silent, the stand-in's choice is said in a comment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import socket
import threading
import time
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAINTENANCE_PREFIXES = ("/rest/maintenance", "/rest/v1/maintenance", "/rest/latest/maintenance")
# Paths the maintenance filter lets through (under /rest, /rest/v1 and /rest/latest).
OPEN_DURING_MAINTENANCE = ("/maintenance", "/modules", "/auth", "/admin/health", "/configuration")
DOCUMENT_ID = "maintenance"  # one document; its id is the stand-in's choice


@dataclasses.dataclass(frozen=True)
class Call:
    method: str
    path: str
    user: str  # "" when not signed in
    status: int
    body: dict | None

    @property
    def short(self) -> str:
        """ "POST maintenance" and the like: what order-of-calls assertions compare."""
        name = self.path.rsplit("/", 1)[-1] or self.path
        return f"{self.method} {name}"


class StandIn:
    """An Alien4Cloud on 127.0.0.1:<port>, its maintenance state in ``index``."""

    def __init__(
        self,
        es_client,
        index: str,
        users: dict[str, tuple[str, list[str]]],
        audit_index: str = "",
    ):
        self.es = es_client
        self.index = index
        self.audit_index = audit_index
        self.users = users
        self.calls: list[Call] = []
        self.sessions: dict[str, str] = {}
        self.state: dict | None = None
        # Called (in the server's thread) the moment a user's maintenance is disabled, before
        # the DELETE is answered: a test reads there what is true at that moment.
        self.on_disable = None
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.connections: set = set()
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- life cycle ---------------------------------------------------------------------
    def start(self) -> StandIn:
        """Starts answering; like Alien4Cloud, reads the saved maintenance state first."""
        self.state = self._saved_state()
        self.sessions.clear()
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Alien4Cloud down: nothing listens on its port any more."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        # Kept-alive connections would go on being served by their threads: cut them too.
        with self.lock:
            for sock in list(self.connections):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.connections.clear()

    def restart(self) -> None:
        self.stop()
        self.start()

    # --- what tests read and arrange ----------------------------------------------------
    def calls_to(self, fragment: str = "/maintenance") -> list[str]:
        with self.lock:
            return [c.short for c in self.calls if fragment in c.path]

    def sequence(self) -> list[str]:
        """The maintenance, hook (/rest/hook/<name>) and health calls in order, a run of
        progress updates shown as one "PUT maintenance"."""
        shown: list[str] = []
        with self.lock:
            calls = list(self.calls)
        for call in calls:
            if not any(part in call.path for part in ("/maintenance", "/hook/", "/admin/health")):
                continue
            if call.short == "PUT maintenance" and shown and shown[-1] == call.short:
                continue
            shown.append(call.short)
        return shown

    def hook_status(self, name: str) -> int:
        """What Alien4Cloud answered the hook command that called /rest/hook/<name>."""
        with self.lock:
            return next(c.status for c in self.calls if c.path == f"/rest/hook/{name}")

    def enable_by_itself(self) -> None:
        """Maintenance as Alien4Cloud's start-up migrations turn it on (not user-triggered)."""
        with self.lock:
            self.state = {
                "id": DOCUMENT_ID,
                "user": "alien4cloud",
                "userTriggered": False,
                "progressPercent": 0,
                "log": [],
            }
            self._save()

    def saved_documents(self) -> int:
        self.es.indices.refresh(index=self.index, ignore_unavailable=True)
        return self.es.count(index=self.index, ignore_unavailable=True)["count"]

    # --- the state, as Alien4Cloud keeps it ---------------------------------------------
    def _saved_state(self) -> dict | None:
        self.es.indices.refresh(index=self.index, ignore_unavailable=True)
        hits = self.es.search(index=self.index, size=1, ignore_unavailable=True)["hits"]["hits"]
        return hits[0]["_source"] if hits else None

    def _save(self) -> None:
        self.es.index(index=self.index, id=DOCUMENT_ID, document=self.state, refresh=True)

    def _trace(self, method: str, path: str, user: str, status: int) -> None:
        """An AuditTrace document, with the fields Alien4Cloud's AuditLogFilter sets, in an
        installation that has the index (Alien4Cloud creates it at start-up)."""
        if not self.audit_index or not self.es.indices.exists(index=self.audit_index):
            return
        trace = {
            "timestamp": int(time.time() * 1000),
            "category": "maintenance",
            "action": method.lower(),
            "userName": user,
            "path": path,
            "method": method,
            "responseStatus": status,
        }
        self.es.index(index=self.audit_index, document=trace)

    def _forget(self) -> None:
        # one by one: the minimal Elasticsearch of the tests has no _delete_by_query
        found = self.es.search(index=self.index, size=100, ignore_unavailable=True)
        for hit in found["hits"]["hits"]:
            self.es.options(ignore_status=404).delete(index=self.index, id=hit["_id"], refresh=True)


def _ok(data=None):
    return {"data": data, "error": None}


def _error(code: int, message: str):
    return {"data": None, "error": {"code": code, "message": message}}


class _Handler(BaseHTTPRequestHandler):
    standin: StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # the test output stays quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.standin.lock:
            self.standin.connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.standin.lock:
            self.standin.connections.discard(self.connection)

    # --- plumbing -----------------------------------------------------------------------
    def _user(self) -> str:
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        token = cookie["JSESSIONID"].value if "JSESSIONID" in cookie else ""
        return self.standin.sessions.get(token, "")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, payload=None, headers: dict | None = None, body=None) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with self.standin.lock:
            self.standin.calls.append(
                Call(self.command, urlsplit(self.path).path, self._user(), status, body)
            )

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    # --- Alien4Cloud --------------------------------------------------------------------
    def _route(self) -> None:
        path = urlsplit(self.path).path
        raw = self._body()
        if path == "/login" and self.command == "POST":
            return self._login(raw)
        if not path.startswith("/rest"):
            return self._answer(200, None)  # the static UI
        if self.standin.state is not None and not any(
            part in path for part in OPEN_DURING_MAINTENANCE
        ):
            return self._answer(503, _error(503, "Maintenance mode is enabled."))
        if path == "/rest/admin/health":
            return self._answer(200, {"status": "UP"})
        if path.endswith("/auth/status"):
            return self._status()
        if path.endswith("/auth/authenticationfailed"):
            return self._answer(401, _error(101, "Authentication failed."))
        user = self._user()
        if not user:
            return self._answer(403, _error(100, "An authentication is required."))
        if path.rstrip("/") in MAINTENANCE_PREFIXES:
            return self._maintenance(user, raw)
        return self._answer(200, _ok())  # any other REST call, while maintenance is off

    def _login(self, raw: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        name, password = form.get("username", ""), form.get("password", "")
        known = self.standin.users.get(name)
        if known is None or known[0] != password:
            return self._answer(302, None, {"Location": "/rest/auth/authenticationfailed"})
        token = secrets.token_hex(16)
        self.standin.sessions[token] = name
        self._answer(
            302,
            None,
            {
                "Location": "/rest/auth/status",
                "Set-Cookie": f"JSESSIONID={token}; Path=/; HttpOnly",
            },
        )

    def _status(self) -> None:
        user = self._user()
        if not user:
            return self._answer(200, _ok({"isLogged": False, "roles": []}))
        # The reference names no fields here; these are Alien4Cloud's UserStatus.
        roles = self.standin.users[user][1]
        self._answer(200, _ok({"isLogged": True, "username": user, "roles": roles}))

    def _maintenance(self, user: str, raw: bytes) -> None:
        standin = self.standin
        admin = "ADMIN" in standin.users[user][1]
        if self.command == "GET":
            return self._answer(200, _ok(standin.state))
        if not admin:
            return self._answer(403, _error(102, "Access is denied."))
        body = json.loads(raw) if raw else None
        with standin.lock:
            state = standin.state
            if self.command == "POST":
                if state is not None:
                    status, payload = 409, _error(502, "The posted object already exist.")
                else:
                    standin.state = {
                        "id": DOCUMENT_ID,
                        "user": user,
                        "userTriggered": True,
                        "progressPercent": 0,
                        "log": [],
                    }
                    standin._save()
                    status, payload = 201, _ok()
            elif self.command == "PUT":
                # The reference: "only while a user enabled it"; otherwise the stand-in refuses
                # as DELETE does when it is off.
                if state is None or not state["userTriggered"]:
                    status, payload = 404, _error(504, "Maintenance mode is not enabled by a user.")
                else:
                    state["log"].append(
                        {
                            "date": int(time.time() * 1000),
                            "user": user,
                            "message": (body or {}).get("message", ""),
                        }
                    )
                    if (body or {}).get("progressPercentage") is not None:
                        state["progressPercent"] = int(body["progressPercentage"])
                    standin._save()
                    status, payload = 201, _ok()  # as 3.7.0 answers
            else:  # DELETE
                if state is None:
                    status, payload = 404, _error(504, "Maintenance mode is not enabled.")
                elif not state["userTriggered"]:
                    status, payload = 500, _error(500, "Maintenance was enabled by the system.")
                else:
                    standin.state = None
                    standin._forget()
                    if standin.on_disable is not None:
                        standin.on_disable()
                    status, payload = 200, _ok()
        self._answer(status, payload, body=body)
        standin._trace(self.command, urlsplit(self.path).path, user, status)
