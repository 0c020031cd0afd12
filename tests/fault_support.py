"""What the fault-injection tests (tests/test_faults_*.py) share.

A full picture of a data dir (bytes, modes, mtimes, links), waiting for a row to reach a
state, and a second, throwaway Elasticsearch node that a test may kill: the shared one at
9200 is never stopped, since other people's tests use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import ssl
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
CACHES = ("work", "tmp", "upload")


def tree(root: Path) -> dict[str, tuple]:
    """Every entry of a data dir but the caches: type, mode, mtime, size and hash, or target."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0] in CACHES:
            continue
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel in CACHES:
                continue
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir", mode)
            else:
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                result[rel] = ("file", mode, st.st_size, digest, st.st_mtime_ns)
    return result


def eventually(predicate, timeout: float = 60.0, every: float = 0.05):
    """The predicate's first true value, asked every ``every`` s; None after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


def wait_for(predicate, timeout: float = 60.0, what="the condition", every: float = 0.05):
    """The predicate's first true value, asked every ``every`` s; fails the test after
    ``timeout`` s naming ``what`` (a text, or a function giving one then: a log's tail)."""
    value = eventually(predicate, timeout, every)
    if not value:
        pytest.fail(f"{what() if callable(what) else what} did not happen within {timeout} s")
    return value


def port_free(port: int) -> bool:
    """Nothing holds this loopback port: it can be bound."""
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def nothing_running() -> bool:
    """No run is active and the operation lock is free."""
    from backups.models import Backup, RestoreRun
    from backups.operations import locking

    return (
        locking.lock_holder() is None
        and not Backup.objects.filter(status__in=Backup.ACTIVE).exists()
        and not RestoreRun.objects.filter(status__in=RestoreRun.ACTIVE).exists()
    )


def leftovers(data_dir: Path) -> list[str]:
    """Staging or kept trees a restore left beside (or inside) the data dir."""
    parent = data_dir.parent
    found = [p.name for p in parent.iterdir() if p.name.startswith(f".{data_dir.name}.")]
    if data_dir.is_dir():
        found += [p.name for p in data_dir.iterdir() if p.name.startswith(".a4c-")]
    return sorted(found)


# --- a second Elasticsearch node, ours to kill ---------------------------------------------

ES_VERSION = os.environ.get("A4C_ES_VERSION", "8.19.8")
ES_HOME = (
    Path(os.environ.get("A4C_CACHE_DIR", Path.home() / ".cache" / "a4c-backup"))
    / f"elasticsearch-{ES_VERSION}"
)
ES_USER = "a4c-es" if os.geteuid() == 0 else None
JAVA_HOME = os.environ.get("A4C_ES_JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")
HTTP_PORT = int(os.environ.get("A4C_FAULTS_ES_PORT", "9250"))
TRANSPORT_PORT = int(os.environ.get("A4C_FAULTS_ES_TRANSPORT_PORT", "9350"))


class ThrowawayElasticsearch:
    """One single-node cluster on HTTP_PORT, with its own config, data, logs and path.repo.

    ``security`` (elasticsearch.yml lines) turns security on instead of off; with
    ``xpack.security.http.ssl.enabled: true`` in it, the node speaks https.
    """

    def __init__(
        self,
        root: Path,
        http_port: int = HTTP_PORT,
        transport_port: int = TRANSPORT_PORT,
        security: str = "",
        name: str = "es-faults",
        discovery: str = "discovery.type: single-node",
        path_repo: list[Path] | None = None,
    ):
        self.root, self.name, self.discovery = root, name, discovery
        self.http_port, self.transport_port, self.security = http_port, transport_port, security
        scheme = "https" if "http.ssl.enabled: true" in security else "http"
        self.url = f"{scheme}://127.0.0.1:{http_port}"
        self.config, self.data, self.logs = root / "config", root / "data", root / "logs"
        self.path_repo = root / "repo"
        self.path_repos = path_repo or [self.path_repo]
        self.pid_file = root / "elasticsearch.pid"

    def _prepare(self) -> None:
        for path in (self.config, self.data, self.logs, *self.path_repos):
            path.mkdir(parents=True, exist_ok=True)
        for entry in (ES_HOME / "config").iterdir():
            # What is there already stays: elasticsearch-users writes its users into config/.
            if entry.name != "elasticsearch.yml" and not (self.config / entry.name).exists():
                target = self.config / entry.name
                if entry.is_dir():
                    shutil.copytree(entry, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(entry, target)
        (self.config / "elasticsearch.yml").write_text(
            "cluster.name: a4c-faults\n"
            f"node.name: {self.name}\n"
            "network.host: 127.0.0.1\n"
            f"http.port: {self.http_port}\n"
            f"transport.port: {self.transport_port}\n"
            f"{self.discovery.strip()}\n"
            f'path.data: "{self.data}"\n'
            f'path.logs: "{self.logs}"\n'
            f"path.repo: {json.dumps([str(p) for p in self.path_repos])}\n"
            + (self.security.strip() + "\n" if self.security else "xpack.security.enabled: false\n")
            + "cluster.routing.allocation.disk.threshold_enabled: false\n"
            "action.destructive_requires_name: false\n"
        )
        os.chmod(self.root, 0o755)
        if ES_USER:
            subprocess.run(["chown", "-R", f"{ES_USER}:{ES_USER}", str(self.root)], check=True)
            # root's tests write into the repository too (nothing here, but keep it open)
            for path in self.path_repos:
                os.chmod(path, 0o777)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def answers(self) -> bool:
        """Up: it answers, be it 401 to a request without credentials."""
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            with urllib.request.urlopen(
                f"{self.url}/_cluster/health?timeout=1s", timeout=3, context=context
            ) as response:
                return response.status == 200
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        except OSError:
            return False

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.root),
            "ES_PATH_CONF": str(self.config),
            "ES_JAVA_HOME": JAVA_HOME,
            "ES_JAVA_OPTS": "-Xms512m -Xmx512m",
        }

    def as_es_user(self, command: list[str]) -> list[str]:
        if not ES_USER:
            return command
        return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", ES_USER, "--", *command]

    def run_tool(self, name: str, *args: str) -> None:
        """One of the distribution's bin/ tools (elasticsearch-users...) on this node's config."""
        self._prepare()
        done = subprocess.run(
            self.as_es_user([str(ES_HOME / "bin" / name), *args]),
            env=self.env(),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            pytest.fail(f"{name} {' '.join(args)} failed: {done.stdout}{done.stderr}")

    def start(self, timeout: float = 120.0) -> None:
        if self.pid() and self.answers():
            return
        if not (ES_HOME / "bin" / "elasticsearch").exists():
            pytest.fail(
                f"Elasticsearch {ES_VERSION} is not in {ES_HOME}: run scripts/setup.sh",
                pytrace=False,
            )
        self._prepare()
        self.pid_file.unlink(missing_ok=True)
        env = self.env()
        command = self.as_es_user(
            [str(ES_HOME / "bin" / "elasticsearch"), "-d", "-p", str(self.pid_file)]
        )
        for _attempt in range(5):
            started = subprocess.run(
                command, env=env, cwd=self.root, capture_output=True, text=True, timeout=timeout
            )
            # a node killed a moment ago can hold its ports a little longer
            if started.returncode == 0 or "Address already in use" not in self.log_tail():
                break
            eventually(
                lambda: port_free(self.http_port) and port_free(self.transport_port), 30, 0.2
            )
        if started.returncode != 0:
            pytest.fail(
                f"the throwaway Elasticsearch did not start: {started.stderr[-2000:]}\n"
                + self.log_tail()
            )
        wait_for(
            self.answers,
            timeout,
            what=lambda: f"the throwaway Elasticsearch answering:\n{self.log_tail()}",
            every=0.5,
        )

    def kill(self) -> None:
        """SIGKILL, as a crashed or unplugged node: nothing is flushed."""
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            eventually(lambda: not self.pid(), 30, 0.1)

    def stop(self) -> None:
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            if not eventually(lambda: not self.pid(), 60, 0.2):
                os.kill(pid, signal.SIGKILL)

    def log_tail(self) -> str:
        log = self.logs / "a4c-faults.log"  # named after cluster.name
        return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def es_state(cluster, prefix: str) -> dict:
    """Every document, mapping, alias and shard count of the indices named prefix*."""
    client = cluster.client
    result = {}
    for index in sorted(cluster.indices(include=[prefix + "*"])):
        client.indices.refresh(index=index)
        hits = client.search(index=index, size=10000, query={"match_all": {}})["hits"]["hits"]
        result[index] = {
            "docs": {h["_id"]: h["_source"] for h in hits},
            "mappings": client.indices.get_mapping(index=index)[index]["mappings"],
            "aliases": sorted(client.indices.get_alias(index=index)[index]["aliases"]),
            "shards": client.indices.get_settings(index=index)[index]["settings"]["index"][
                "number_of_shards"
            ],
        }
    return result


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(connection) -> str:
    """The test database as DATABASE_URL, for a process started by a test (a worker, a
    command): SQLite's file, or PostgreSQL's test_<name> that pytest-django created."""
    from urllib.parse import quote

    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    if connection.vendor != "postgresql":
        raise NotImplementedError(f"no URL for a {connection.vendor} test database")
    user = quote(settings.get("USER") or "", safe="")
    password = quote(settings.get("PASSWORD") or "", safe="")
    login = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = quote(settings.get("HOST") or "", safe="")  # a socket dir is percent-encoded
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    return f"postgres://{login}{host}{port}/{quote(settings['NAME'], safe='')}"


# --- Elasticsearch servers of other versions, started by the project's own scripts ---------


class ScriptedElasticsearch:
    """One single-node server of ``version``, started and stopped by scripts/services.sh.

    Every server of a matrix shares ``var_dir`` (so one path.repo: a snapshot one version
    wrote, another can read) but gets its own ports and data (services.sh keeps each major's).
    """

    def __init__(self, version: str, port: int, transport_port: int, var_dir: Path):
        self.version, self.port = version, port
        self.url = f"http://127.0.0.1:{port}"
        self.path_repo = var_dir / "es-repo"
        self.env = {
            **os.environ,
            "A4C_ES_VERSION": version,
            "A4C_ES_PORT": str(port),
            "A4C_ES_TRANSPORT_PORT": str(transport_port),
            "A4C_VAR_DIR": str(var_dir),
            "A4C_ES_PATH_REPO": str(self.path_repo),
            "A4C_ES_JAVA_OPTS": os.environ.get("A4C_TEST_ES_JAVA_OPTS", "-Xms320m -Xmx320m"),
        }
        for inherited in ("A4C_ES_URLS", "A4C_ES_REPOSITORY_PATH", "A4C_ES_JAVA_HOME"):
            self.env.pop(inherited, None)

    def services(self, action: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["bash", str(PROJECT / "scripts" / "services.sh"), action, "es"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


def run_all(servers: list[ScriptedElasticsearch], action: str, timeout: float = 300) -> None:
    """Runs ``services.sh ACTION es`` for every server at once; fails with the script's output."""
    started = [(server, server.services(action)) for server in servers]
    failures = []
    for server, process in started:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if process.returncode != 0:
            failures.append(f"--- {action} Elasticsearch {server.version}:\n{output[-3000:]}")
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


# --- disaster recovery: what a lost host takes with it ---------------------------------------


def backed_up(actor, name: str, **kwargs):
    """A backup taken in this process, asserted to have succeeded."""
    from backups import operations
    from backups.models import Backup

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name=name, **kwargs), actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    return backup


def lose_the_console_database() -> None:
    """Every row gone, as with the host that held the database (the audit refuses deletes,
    hence raw SQL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (
            "backups_auditevent",
            "backups_restorerun",
            "backups_backup",
            "backups_policy",
            "backups_auditchainhead",
            "backups_systemstate",
        ):
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - our own table names


def lose_the_cluster_state(a4c, settings) -> None:
    """A new, empty cluster namespace: the indices and the repository registration are gone."""
    a4c.cluster.client.indices.delete(index=f"{a4c.prefix}*", expand_wildcards="all")
    a4c.cluster.delete_repository(settings.A4C_ES_REPOSITORY)
