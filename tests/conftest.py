"""Shared fixtures: the real Elasticsearch and Redis started by scripts/services.sh.

A missing service fails the run with what to do; nothing is skipped. Each test that touches
Elasticsearch gets its own index prefix, snapshot repository, data dir and backup storage, so
tests never see each other's data, nor the demo data of a developer's console.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from browsing import CHROMIUM, CHROMIUM_ARGS, SHOTS
from django.conf import settings as django_settings
from fault_support import es_state, wait_for
from offsite_support import offsite_settings, s3_answers, start_s3
from people import member

from backups import objectstore, operations
from backups.audit import Actor
from backups.elastic import client as elastic
from backups.models import Backup, Job, Source

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def pytest_configure(config):
    ARTIFACTS.mkdir(exist_ok=True)


def pytest_sessionfinish(session, exitstatus):
    """Django removes the test database file, but not SQLite's -wal and -shm beside it."""
    name = django_settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if name and not Path(name).exists():
        for leftover in (f"{name}-wal", f"{name}-shm"):
            Path(leftover).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def es_cluster() -> elastic.Cluster:
    cluster = elastic.cluster()
    try:
        cluster.info()
    except Exception as exc:  # noqa: BLE001 - any failure here means the service is not there
        pytest.fail(
            f"Elasticsearch is not reachable at {django_settings.A4C_ES_URLS}: {exc}. "
            "Start it with `bash scripts/services.sh start es` (README's test command does).",
            pytrace=False,
        )
    return cluster


@pytest.fixture(scope="session")
def es_path_repo(es_cluster) -> Path:
    roots = {p for paths in es_cluster.path_repo().values() for p in paths}
    assert roots, "the Elasticsearch node has no path.repo; scripts/services.sh sets it"
    return Path(sorted(roots)[0])


@pytest.fixture(scope="session")
def s3_server() -> str:
    """The real S3 server (S3Proxy), started by scripts/services.sh when it is not up."""
    if not s3_answers():
        output = start_s3()
        if not s3_answers():
            pytest.fail(
                "S3Proxy did not start; `bash scripts/services.sh start s3` said:\n" + output,
                pytrace=False,
            )
    return "s3"


@pytest.fixture
def offsite(s3_server, settings) -> objectstore.Bucket:
    """A bucket of the test's own on the real S3Proxy, named by the settings, removed after."""
    name = f"a4c-test-{secrets.token_hex(6)}"
    for key, value in offsite_settings(name).items():
        setattr(settings, key, value)
    bucket = objectstore.configured()
    bucket.create_bucket()
    yield bucket
    bucket.remove_bucket()


@pytest.fixture
def a4c(settings, tmp_path, es_cluster, es_path_repo):
    """An isolated A4C installation: index prefix, data dir, backup storage, snapshot repository."""
    tag = "t" + secrets.token_hex(4)
    data_dir = tmp_path / "a4c-data"
    data_dir.mkdir()
    settings.A4C_DATA_DIR = data_dir
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    settings.A4C_ES_REPOSITORY = f"a4c-test-{tag}"
    settings.A4C_ES_REPOSITORY_PATH = str(es_path_repo / f"test-{tag}")
    settings.A4C_INDEX_INCLUDE = [f"{tag}-*"]
    settings.A4C_POLL_SECONDS = 0.1
    env = A4CInstall(tag=tag, prefix=f"{tag}-", data_dir=data_dir, cluster=es_cluster)
    yield env
    es_cluster.client.indices.delete(
        index=f"{tag}-*", expand_wildcards="all", ignore_unavailable=True
    )
    for snap in es_cluster.snapshots(settings.A4C_ES_REPOSITORY):
        es_cluster.delete_snapshot(settings.A4C_ES_REPOSITORY, snap.name)
    try:
        es_cluster.delete_repository(settings.A4C_ES_REPOSITORY)
    except Exception:  # noqa: BLE001 - the test may never have registered it
        pass
    shutil.rmtree(es_path_repo / f"test-{tag}", ignore_errors=True)


