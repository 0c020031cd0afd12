"""Alien4Cloud content: users, groups, CSARs and applications, created and read over its REST API.

This module owns what a test or a demo puts into a real Alien4Cloud and what it reads back to
compare: the create/delete helpers, a tiny CSAR builder, and ``snapshot_state``, a frozen
picture of the content that a restore must bring back. It talks to Alien4Cloud only through
``client.Server._rest`` (which signs in); it never touches Elasticsearch or the data dir.

Alien4Cloud answers some failures with HTTP 200 and an error in its envelope (a CSAR that
does not parse: error 200; another content under an existing name and version: 502), and
refuses an existing application with HTTP 201 and error 615, so every call here checks both:
any 2xx with no error is success.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from backups.alien4cloud.client import Server
from backups.errors import Alien4CloudError

# Alien4Cloud's error codes (RestErrorCode) this module reacts to, as 3.7.0 answers them:
# 502 with HTTP 409 for a user or group that exists; 615 with HTTP 201 (!) for an application
# whose archive exists; 504 with HTTP 404 for something that is not there.
ALREADY_EXISTS = 502
APPLICATION_ALREADY_EXISTS = 615
NOT_FOUND = 504
# Searches ask for this many at once; demo and test content stays far below it.
PAGE_SIZE = 1000
ROOT_TYPE = "tosca.nodes.Root"


@dataclasses.dataclass(frozen=True, order=True)
class User:
    username: str
    roles: tuple[str, ...]  # its own roles, not those of its groups
    groups: tuple[str, ...] = ()  # group names


@dataclasses.dataclass(frozen=True, order=True)
class Group:
    name: str
    users: tuple[str, ...]
    roles: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, order=True)
class CsarInfo:
    name: str
    version: str
    hash: str  # Alien4Cloud's SHA-1 of the archive's content, upper-case hex


@dataclasses.dataclass(frozen=True, order=True)
class Application:
    id: str
    name: str


@dataclasses.dataclass(frozen=True)
class State:
    """The content a restore must bring back, sorted so that two states compare with ==."""

    users: tuple[User, ...]
    groups: tuple[Group, ...]
    csars: tuple[CsarInfo, ...]
    applications: tuple[Application, ...]


class ContentError(Alien4CloudError):
    """Alien4Cloud refused to create, read or delete some content."""


# --- calls ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Answer:
    status: int
    data: object
    error: dict | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.error

    @property
    def code(self) -> int | None:
        return self.error.get("code") if isinstance(self.error, dict) else None

    def said(self) -> str:
        if isinstance(self.error, dict):
            return f"error {self.error.get('code')}, {self.error.get('message') or ''}".strip()
        return "no error message"


def _ask(server: Server, method: str, path: str, **kwargs) -> _Answer:
    status, data, error = server._rest(method, path, **kwargs)
    return _Answer(status, data, error if isinstance(error, dict) else None)


def _refused(server: Server, what: str, answer: _Answer) -> ContentError:
    return ContentError(
        f"Alien4Cloud at {server.url} could not {what}: {answer.status}: {answer.said()}.",
        detail=repr(answer.data)[:1000],
    )


def _call(server: Server, what: str, method: str, path: str, **kwargs):
    """The data of a call that must succeed: any 2xx without an error in the envelope."""
    answer = _ask(server, method, path, **kwargs)
    if not answer.ok:
        raise _refused(server, what, answer)
    return answer.data


def _search(server: Server, what: str, path: str) -> list[dict]:
    request = {"query": "", "from": 0, "size": PAGE_SIZE}
    data = _call(server, what, "POST", path, json=request) or {}
    return list(data.get("data") or [])


# --- users and groups -------------------------------------------------------------------------
def create_user(server: Server, username: str, password: str, roles: Iterable[str] = ()) -> None:
    """Creates a user with these roles; a user that exists already gets the roles added."""
    roles = list(roles)
    body = {"username": username, "password": password, "roles": roles}
    answer = _ask(server, "POST", "/rest/latest/users", json=body)
    if answer.code == ALREADY_EXISTS:
        for role in roles:
            _call(
                server,
                f"give {username} the role {role}",
                "PUT",
                f"/rest/latest/users/{username}/roles/{role}",
            )
    elif not answer.ok:
        raise _refused(server, f"create the user {username}", answer)


def delete_user(server: Server, username: str) -> None:
    """Deletes a user; one that is not there counts as deleted (Alien4Cloud answers 200)."""
    _call(server, f"delete the user {username}", "DELETE", f"/rest/latest/users/{username}")


def users(server: Server) -> tuple[User, ...]:
    """Every user with its roles and the names of its groups (never its password hash)."""
    names = _group_names(server)
    rows = _search(server, "list users", "/rest/latest/users/search")
    return tuple(
        sorted(
            User(
                username=row["username"],
                roles=tuple(sorted(row.get("roles") or ())),
                groups=tuple(sorted(names.get(g, g) for g in row.get("groups") or ())),
            )
            for row in rows
        )
    )


def create_group(
    server: Server, name: str, users: Iterable[str] = (), roles: Iterable[str] = ()
) -> str:
    """Creates a group with these members and roles, or adds them to the group of that name.

    Returns the group's id (Alien4Cloud makes it up; names are what people see).
    """
    users, roles = list(users), list(roles)
    existing = group_id(server, name)
    if existing is None:
        body = {"name": name, "users": users, "roles": roles}
        return str(
            _call(server, f"create the group {name}", "POST", "/rest/latest/groups", json=body)
        )
    for username in users:
        _call(
            server,
            f"add {username} to the group {name}",
            "PUT",
            f"/rest/latest/groups/{existing}/users/{username}",
        )
    for role in roles:
        _call(
            server,
            f"give the group {name} the role {role}",
            "PUT",
            f"/rest/latest/groups/{existing}/roles/{role}",
        )
    return existing


def group_id(server: Server, name: str) -> str | None:
    for identifier, group_name in _group_names(server).items():
        if group_name == name:
            return identifier
    return None


def _group_names(server: Server) -> dict[str, str]:
    rows = _search(server, "list groups", "/rest/latest/groups/search")
    return {str(row["id"]): str(row["name"]) for row in rows}


def delete_group(server: Server, name: str) -> None:
    """Deletes the group of that name, if there is one."""
    identifier = group_id(server, name)
    if identifier is not None:
        _call(server, f"delete the group {name}", "DELETE", f"/rest/latest/groups/{identifier}")


def groups(server: Server) -> tuple[Group, ...]:
    """Every group (ALL_USERS included) with its members and roles."""
    rows = _search(server, "list groups", "/rest/latest/groups/search")
    return tuple(
        sorted(
            Group(
                name=str(row["name"]),
                users=tuple(sorted(row.get("users") or ())),
                roles=tuple(sorted(row.get("roles") or ())),
            )
            for row in rows
        )
    )


# --- CSARs ------------------------------------------------------------------------------------
def build_csar(name: str, version: str = "1.0.0", *, node_type: str = "") -> bytes:
    """A minimal CSAR: one TOSCA file that defines tosca.nodes.Root and one type derived from it.

    Alien4Cloud clones the normative types from GitHub at first start, so offline they are
    absent; 3.7.0 accepts several archives that each define tosca.nodes.Root.
    """
    node_type = node_type or f"a4c.demo.{name.replace('-', '_')}.Node"
    definitions = (
        "tosca_definitions_version: alien_dsl_2_0_0\n"
        "metadata:\n"
        f"  template_name: {name}\n"
        f"  template_version: {version}\n"
        "  template_author: a4c-backup\n"
        f"description: {name} {version}, made by a4c-backup.\n"
        "node_types:\n"
        f"  {ROOT_TYPE}:\n"
        "    description: The root of the node types (the normative ones are absent offline).\n"
        f"  {node_type}:\n"
        f"    derived_from: {ROOT_TYPE}\n"
        f"    description: A node type of {name} {version}.\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.yml", definitions)
    return buffer.getvalue()


def upload_csar(server: Server, csar: bytes | str | Path, filename: str = "") -> CsarInfo:
    """Uploads a CSAR (its bytes or its path); what Alien4Cloud made of it.

    The same archive uploaded again is accepted (Alien4Cloud only notes it is indexed
    already); one that does not parse, or another content under the same name and version,
    raises ContentError with Alien4Cloud's parsing errors in its detail.
    """
    if isinstance(csar, (str, Path)):
        filename = filename or Path(csar).name
        csar = Path(csar).read_bytes()
    answer = _ask(
        server,
        "POST",
        "/rest/latest/csars",
        files={"file": (filename or "archive.csar", csar, "application/zip")},
    )
    data = answer.data if isinstance(answer.data, dict) else {}
    # Parsing problems come back as HTTP 200 with errors per file; INFO ones are harmless.
    problems = [
        problem
        for per_file in (data.get("errors") or {}).values()
        for problem in per_file
        if problem.get("errorLevel") != "INFO"
    ]
    if not answer.ok or problems:
        raise _refused(server, f"take the CSAR {filename or '(bytes)'}", answer)
    return _csar_info(data.get("csar") or {})


def _csar_info(row: dict) -> CsarInfo:
    return CsarInfo(
        name=str(row.get("name") or ""),
        version=str(row.get("version") or ""),
        hash=str(row.get("hash") or ""),
    )


def delete_csar(server: Server, name: str, version: str) -> None:
    """Deletes an archive; ContentError when it is not there (404) or still used."""
    _call(
        server,
        f"delete the CSAR {name}:{version}",
        "DELETE",
        f"/rest/latest/csars/{name}:{version}",
    )


def csars(server: Server) -> tuple[CsarInfo, ...]:
    """The archives of the global workspace (an application's own topology archive is not)."""
    rows = _search(server, "list CSARs", "/rest/latest/csars/search")
    return tuple(sorted(_csar_info(row) for row in rows))


# --- applications -----------------------------------------------------------------------------
def application_id(name: str) -> str:
    """The id (archive name) create_application gives an application of that name."""
    return "".join(ch for ch in name if ch.isalnum())


def create_application(server: Server, name: str) -> str:
    """Creates an application, with its initial version and environment; its id.

    An application of that id that exists already counts as created (3.7.0 answers that
    with HTTP 201 and error 615).
    """
    identifier = application_id(name)
    body = {"name": name, "archiveName": identifier}
    answer = _ask(server, "POST", "/rest/latest/applications", json=body)
    if answer.code == APPLICATION_ALREADY_EXISTS and application(server, identifier):
        return identifier
    if not answer.ok:
        raise _refused(server, f"create the application {name}", answer)
    return str(answer.data)


def application(server: Server, identifier: str) -> Application | None:
    """The application of that id, None when there is none."""
    answer = _ask(server, "GET", f"/rest/latest/applications/{identifier}")
    if answer.code == NOT_FOUND or (answer.ok and not answer.data):
        return None
    data = _checked(server, f"read the application {identifier}", answer)
    return Application(id=str(data["id"]), name=str(data.get("name") or ""))


def _checked(server: Server, what: str, answer: _Answer):
    if not answer.ok:
        raise _refused(server, what, answer)
    return answer.data


def delete_application(server: Server, identifier: str) -> None:
    """Deletes an application; ContentError when it is not there (404)."""
    _call(
        server,
        f"delete the application {identifier}",
        "DELETE",
        f"/rest/latest/applications/{identifier}",
    )


def applications(server: Server) -> tuple[Application, ...]:
    rows = _search(server, "list applications", "/rest/latest/applications/search")
    return tuple(
        sorted(Application(id=str(row["id"]), name=str(row.get("name") or "")) for row in rows)
    )


# --- the whole picture ------------------------------------------------------------------------
def snapshot_state(server: Server) -> State:
    """Users with roles and groups, groups with members, CSARs with hashes, applications."""
    return State(
        users=users(server),
        groups=groups(server),
        csars=csars(server),
        applications=applications(server),
    )


# --- the demo ---------------------------------------------------------------------------------
DEMO_USERS = {
    "ada": ("APPLICATIONS_MANAGER",),
    "grace": ("COMPONENTS_MANAGER", "ARCHITECT"),
    "linus": ("COMPONENTS_BROWSER",),
    "margaret": ("ADMIN",),
}
DEMO_GROUPS = {
    "developers": ("ada", "linus"),
    "operators": ("grace", "margaret"),
}
DEMO_CSARS = (
    ("demo-web-server", "1.0.0"),
    ("demo-web-server", "1.1.0"),
    ("demo-database", "1.0.0"),
    ("demo-message-queue", "2.0.0"),
)
DEMO_APPLICATIONS = ("Shop Front", "Billing")


def fill_demo(server: Server, say: Callable[[str], None] = lambda _: None) -> State:
    """Fills an Alien4Cloud with the demo content; a second run changes nothing.

    Users sign in with the password ``demo-<name>``. Returns the state afterwards.
    """
    for username, roles in DEMO_USERS.items():
        create_user(server, username, f"demo-{username}", roles)
        say(f"user {username} ({', '.join(roles)})")
    for name, members in DEMO_GROUPS.items():
        create_group(server, name, members)
        say(f"group {name} ({', '.join(members)})")
    for name, version in DEMO_CSARS:
        upload_csar(server, build_csar(name, version), f"{name}-{version}.csar")
        say(f"CSAR {name}:{version}")
    for name in DEMO_APPLICATIONS:
        say(f"application {create_application(server, name)} ({name})")
    return snapshot_state(server)
