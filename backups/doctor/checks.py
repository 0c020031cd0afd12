"""Is everything a backup needs in place? Each answer says what to do when it is not.

``run_checks()`` is asked by ``manage.py doctor`` and by the web dashboard, so it stays quick
(every network call times out within two seconds), changes nothing but registering the
snapshot repository (as any backup would), and knows nothing of requests or rendering.
Elasticsearch is reached through backups/elastic/client.py and the storage through
backups.storage.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core import checks as django_checks
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from backups import selectors
from backups.doctor.alien4cloud import alien4cloud_check
from backups.doctor.drills import NAME as DRILLS
from backups.doctor.drills import SCRATCH, drills_check, scratch_cluster_check
from backups.doctor.network import directory_check
from backups.doctor.offsite import NAME as OFFSITE
from backups.doctor.offsite import offsite_check
from backups.doctor.policies import NAME as POLICIES
from backups.doctor.policies import policies_check
from backups.doctor.result import NETWORK_TIMEOUT, Check
from backups.elastic import client as elastic
from backups.elastic.versions import SUPPORTED_TEXT
from backups.errors import BackupError, ElasticUnreachable, UnsupportedElasticsearch
from backups.formatting import time_ago
from backups.models import Backup, RestoreRun
from backups.sizes import format_size
from backups.storage import Store

LOW_FREE_BYTES = 1024**3


def _ok(name: str, summary: str) -> Check:
    return Check(name, True, summary)


def _warning(name: str, summary: str, fix: str) -> Check:
    return Check(name, False, summary, fix, "warning")


def _error(name: str, summary: str, fix: str) -> Check:
    return Check(name, False, summary, fix, "error")


def _not_checked(name: str, because: str) -> Check:
    return _warning(name, f"not checked: {because}", "Fix the check above first.")


def run_checks(*, worker_timeout: float = 1.0, lock: bool = True) -> list[Check]:
    """Every check, in the order a person would fix them. ``lock=False`` leaves out the
    operation lock, for the dashboard, whose "Running now" (refreshed every 2 s) says it."""
    result = [_guarded("Settings", _settings)]
    database = _guarded("Database", _database)
    result.append(database)
    cluster = None
    es = _guarded("Elasticsearch", _elasticsearch)
    if isinstance(es, tuple):
        es, cluster = es
    result.append(es)
    if cluster is None:
        result.append(_not_checked("path.repo", "Elasticsearch cannot be reached"))
        result.append(_not_checked("Snapshot repository", "Elasticsearch cannot be reached"))
    else:
        path_repo = _guarded("path.repo", lambda: _path_repo(cluster))
        result.append(path_repo)
        if path_repo.level == "error":
            result.append(_not_checked("Snapshot repository", "path.repo does not cover it"))
        else:
            result.append(_guarded("Snapshot repository", lambda: _repository(cluster)))
    if settings.A4C_DRILL_ES_URLS:
        result.append(_guarded(SCRATCH, scratch_cluster_check))
    result.append(_guarded("Alien4Cloud", alien4cloud_check))
    if settings.A4C_LDAP_URL:
        result.append(_guarded("Directory", directory_check))
    result.append(_guarded("Data dir", _data_dir))
    result.append(_guarded("Backup storage", _storage))
    if settings.A4C_OFFSITE_URL:
        result.append(_guarded(OFFSITE, offsite_check))
    redis = _guarded("Redis", _redis)
    result.append(redis)
    if redis.level == "error":
        result.append(_not_checked("Celery workers", "Redis cannot be reached"))
    else:
        result.append(_guarded("Celery workers", lambda: _workers(worker_timeout)))
    if database.level == "error":
        if lock:
            result.append(_not_checked("Operation lock", "the database is not ready"))
        result.append(_not_checked("Last backup", "the database is not ready"))
        result.append(_not_checked(POLICIES, "the database is not ready"))
        result.append(_not_checked(DRILLS, "the database is not ready"))
    else:
        if lock:
            result.append(_guarded("Operation lock", _lock))
        result.append(_guarded("Last backup", _last_backup))
        result.append(_guarded(POLICIES, policies_check))
        result.append(_guarded(DRILLS, drills_check))
    return result


def _guarded(name: str, check: Callable):
    """A check that breaks unexpectedly is reported as failing, never raised into a page."""
    try:
        return check()
    except BackupError as exc:
        return _error(name, exc.message, "See the message: it names the setting to fix.")
    except Exception as exc:  # noqa: BLE001 - the dashboard must render whatever happens
        return _error(
            name,
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "Run `manage.py doctor --traceback` and report the error.",
        )


# --- settings ----------------------------------------------------------------------------------


# The data dir and storage checks below say more about these than the system checks can.
_COVERED_BELOW = {"a4c.W001", "a4c.E005", "a4c.E006"}


def _settings() -> Check:
    found = [
        m
        for m in django_checks.run_checks()
        if m.level >= django_checks.WARNING
        and not m.is_silenced()
        and str(m.id).startswith("a4c.")
        and m.id not in _COVERED_BELOW
    ]
    if not found:
        legacy = Path(settings.LEGACY_CONFIG_PATH)
        source = f"reading {legacy}" if legacy.exists() else "no config.yml"
        return _ok("Settings", f"no problem found ({source})")
    errors = [m for m in found if m.level >= django_checks.ERROR]
    fix = " ".join(m.hint or "Correct the setting the message names." for m in found)
    return (_error if errors else _warning)("Settings", "; ".join(m.msg for m in found), fix)


def _database() -> Check:
    where = f"{connection.vendor} {connection.settings_dict['NAME']}"
    try:
        executor = MigrationExecutor(connection)
        missing = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        return _error(
            "Database",
            f"{where} cannot be used: {exc}",
            "Fix DATABASE_URL, or start the database server it names.",
        )
    if missing:
        return _error(
            "Database", f"{where} lacks {len(missing)} migrations", "Run `manage.py migrate`."
        )
    return _ok("Database", f"{where}, up to date")


# --- Elasticsearch -------------------------------------------------------------------------------


def _quick_cluster() -> elastic.Cluster:
    """The configured cluster with a short timeout and no retries: a check must not hang."""
    client = elastic.cluster().client.options(request_timeout=NETWORK_TIMEOUT, max_retries=0)
    return elastic.Cluster(client)


def _elasticsearch() -> tuple[Check, elastic.Cluster | None]:
    name = "Elasticsearch"
    urls = ", ".join(settings.A4C_ES_URLS)
    try:
        cluster = _quick_cluster()
        info = cluster.info()
    except ElasticUnreachable as exc:
        fix = (
            f"Start Elasticsearch, or point A4C_ES_URLS (now {urls}, from "
            f"{settings.A4C_ES_URLS_SOURCE}) at its REST port."
        )
        return _error(name, exc.message, fix), None
    except UnsupportedElasticsearch as exc:
        fix = (
            f"Point A4C_ES_URLS (now {urls}) at a cluster of a supported version "
            f"({SUPPORTED_TEXT}), or upgrade this one."
        )
        return _error(name, exc.message, fix), None
    except BackupError as exc:
        # It answers, so "start it" would be wrong advice; the message says what it refused.
        fix = f"Elasticsearch answers at {urls}: fix what the message above names, and check again."
        return _error(name, exc.message, fix), None
    summary = (
        f"{info.version} at {urls}, cluster {info.cluster_name}, status "
        f"{info.status}, {info.nodes} node{'s' if info.nodes != 1 else ''}"
    )
    expected = settings.A4C_ES_CLUSTER_NAME
    if expected and info.cluster_name != expected:
        return _error(
            name,
            f"{urls} answers as cluster {info.cluster_name}, not {expected}",
            f"Point A4C_ES_URLS at the {expected} cluster, or correct the expected name "
            f"(A4C_ES_CLUSTER_NAME, from {settings.A4C_ES_CLUSTER_NAME_SOURCE}).",
        ), cluster
    if info.status == "red":
        return _error(
            name,
            summary + ": some primary shards are missing, so a snapshot would fail",
            "Ask Elasticsearch why: GET _cluster/allocation/explain; bring the missing nodes "
            "or disk space back before backing up.",
        ), cluster
    if info.status == "yellow":
        return _warning(
            name,
            summary + ": some replica shards are not assigned",
            "Backups still work. On a single node, set index.number_of_replicas to 0 on the "
            "A4C indices; otherwise GET _cluster/allocation/explain tells why.",
        ), cluster
    return _ok(name, summary), cluster


def _inside(location: str, root: str) -> bool:
    location, root = os.path.normpath(location), os.path.normpath(root)
    return location == root or location.startswith(root.rstrip("/") + "/")


def _path_repo(cluster: elastic.Cluster) -> Check:
    location = settings.A4C_ES_REPOSITORY_PATH
    nodes = cluster.path_repo()
    missing = sorted(
        n for n, roots in nodes.items() if not any(_inside(location, r) for r in roots)
    )
    if not missing:
        return _ok("path.repo", f"{location} is under path.repo on every node ({len(nodes)})")
    listed = "; ".join(f"{n}: {', '.join(nodes[n]) or 'none'}" for n in missing)
    return _error(
        "path.repo",
        f"the snapshot repository path {location} is not under path.repo on {listed}",
        f'Add path.repo: ["{location}"] to elasticsearch.yml on {", ".join(missing)} and '
        "restart those nodes, or set A4C_ES_REPOSITORY_PATH to a path inside their path.repo.",
    )


def _repository(cluster: elastic.Cluster) -> Check:
    name, location = settings.A4C_ES_REPOSITORY, settings.A4C_ES_REPOSITORY_PATH
    try:
        cluster.ensure_repository(name, location)
        nodes = cluster.verify_repository(name)
    except BackupError as exc:
        return _error(
            "Snapshot repository",
            exc.message,
            f"Every Elasticsearch node must be able to write {location}: create it, give it to "
            "the user Elasticsearch runs as, and share it between the nodes (NFS, sshfs).",
        )
    return _ok(
        "Snapshot repository",
        f"{name} at {location}, verified by {len(nodes)} node{'s' if len(nodes) != 1 else ''}",
    )


# --- files ---------------------------------------------------------------------------------------


def _data_dir() -> Check:
    path = Path(settings.A4C_DATA_DIR)
    where = f"A4C_DATA_DIR, from {settings.A4C_DATA_DIR_SOURCE}"
    if not path.is_dir():
        return _error(
            "Data dir",
            f"{path} does not exist or is not a directory ({where})",
            "Point A4C_DATA_DIR (or alien4cloud.dir in config.yml) at the directory "
            "Alien4Cloud keeps its CSARs, artifacts and plugins in.",
        )
    if not os.access(path, os.R_OK | os.X_OK):
        return _error(
            "Data dir",
            f"{path} cannot be read by this user ({where})",
            f"Run as the user Alien4Cloud runs as, or give read access to {path}.",
        )
    with os.scandir(path) as entries:
        names = sorted(e.name for e in entries)
    if not names:
        return _warning(
            "Data dir",
            f"{path} is empty ({where})",
            "Check that it is the directory alien4cloud.dir names in A4C's own "
            "configuration; an empty backup of the wrong directory restores nothing.",
        )
    shown = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
    return _ok("Data dir", f"{path} is readable: {shown}")


def _storage() -> Check:
    root = Path(settings.A4C_BACKUP_DIR)
    where = f"A4C_BACKUP_DIR, from {settings.A4C_BACKUP_DIR_SOURCE}"
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return _error(
            "Backup storage",
            f"{root} cannot be created or written by this user ({where})",
            f"Create {root} and give it to the user the commands and the worker run as.",
        )
    free = Store(root).free_bytes()
    state = "ready" if root.exists() else f"created at the first backup (in {existing})"
    summary = f"{root} is {state}; {format_size(free)} free"
    if free < LOW_FREE_BYTES:
        return _warning(
            "Backup storage",
            summary,
            f"Free space where {root} lives, or prune old backups "
            "(`manage.py prune --keep-last 7`): a backup needs room for changed files.",
        )
    return _ok("Backup storage", summary)


# --- Redis and the workers ---------------------------------------------------------------------


def _celery_app():
    from a4c_backup.celery import app

    return app


def _broker_url() -> str:
    return _celery_app().conf.broker_url or settings.CELERY_BROKER_URL


def _shown_url(url: str) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(url)


def _redis() -> Check:
    url = _broker_url()
    shown = _shown_url(url)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return _ok("Redis", f"the broker is {shown}, not Redis: not checked")
    import redis

    client = redis.Redis.from_url(
        url, socket_timeout=NETWORK_TIMEOUT / 2, socket_connect_timeout=NETWORK_TIMEOUT / 2
    )
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
    except redis.RedisError as exc:
        return _error(
            "Redis",
            f"{shown} cannot be reached: {exc}",
            "Start Redis (`bash scripts/services.sh start redis`), or fix "
            "CELERY_BROKER_URL. Command-line backups still work without it.",
        )
    finally:
        client.close()
    return _ok("Redis", f"{version} at {shown}")


def _waiting() -> int:
    """Operations queued for a worker; 0 when the database cannot say."""
    try:
        return (
            Backup.objects.filter(status=Backup.Status.PENDING).count()
            + RestoreRun.objects.filter(status=RestoreRun.Status.PENDING).count()
        )
    except DatabaseError:
        return 0


def _workers(timeout: float) -> Check:
    app = _celery_app()
    replies = app.control.ping(timeout=timeout)
    names = sorted(name for reply in replies for name in reply)
    queue = app.conf.task_default_queue
    waiting = _waiting()
    if names:
        consumed = app.control.inspect(destination=names, timeout=timeout).active_queues() or {}
        serving = sorted(
            n for n, queues in consumed.items() if any(q["name"] == queue for q in queues)
        )
        if serving:
            return _ok(
                "Celery workers",
                f"{len(serving)} answering on queue {queue}: " + ", ".join(serving),
            )
        summary = f"{', '.join(names)} answered, but none takes tasks from queue {queue}"
    else:
        summary = f"no Celery worker answered within {timeout:g} s"
    fix = (
        "Start one: `bash scripts/services.sh start worker` (or celery -A a4c_backup worker "
        f"-Q {queue}). Command-line backups run without it."
    )
    if waiting:
        return _error(
            "Celery workers", f"{summary}; {waiting} queued operation(s) wait for one", fix
        )
    return _warning(
        "Celery workers",
        f"{summary}: backups asked from the web console or a schedule would wait",
        fix,
    )


# --- the lock and the history ------------------------------------------------------------------


def _lock() -> Check:
    holder = selectors.running_operation()
    if holder is None:
        return _ok("Operation lock", "free: no backup, restore or delete is running")
    since = timezone.localtime(holder.since).strftime("%Y-%m-%d %H:%M:%S") if holder.since else "?"
    summary = f"held by {holder.kind} {holder.label}, started by {holder.actor} at {since}"
    run = holder.run
    stale_after = float(settings.A4C_STALE_AFTER_SECONDS)
    if run is not None and run.status in type(run).ACTIVE:
        beat = run.heartbeat_at
        if run.status == "pending" or (
            beat and (timezone.now() - beat).total_seconds() <= stale_after
        ):
            return _ok("Operation lock", f"{summary} ({run.status}, {run.phase or 'starting'})")
    return _warning(
        "Operation lock",
        summary + ": its process seems gone",
        "The recovery releases it: a running worker does every 20 s, and the next backup or "
        "restore does before it claims the lock.",
    )


def _last_backup() -> Check:
    last = selectors.last_good_backup()
    if last.backup is None:
        return _warning(
            "Last backup",
            "no backup has succeeded yet",
            "Take one now (`manage.py backup`) and schedule one every night.",
        )
    summary = f"{last.backup.name}, {time_ago(last.age)}"
    if last.too_old:
        return _warning(
            "Last backup",
            f"{summary}: older than {last.max_age_hours:g} h",
            "Check the schedule (cron or Celery beat) and why the last runs failed.",
        )
    return _ok("Last backup", summary)