@pytest.fixture
def small_a4c(a4c):
    """A small A4C: two indices (one with an alias and two shards) and two files; quick to
    back up, enough to compare documents, mappings, aliases and files after a restore."""
    client = a4c.cluster.client
    client.indices.create(
        index=a4c.index("application"),
        settings={"number_of_replicas": 0, "number_of_shards": 2},
        mappings={"properties": {"name": {"type": "keyword"}, "size": {"type": "long"}}},
        aliases={a4c.index("apps"): {}},
    )
    client.indices.create(index=a4c.index("user"), settings={"number_of_replicas": 0})
    for n in range(40):
        client.index(index=a4c.index("application"), id=f"app-{n}", document={"name": f"a{n}"})
    client.index(index=a4c.index("user"), id="admin", document={"username": "admin"})
    client.indices.refresh(index=f"{a4c.prefix}*")
    (a4c.data_dir / "csar" / "app").mkdir(parents=True)
    (a4c.data_dir / "csar" / "app" / "topology.yml").write_text("tosca: 1\n")
    (a4c.data_dir / "images").mkdir()
    (a4c.data_dir / "images" / "logo.png").write_bytes(os.urandom(5000))
    return a4c


class A4CInstall:
    def __init__(self, tag, prefix, data_dir, cluster):
        self.tag = tag
        self.prefix = prefix
        self.data_dir = data_dir
        self.cluster = cluster

    def index(self, name: str) -> str:
        return self.prefix + name

    def documents(self, name: str) -> dict[str, dict]:
        """Every document of an index by id, read back from Elasticsearch."""
        client = self.cluster.client
        index = self.index(name)
        client.indices.refresh(index=index)
        hits = client.search(index=index, size=10000, query={"match_all": {}})["hits"]["hits"]
        return {h["_id"]: h["_source"] for h in hits}

    def state(self) -> dict:
        """Everything about the prefix's indices that a restore must bring back."""
        return es_state(self.cluster, self.prefix)


A4C_ADMIN = ("backup-admin", "pw-backup-admin")


@pytest.fixture
def a4c_standin(a4c, settings):
    """The Alien4Cloud REST stand-in, its maintenance state in the test's own index, and the
    settings that point the tool at it (A4C_MAINTENANCE=auto). Users: backup-admin (ADMIN, the
    tool's), alice (ADMIN, someone else) and bob (no ADMIN role)."""
    from alien4cloud_standin import StandIn

    standin = StandIn(
        a4c.cluster.client,
        a4c.index("maintenancemodestate"),
        users={
            A4C_ADMIN[0]: (A4C_ADMIN[1], ["ADMIN"]),
            "alice": ("pw-alice", ["ADMIN"]),
            "bob": ("pw-bob", ["COMPONENTS_BROWSER"]),
        },
        audit_index=a4c.index("audittrace"),
    ).start()
    settings.A4C_SERVER_URL = standin.url
    settings.A4C_SERVER_USERNAME, settings.A4C_SERVER_PASSWORD = A4C_ADMIN
    settings.A4C_SERVER_PASSWORD_FILE = ""
    settings.A4C_MAINTENANCE = "auto"
    settings.A4C_MAINTENANCE_UPDATE_SECONDS = 0.2
    settings.A4C_SERVER_TIMEOUT = 30.0  # a loaded CI machine is slow, never this slow
    yield standin
    standin.stop()


@pytest.fixture
def installed(a4c):
    """The isolated installation filled with the small demo: ~30 indices and a data dir."""
    from backups.demo import generator as demo

    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    return a4c


# --- people of the console's roles, signed in on the test's client -------------------------


def signed_in(client, name: str, role: str):
    user = member(name, role)
    client.force_login(user)
    return user


@pytest.fixture
def vic(client):
    """vic, of the viewers, signed in on the test's client."""
    return signed_in(client, "vic", "viewers")


@pytest.fixture
def otto(client):
    """otto, of the operators, signed in on the test's client."""
    return signed_in(client, "otto", "operators")


@pytest.fixture
def rita(client):
    """rita, of the restorers, signed in on the test's client."""
    return signed_in(client, "rita", "restorers")


# --- data and backups ----------------------------------------------------------------------


@pytest.fixture
def files(a4c):
    """A small data dir: three files, and a cache (work/) that backups leave out. Enough for
    files-only backups that take a fraction of a second."""
    for rel, text in (
        ("csar/types.yml", "tosca: 1.3\n"),
        ("plugins/plugin.yml", "id: p1\n"),
        ("artifacts/install.sh", "#!/bin/sh\necho hello\n"),
        ("work/cache.bin", "cache"),
    ):
        (a4c.data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (a4c.data_dir / rel).write_text(text)
    return a4c


@pytest.fixture
def take(files, cli_actor):
    """Takes a backup of the installation now, by ``user`` on the console (else the command
    line), and asserts it succeeded: take("nightly-1", rita, include_elasticsearch=False)."""

    def take(name: str, user=None, **fields) -> Backup:
        actor = Actor(name=user.username, source=Source.WEB, user=user) if user else cli_actor
        request = operations.BackupRequest(name=name, **fields)
        backup = operations.run_backup(operations.request_backup(request, actor).pk)
        assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
        return backup

    return take


@pytest.fixture
def files_backup(take) -> Backup:
    """A succeeded files-only backup, files-1: quick, and enough for a restore plan."""
    return take("files-1", include_elasticsearch=False)


@pytest.fixture
def backup(small_a4c, cli_actor) -> Backup:
    """A succeeded backup, nightly-1, of the small installation (indices and files)."""
    request = operations.BackupRequest(name="nightly-1")
    backup = operations.run_backup(operations.request_backup(request, cli_actor).pk)
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    return backup


@pytest.fixture
def cli_actor() -> Actor:
    return Actor(name=os.environ.get("USER", "root"), source=Source.CLI)


@pytest.fixture
def web_actor(django_user_model) -> Actor:
    user = django_user_model.objects.create_user("olivia", password="pw-olivia-123")
    return Actor(name="olivia", source=Source.WEB, user=user, ip="127.0.0.1", user_agent="pytest")


@pytest.fixture
def drill_place(a4c, settings, tmp_path):
    """This test's own drill prefix and scratch root: runs from other worktrees share the
    cluster, and drill ids (database ids) repeat between test databases."""
    prefix = f".{a4c.tag}-drill-"
    settings.A4C_DRILL_INDEX_PREFIX = prefix
    settings.A4C_DRILL_DIR = str(tmp_path / "drills")
    yield Path(settings.A4C_DRILL_DIR)
    a4c.cluster.client.indices.delete(
        index=f"{prefix}*", expand_wildcards="all", ignore_unavailable=True
    )


@pytest.fixture
def queued(monkeypatch):
    """Stands in for the broker: records what would have been handed to a worker."""
    sent = []

    def taking(kind):
        def delay(pk):
            # a job's kind is its row's (run_job runs every kind of job)
            named = Job.objects.get(pk=pk).kind if kind == "job" else kind
            sent.append((named, pk))
            return SimpleNamespace(id=f"queued-{named}-{pk}")  # what Celery's AsyncResult gives

        return delay

    for kind in ("backup", "restore", "job"):
        monkeypatch.setattr(f"backups.tasks.run_{kind}.delay", taking(kind))
    return sent


# --- a real Celery worker process ---------------------------------------------------------

# Tests use their own Redis database, so a developer's running worker never takes their tasks.
TEST_BROKER = os.environ.get("A4C_TEST_BROKER_URL", "redis://127.0.0.1:6379/14")
# ...and their own queue, so that two test runs on one machine never take each other's tasks.
TEST_QUEUE = f"a4c-test-{os.getpid()}"


def _use_test_broker(app) -> None:
    """Points the app, and any pool it built before, at the test broker."""
    # Celery reads these two variables before its own configuration (scripts/lib.sh exports
    # the first for the services), so they must name the test broker too.
    os.environ["CELERY_BROKER_URL"] = os.environ["CELERY_RESULT_BACKEND"] = TEST_BROKER
    app.conf.broker_url = TEST_BROKER
    app.conf.result_backend = TEST_BROKER
    app.conf.task_default_queue = TEST_QUEUE
    if app._pool is not None:  # built before: it may hold connections to another database
        app._pool = None
        app.amqp._producer_pool = None


@pytest.fixture(scope="session", autouse=True)
def celery_app():
    """Points the app at the test broker before any test can make it connect elsewhere."""
    from a4c_backup.celery import app

    _use_test_broker(app)
    from kombu import Connection

    with app.connection_for_write() as used, Connection(TEST_BROKER) as wanted:
        assert used.as_uri() == wanted.as_uri(), "tasks would go where no test worker listens"
    return app


@pytest.fixture
def start_worker(celery_app, tmp_path):
    """Starts `celery -A a4c_backup worker` as a real process with the test's settings."""
    import socket
    import subprocess
    import sys

    from django.db import connection
    from fault_support import database_url

    started = []

    def start(beat: bool = False, **extra_env) -> subprocess.Popen:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": database_url(connection),
                "CELERY_BROKER_URL": TEST_BROKER,
                "CELERY_RESULT_BACKEND": TEST_BROKER,
                "A4C_HEARTBEAT_SECONDS": "0.5",
                "A4C_POLL_SECONDS": "0.1",
                "PYTHONUNBUFFERED": "1",
                "CELERY_TASK_DEFAULT_QUEUE": TEST_QUEUE,
            }
        )
        env.update({k: str(v) for k, v in extra_env.items()})
        name = f"{TEST_QUEUE}-{len(started)}@{socket.gethostname()}"
        log = open(tmp_path / f"worker-{len(started)}.log", "wb")  # noqa: SIM115 - closed at teardown
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "a4c_backup",
                "worker",
                "--loglevel=INFO",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                TEST_QUEUE,
                "-n",
                name,
            ]
            + (["-B", "--schedule", str(tmp_path / f"beat-{len(started)}")] if beat else []),
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a test can kill pool and all
        )
        started.append((proc, log))
        index = len(started) - 1

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(
                    f"the Celery worker exited with {proc.returncode}:\n{worker_log(index)}"
                )
            # The worker's own word that it consumes: unlike a broadcast ping, it cannot be
            # missed when a loaded machine answers slower than the ping waits.
            # The whole log: the tasks that follow (a sync at start, stale messages) push
            # that line out of any tail.
            log = (tmp_path / f"worker-{index}.log").read_text(errors="replace")
            return f"{name} ready." in log

        wait_for(
            ready, 60, what=lambda: f"the Celery worker ready:\n{worker_log(index)}", every=0.2
        )
        return proc

    def worker_log(index: int) -> str:
        return (tmp_path / f"worker-{index}.log").read_text(errors="replace")[-3000:]

    def kill(proc) -> None:
        """SIGKILL to the worker and its pool children, as a lost machine would."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    start.log = worker_log
    start.kill = kill
    yield start
    for proc, log in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except Exception:  # noqa: BLE001
                proc.kill()
        log.close()


@pytest.fixture
def worker_env(a4c, settings) -> dict:
    """The environment that makes a worker process see the test's isolated installation."""
    return {
        "A4C_DATA_DIR": settings.A4C_DATA_DIR,
        "A4C_BACKUP_DIR": settings.A4C_BACKUP_DIR,
        "A4C_ES_REPOSITORY": settings.A4C_ES_REPOSITORY,
        "A4C_ES_REPOSITORY_PATH": settings.A4C_ES_REPOSITORY_PATH,
        "A4C_INDEX_INCLUDE": ",".join(settings.A4C_INDEX_INCLUDE),
    }


class PausePoints:
    """A test's hold on runs in the middle of copying files (backups/operations/pause_points.py):
    arm a point, wait for the run to stop there, let it go on."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.env = {"A4C_TEST_PAUSE_DIR": str(folder)}  # for a worker process

    def arm(self, point: str, *marks: float) -> None:
        """Stops the next run at ``point`` at each fraction of its files (none: at its first
        bytes); its stops are counted from one."""
        for count in (f"{point}.reached", f"{point}.go"):
            (self.folder / count).unlink(missing_ok=True)
        (self.folder / point).write_text(" ".join(str(m) for m in marks))

    def reached(self, point: str, stops: int = 1, timeout: float = 120.0) -> None:
        """Waits until the run has stopped there ``stops`` times (and is held)."""

        def count() -> int:
            try:
                return int((self.folder / f"{point}.reached").read_text() or 0)
            except FileNotFoundError:
                return 0

        wait_for(lambda: count() >= stops, timeout, f"the run stopping at {point} #{stops}")

    def go(self, point: str, stops: int = 1) -> None:
        """Lets the run go on from its ``stops``-th stop."""
        (self.folder / f"{point}.go").write_text(str(stops))

    def disarm(self, point: str) -> None:
        """Lets the run go on to its end, stopping no more."""
        (self.folder / point).unlink(missing_ok=True)


@pytest.fixture
def pause_points(settings, tmp_path) -> PausePoints:
    folder = tmp_path / "pause-points"
    folder.mkdir()
    settings.A4C_TEST_PAUSE_DIR = str(folder)
    return PausePoints(folder)


@pytest.fixture
def browser():
    """Chromium (tests/browsing.py has the helpers); every page opened is closed before the test
    database goes away, so that no polling request reaches the live server after the test."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium).",
            pytrace=False,
        )
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        for context in chromium.contexts:
            for page in context.pages:
                page.goto("about:blank")  # stops the polling timers
        chromium.close()  # and its connections: no request can start after this
        # the live server finishes the requests already under way, each on its own thread
        wait_for(
            lambda: not any("process_request_thread" in t.name for t in threading.enumerate()),
            30,
            what="the live server's requests ending",
        )
