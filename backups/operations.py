"""The work itself: backup, restore, rollback, verify, delete, cancel, recover.

Plain functions: ids and plain arguments in, an optional progress callback, no request and no
Celery. The web console (views.py), the worker (tasks.py) and the command line
(management/commands) are three doors into these same rooms. Elasticsearch is reached only
through backups/elastic.py and the backup storage only through backups/filestore.py; the rows
in backups/models.py are the truth about every operation.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import re
import shlex
import subprocess
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError as DbIntegrityError
from django.db import transaction
from django.utils import timezone

from . import audit, elastic, running
from .audit import Actor
from .errors import BackupError, Busy, Cancelled, ElasticError, InvalidInput, NotFound
from .filestore import Store
from .models import AuditEvent, Backup, OperationLock, RestoreRun

log = logging.getLogger(__name__)
Outcome = AuditEvent.Outcome
ProgressCallback = Callable[[object], None] | None

# --- names ---------------------------------------------------------------------------------

NAME_MAX = 200
_FORBIDDEN = set(' \\/*?"<>|,#:')
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._+\-]*$")


def validate_backup_name(name: str) -> str:
    """Elasticsearch's snapshot naming rules, and safe as a file name; returns the name."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("A backup name is required.")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"The backup name is {len(name)} characters long; the limit is {NAME_MAX}.")
    if "\0" in name or any(ord(c) < 32 for c in name):
        raise InvalidInput("The backup name contains a control character; use letters, digits and - _ .")
    bad = sorted({c for c in name if c in _FORBIDDEN})
    if bad:
        shown = " ".join("space" if c == " " else c for c in bad)
        raise InvalidInput(f"The backup name may not contain {shown}; use letters, digits and - _ .")
    if name != name.lower():
        raise InvalidInput(f"Backup names are lowercase (Elasticsearch requires it): try {name.lower()!r}.")
    if name[0] in "_-.+":
        raise InvalidInput("A backup name may not start with _ - . or +.")
    if name in (".", "..") or not _NAME_RE.match(name):
        raise InvalidInput(
            "A backup name uses lowercase ASCII letters, digits and - _ . + only, "
            f"and starts with a letter or digit; {name!r} does not."
        )
    return name


def default_backup_name(prefix: str = "backup", now=None) -> str:
    now = timezone.localtime(now or timezone.now())
    base = f"{prefix}-{now:%Y%m%d-%H%M%S}"
    name, n = base, 1
    while Backup.objects.filter(name=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


# --- small helpers -------------------------------------------------------------------------


def store() -> Store:
    return Store(Path(settings.A4C_BACKUP_DIR))


def _data_dir() -> Path:
    return Path(settings.A4C_DATA_DIR)


def _short_trace() -> str:
    return "".join(traceback.format_exc(limit=8))[-6000:]


def _get_backup(backup_id: int | str) -> Backup:
    try:
        if isinstance(backup_id, str) and not backup_id.isdigit():
            return Backup.objects.get(name=backup_id)
        return Backup.objects.get(pk=int(backup_id))
    except (Backup.DoesNotExist, ValueError):
        raise NotFound(f"No backup {backup_id!r}: list them with `manage.py backups` or on the Backups page.") from None


def get_backup(backup_id: int | str) -> Backup:
    """A backup by id or name, or NotFound with what to do."""
    return _get_backup(backup_id)


def _get_restore(restore_id: int) -> RestoreRun:
    try:
        return RestoreRun.objects.select_related("backup", "safety_backup").get(pk=restore_id)
    except RestoreRun.DoesNotExist:
        raise NotFound(f"No restore run #{restore_id}.") from None


def _a4c_indices(cluster: elastic.Cluster, patterns: Iterable[str] | None = None) -> dict[str, dict]:
    include = list(patterns or settings.A4C_INDEX_INCLUDE)
    return cluster.indices(include=include, exclude=settings.A4C_INDEX_EXCLUDE)


def _run_hook(command: str, what: str) -> None:
    if not command:
        return
    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=settings.A4C_HOOK_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"The {what} command {command!r} could not run: {exc}.") from exc
    if done.returncode != 0:
        raise BackupError(
            f"The {what} command {command!r} exited with {done.returncode}: "
            f"{(done.stderr or done.stdout).strip()[-300:]}"
        )


# --- the lock ------------------------------------------------------------------------------


def lock_holder() -> OperationLock | None:
    return running.lock_holder()


def _claim(kind: str, run, label: str, actor: Actor, wait: float) -> None:
    running.acquire(kind, run.pk, label, actor.name, wait=wait, recover=recover_stale_runs)


# --- backup --------------------------------------------------------------------------------


def request_backup(
    actor: Actor,
    *,
    name: str | None = None,
    description: str = "",
    include_elasticsearch: bool = True,
    include_files: bool = True,
    indices: Iterable[str] = (),
    trigger: str | None = None,
    wait: float = 0.0,
) -> Backup:
    """Validates, creates the pending row and takes the lock for it; the work is run_backup."""
    if not include_elasticsearch and not include_files:
        raise InvalidInput("Choose what to back up: Elasticsearch, files, or both.")
    name = validate_backup_name(name) if name else default_backup_name()
    patterns = [p.strip() for p in indices if p and p.strip()]
    for pattern in patterns:
        if pattern.startswith((".", "-", "_")) or any(c in pattern for c in ' \\/"<>|,#'):
            raise InvalidInput(f"{pattern!r} is not an index name or pattern A4C uses.")
    if patterns and not include_elasticsearch:
        raise InvalidInput("Indices were chosen but Elasticsearch is left out of the backup.")
    trigger = trigger or {"web": "web", "cli": "cli", "schedule": "schedule"}.get(actor.source, "web")
    try:
        with transaction.atomic():
            backup = Backup.objects.create(
                name=name,
                description=description,
                trigger=trigger,
                include_elasticsearch=include_elasticsearch,
                include_files=include_files,
                index_patterns=patterns,
                requested_by=actor.user,
                actor=actor.name,
                source=actor.source,
                heartbeat_at=timezone.now(),
            )
            _claim("backup", backup, name, actor, 0)
    except DbIntegrityError:
        raise InvalidInput(f"A backup named {name!r} exists already; choose another name.") from None
    except Busy as busy:
        if wait <= 0:
            audit.record(actor, "backup.create", target=name, outcome=Outcome.REFUSED, message=str(busy))
            raise
        return request_backup(actor, name=name, description=description, include_elasticsearch=include_elasticsearch,
                              include_files=include_files, indices=patterns, trigger=trigger,
                              wait=_wait_for_lock(wait))
    audit.record(
        actor, "backup.create", target=name, outcome=Outcome.REQUESTED, backup=backup,
        parameters={"elasticsearch": include_elasticsearch, "files": include_files, "indices": patterns},
    )
    return backup


def _wait_for_lock(wait: float) -> float:
    """Waits until the lock looks free (or the time is up); returns the time left."""
    import time

    deadline = time.monotonic() + wait
    while running.lock_holder() is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    left = deadline - time.monotonic()
    return left if left > 0 else 0.0001


def run_backup(backup_id: int, progress: ProgressCallback = None) -> Backup:
    """Runs a pending backup to its end; the row says how it ended. Never raises for its failure."""
    backup = _get_backup(backup_id)
    now = timezone.now()
    started = Backup.objects.filter(pk=backup.pk, status=Backup.Status.PENDING).update(
        status=Backup.Status.RUNNING, started_at=now, heartbeat_at=now, phase="starting"
    )
    if started != 1:
        log.info("backup %s is %s, not pending: nothing to run", backup.name, backup.status)
        return backup
    backup.refresh_from_db()
    actor = Actor(name=backup.actor, source=backup.source)
    audit.record(actor, "backup.run", target=backup.name, outcome=Outcome.STARTED, backup=backup)
    try:
        with running.Runner(backup, progress) as runner:
            _perform_backup(backup, runner)
    except Cancelled as exc:
        _end_backup(backup, Backup.Status.CANCELLED, str(exc))
        audit.record(actor, "backup.run", target=backup.name, outcome=Outcome.CANCELLED, backup=backup)
    except Exception as exc:
        _end_backup(backup, Backup.Status.FAILED, str(exc), getattr(exc, "detail", "") or _short_trace())
        audit.record(actor, "backup.run", target=backup.name, outcome=Outcome.FAILED, message=str(exc),
                     backup=backup)
    else:
        audit.record(
            actor, "backup.run", target=backup.name, outcome=Outcome.SUCCEEDED, backup=backup,
            parameters={"indices": backup.index_count, "documents": backup.document_count,
                        "files": backup.file_count, "bytes": backup.file_bytes, "new_bytes": backup.new_bytes},
        )
    finally:
        running.release("backup", backup.pk)
    backup.refresh_from_db()
    return backup


def _end_backup(backup: Backup, status: str, message: str, detail: str = "") -> None:
    """Records a failed or cancelled backup and removes what it had half written."""
    cleanup = []
    if backup.snapshot_name:
        try:
            elastic.cluster().delete_snapshot(backup.repository, backup.snapshot_name)
        except BackupError as exc:
            cleanup.append(f"the partial snapshot could not be removed: {exc}")
    try:
        store().discard_partial(backup.name)
        store().delete_manifest(backup.name)
    except BackupError as exc:
        cleanup.append(f"the partial manifest could not be removed: {exc}")
    if cleanup:
        message = f"{message} Also, {'; '.join(cleanup)}."
    Backup.objects.filter(pk=backup.pk).update(
        status=status, finished_at=timezone.now(), error_message=message, error_detail=detail,
        snapshot_name="",
    )


def _perform_backup(backup: Backup, runner: running.Runner) -> None:
    """Snapshot then files, between the optional pre and post commands."""
    runner.phase("pre-command")
    _run_hook(settings.A4C_PRE_BACKUP_COMMAND, "pre-backup")
    try:
        if backup.include_elasticsearch:
            _backup_elasticsearch(backup, runner)
        if backup.include_files:
            _backup_files(backup, runner)
    finally:
        runner.phase("post-command")
        _run_hook(settings.A4C_POST_BACKUP_COMMAND, "post-backup")
    runner.update(status=Backup.Status.SUCCEEDED, finished_at=timezone.now(), phase="done")


def _backup_elasticsearch(backup: Backup, runner: running.Runner, indices: list[str] | None = None) -> None:
    cluster = elastic.cluster()
    runner.phase("elasticsearch: preparing")
    info = cluster.info()
    repository = settings.A4C_ES_REPOSITORY
    cluster.ensure_repository(repository, settings.A4C_ES_REPOSITORY_PATH)
    if indices is None:
        found = _a4c_indices(cluster, backup.index_patterns or None)
        if backup.index_patterns and not found:
            raise InvalidInput(f"No index matches {', '.join(backup.index_patterns)}.")
    else:
        found = cluster.indices(include=indices) if indices else {}
    runner.update(
        es_version=info["version"], es_cluster_name=info["cluster_name"], es_cluster_uuid=info["cluster_uuid"],
        repository=repository,
        indices={name: {"docs": i["docs"], "size": i["size"]} for name, i in found.items()},
    )
    if not found:
        return
    runner.phase("elasticsearch: snapshot")
    metadata = {"a4c_backup": backup.name, "requested_by": backup.actor, "trigger": backup.trigger}
    cluster.start_snapshot(repository, backup.name, list(found), metadata, settings.A4C_INCLUDE_GLOBAL_STATE)
    runner.update(snapshot_name=backup.name)
    import time

    while True:
        state = cluster.snapshot_progress(repository, backup.name)
        runner.progress(
            shards_done=state["shards_done"], shards_total=state["shards_total"],
            bytes_done=state["bytes_done"], bytes_total=state["bytes_total"],
        )
        if state["state"] not in ("STARTED", "IN_PROGRESS", "INIT"):
            break
        time.sleep(settings.A4C_POLL_SECONDS)
    final = cluster.snapshot(repository, backup.name)
    while final is not None and final.get("state") == "IN_PROGRESS":  # the status API can be ahead
        time.sleep(settings.A4C_POLL_SECONDS)
        final = cluster.snapshot(repository, backup.name)
    if final is None or final.get("state") != "SUCCESS" or final.get("shards", {}).get("failed"):
        failures = "; ".join(
            f"{f.get('index')}[{f.get('shard_id')}]: {f.get('reason')}" for f in (final or {}).get("failures", [])
        )
        raise ElasticError(
            f"The snapshot ended {final.get('state') if final else 'missing'}, not SUCCESS"
            + (f": {failures}" if failures else "") + ". The partial snapshot is not kept.",
        )
    after = cluster.indices(include=list(found))
    changed = [n for n in found if after.get(n, {}).get("docs") != found[n]["docs"]]
    if changed:
        runner.update(warnings=[*backup.warnings, "Documents were written while the snapshot ran in: "
                                + ", ".join(changed) + "; their counts are approximate."])
    runner.flush(shards_done=final["shards"]["successful"], shards_total=final["shards"]["total"])


def _previous_manifest(backup: Backup) -> str | None:
    previous = (
        Backup.objects.filter(status=Backup.Status.SUCCEEDED, include_files=True)
        .exclude(pk=backup.pk)
        .order_by("-finished_at")
        .values_list("name", flat=True)
        .first()
    )
    return previous


def _backup_files(backup: Backup, runner: running.Runner) -> None:
    data_dir = _data_dir()
    if not data_dir.is_dir():
        raise InvalidInput(
            f"The A4C data dir {data_dir} does not exist (A4C_DATA_DIR, from {settings.A4C_DATA_DIR_SOURCE})."
        )
    runner.phase("files")

    def on_progress(p) -> None:
        runner.progress(files_done=p.files_done, files_total=p.files_total,
                        bytes_done=p.bytes_done, bytes_total=p.bytes_total)

    summary = store().backup_tree(
        backup.name, data_dir, exclude_dirs=tuple(settings.A4C_EXCLUDE_DIRS),
        previous=_previous_manifest(backup), progress=on_progress, check=runner.check,
        workers=settings.A4C_FILE_WORKERS,
    )
    runner.update(
        file_count=summary.files, file_bytes=summary.bytes, new_bytes=summary.new_bytes,
        files_reused=summary.reused, manifest_sha256=summary.manifest_sha256,
        warnings=[*backup.warnings, *summary.warnings[:20]],
    )
    runner.flush(files_done=summary.files, files_total=summary.files,
                 bytes_done=summary.bytes, bytes_total=summary.bytes)


# --- restore: the plan ---------------------------------------------------------------------


def _scope_touches(scope: str) -> tuple[bool, bool]:
    """(elasticsearch, files) for a restore scope."""
    return {
        RestoreRun.Scope.ALL: (True, True),
        RestoreRun.Scope.INDICES: (True, False),
        RestoreRun.Scope.ELASTICSEARCH: (True, False),
        RestoreRun.Scope.FILES: (False, True),
    }[scope]


def _renamed(name: str, pattern: str, replacement: str) -> str:
    if not pattern:
        return name
    java_style = re.sub(r"\$(\d)", r"\\\1", replacement)
    return re.sub(pattern, java_style, name)


def plan_restore(
    backup_id: int | str,
    *,
    scope: str = RestoreRun.Scope.ALL,
    indices: Iterable[str] = (),
    file_mode: str = RestoreRun.FileMode.MIRROR,
    rename_pattern: str = "",
    rename_replacement: str = "",
    remove_indices: Iterable[str] | None = None,
) -> dict:
    """What a restore would do, changing nothing: the dry run anyone may ask for.

    ``remove_indices`` replaces the rule "a full restore removes the A4C indices the backup does
    not hold" by an explicit list (a rollback removes exactly the indices its restore created).
    """
    backup = _get_backup(backup_id)
    if scope not in RestoreRun.Scope.values:
        raise InvalidInput(f"Unknown restore scope {scope!r}: choose one of {', '.join(RestoreRun.Scope.values)}.")
    if file_mode not in RestoreRun.FileMode.values:
        raise InvalidInput(f"Unknown file mode {file_mode!r}: choose mirror or merge.")
    if not backup.is_restorable:
        raise InvalidInput(f"Backup {backup.name} is {backup.status}; only a succeeded backup can be restored.")
    es_part, files_part = _scope_touches(scope)
    chosen = [i.strip() for i in indices if i and i.strip()]
    if scope == RestoreRun.Scope.INDICES and not chosen:
        raise InvalidInput("Choose at least one index to restore, or restore everything.")
    if chosen and scope != RestoreRun.Scope.INDICES:
        raise InvalidInput("Indices can only be chosen with the 'indices' scope.")
    if es_part and not backup.include_elasticsearch:
        raise InvalidInput(f"Backup {backup.name} holds no Elasticsearch snapshot; restore its files only.")
    if files_part and not backup.include_files and scope == RestoreRun.Scope.FILES:
        raise InvalidInput(f"Backup {backup.name} holds no files; restore Elasticsearch only.")
    if rename_pattern:
        try:
            re.compile(rename_pattern)
        except re.error as exc:
            raise InvalidInput(f"The rename pattern is not a valid regular expression: {exc}.") from None
    warnings: list[str] = []
    plan: dict = {
        "backup": backup.name, "scope": scope, "file_mode": file_mode, "indices": [],
        "files": None, "warnings": warnings,
        "rename": [rename_pattern, rename_replacement] if rename_pattern else None,
    }
    if backup.verify_ok is False:
        warnings.append(f"Backup {backup.name} failed its last verification: " + "; ".join(backup.verify_problems[:3]))
    if es_part and backup.include_elasticsearch:
        plan["indices"] = _plan_indices(backup, scope, chosen, rename_pattern, rename_replacement,
                                        remove_indices, warnings)
    if files_part and backup.include_files:
        files = store().plan_restore(backup.name, _data_dir(), exclude_dirs=tuple(settings.A4C_EXCLUDE_DIRS),
                                     mode=file_mode)
        plan["files"] = dataclasses.asdict(files)
    warnings.extend(_a4c_activity_warnings())
    return plan


def _plan_indices(backup, scope, chosen, pattern, replacement, remove, warnings) -> list[dict]:
    cluster = elastic.cluster()
    info = cluster.info()
    if backup.es_cluster_uuid and info["cluster_uuid"] != backup.es_cluster_uuid:
        warnings.append(
            f"This backup comes from cluster {backup.es_cluster_name} ({backup.es_cluster_uuid}); "
            f"Elasticsearch now is {info['cluster_name']} ({info['cluster_uuid']})."
        )
    in_backup = backup.indices or {}
    if chosen:
        missing = [i for i in chosen if i not in in_backup]
        if missing:
            raise InvalidInput(f"Backup {backup.name} does not hold {', '.join(missing)}.")
        names = chosen
    else:
        names = list(in_backup)
    current = _a4c_indices(cluster)
    targets = {name: _renamed(name, pattern, replacement) for name in names}
    extra = {}
    if pattern:
        extra = cluster.indices(include=list(targets.values())) if targets else {}
    rows = []
    for name in names:
        target = targets[name]
        now = current.get(target) or extra.get(target)
        rows.append({
            "name": name, "target": target, "action": "replace" if now else "create",
            "docs_now": now["docs"] if now else None, "docs_in_backup": in_backup[name].get("docs"),
        })
    full = scope in (RestoreRun.Scope.ALL, RestoreRun.Scope.ELASTICSEARCH)
    if full and not pattern and remove is None:
        for name, now in current.items():
            if name not in in_backup:
                rows.append({"name": name, "target": name, "action": "remove",
                             "docs_now": now["docs"], "docs_in_backup": None})
    for name in remove or ():
        if name in current and not any(r["target"] == name for r in rows):
            rows.append({"name": name, "target": name, "action": "remove",
                         "docs_now": current[name]["docs"], "docs_in_backup": None})
    return rows


def _a4c_activity_warnings() -> list[str]:
    url = getattr(settings, "A4C_SERVER_URL", "")
    warnings = ["Stop Alien4Cloud or keep it idle during the restore, and restart it afterwards; "
                "Elasticsearch must stay up. A 'hot restore' is safe only when the restore cannot "
                "affect clouds or plugins configuration."]
    if url:
        import urllib.request

        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 (an operator-set URL)
            warnings.append(f"Alien4Cloud answers at {url}: it looks active.")
        except Exception:
            pass
    return warnings


# --- restore: request and run --------------------------------------------------------------


def request_restore(
    backup_id: int | str,
    actor: Actor,
    *,
    scope: str = RestoreRun.Scope.ALL,
    indices: Iterable[str] = (),
    file_mode: str = RestoreRun.FileMode.MIRROR,
    rename_pattern: str = "",
    rename_replacement: str = "",
    safety_backup: bool = True,
    confirm: str | None = None,
    wait: float = 0.0,
    rollback_of: RestoreRun | None = None,
    remove_indices: Iterable[str] | None = None,
) -> RestoreRun:
    """Plans, checks the typed confirmation, creates the pending run and takes the lock."""
    backup = _get_backup(backup_id)
    if confirm is not None and confirm != backup.name:
        raise InvalidInput(f"Type the backup's name ({backup.name}) to confirm the restore.")
    chosen = [i.strip() for i in indices if i and i.strip()]
    plan = plan_restore(backup.pk, scope=scope, indices=chosen, file_mode=file_mode,
                        rename_pattern=rename_pattern, rename_replacement=rename_replacement,
                        remove_indices=remove_indices)
    params = {"scope": scope, "indices": chosen, "file_mode": file_mode, "safety_backup": safety_backup,
              "rename": plan["rename"], "rollback_of": rollback_of.pk if rollback_of else None}
    try:
        with transaction.atomic():
            run = RestoreRun.objects.create(
                backup=backup, scope=scope, chosen_indices=chosen, file_mode=file_mode,
                rename_pattern=rename_pattern, rename_replacement=rename_replacement,
                take_safety_backup=safety_backup, plan=plan, rollback_of=rollback_of,
                requested_by=actor.user, actor=actor.name, source=actor.source, heartbeat_at=timezone.now(),
            )
            _claim("restore", run, f"of {backup.name}", actor, 0)
    except Busy as busy:
        if wait <= 0:
            audit.record(actor, "restore.request", target=backup.name, outcome=Outcome.REFUSED,
                         message=str(busy), parameters=params, backup=backup)
            raise
        return request_restore(backup.pk, actor, scope=scope, indices=chosen, file_mode=file_mode,
                               rename_pattern=rename_pattern, rename_replacement=rename_replacement,
                               safety_backup=safety_backup, wait=_wait_for_lock(wait), rollback_of=rollback_of,
                               remove_indices=remove_indices)
    audit.record(actor, "restore.request", target=backup.name, outcome=Outcome.REQUESTED,
                 parameters=params, backup=backup, restore=run)
    return run


def run_restore(restore_id: int, progress: ProgressCallback = None) -> RestoreRun:
    """Runs a pending restore; on any failure after data changed, rolls back from the safety backup."""
    run = _get_restore(restore_id)
    now = timezone.now()
    if RestoreRun.objects.filter(pk=run.pk, status=RestoreRun.Status.PENDING).update(
        status=RestoreRun.Status.RUNNING, started_at=now, heartbeat_at=now, phase="starting"
    ) != 1:
        return run
    run.refresh_from_db()
    actor = Actor(name=run.actor, source=run.source)
    audit.record(actor, "restore.run", target=run.backup.name, outcome=Outcome.STARTED,
                 backup=run.backup, restore=run)
    try:
        with running.Runner(run, progress) as runner:
            try:
                _perform_restore(run, runner)
            except Exception as exc:
                _after_failed_restore(run, runner, exc, actor)
            else:
                audit.record(actor, "restore.run", target=run.backup.name, outcome=Outcome.SUCCEEDED,
                             backup=run.backup, restore=run,
                             parameters={"safety_backup": run.safety_backup.name if run.safety_backup else None})
    finally:
        running.release("restore", run.pk)
    run.refresh_from_db()
    return run


def _after_failed_restore(run: RestoreRun, runner: running.Runner, exc: Exception, actor: Actor) -> None:
    cancelled = isinstance(exc, Cancelled)
    detail = getattr(exc, "detail", "") or _short_trace()
    failed_phase = run.phase
    if not run.state.get("changed"):
        status = RestoreRun.Status.CANCELLED if cancelled else RestoreRun.Status.FAILED
        message = str(exc) + " Nothing had been changed yet."
        runner.update(status=status, finished_at=timezone.now(), error_message=message, error_detail=detail)
        audit.record(actor, "restore.run", target=run.backup.name, restore=run, backup=run.backup,
                     outcome=Outcome.CANCELLED if cancelled else Outcome.FAILED, message=message)
        return
    runner.cancellable = False
    try:
        runner.phase("rolling back")
        _roll_back(run, runner)
    except Exception as rollback_exc:
        message = (f"{exc} (during {failed_phase}). The automatic rollback failed too: {rollback_exc}. "
                   + _rollback_hint(run))
        runner.update(status=RestoreRun.Status.FAILED, finished_at=timezone.now(), error_message=message,
                      error_detail=detail + "\n--- rollback ---\n" + _short_trace())
        audit.record(actor, "restore.run", target=run.backup.name, restore=run, backup=run.backup,
                     outcome=Outcome.FAILED, message=message)
        return
    what = "Cancelled" if cancelled else f"Restore failed during {failed_phase}: {exc}"
    message = f"{what}. The data was put back as it was before the restore" + (
        f", from safety backup {run.safety_backup.name}." if run.safety_backup else "."
    )
    runner.update(status=RestoreRun.Status.ROLLED_BACK, rolled_back=True, finished_at=timezone.now(),
                  error_message=message, error_detail=detail, phase="rolled back")
    audit.record(actor, "restore.rollback", target=run.backup.name, restore=run, backup=run.backup,
                 outcome=Outcome.ROLLED_BACK, message=message)


def _rollback_hint(run: RestoreRun) -> str:
    if run.safety_backup_id:
        return f"Restore safety backup {run.safety_backup.name} to return to the state before."
    return "No safety backup was taken: restore an earlier backup."


def _perform_restore(run: RestoreRun, runner: running.Runner) -> None:
    backup = run.backup
    es_part, files_part = _scope_touches(run.scope)
    files_part = files_part and backup.include_files
    runner.phase("plan")
    remove = [r["name"] for r in (run.plan.get("indices") or []) if r["action"] == "remove"]
    plan = plan_restore(backup.pk, scope=run.scope, indices=run.chosen_indices, file_mode=run.file_mode,
                        rename_pattern=run.rename_pattern, rename_replacement=run.rename_replacement,
                        remove_indices=remove if run.rollback_of_id else None)
    rows = plan["indices"]
    touched = [r["target"] for r in rows if r["action"] in ("replace", "remove")]
    created = [r["target"] for r in rows if r["action"] == "create"]
    runner.update(state={**run.state, "existing_touched": touched, "created": created})

    if run.take_safety_backup:
        runner.phase("safety backup")
        safety = _safety_backup(run, touched if es_part else None, files_part, runner)
        runner.update(safety_backup=safety)

    if es_part:
        runner.phase("elasticsearch")
        runner.update(state={**run.state, "changed": True})
        _restore_indices(backup, rows, runner, plan["rename"])
    if files_part:
        runner.phase("files")
        _restore_files(run, runner)

    runner.phase("verify")
    problems = _verify_restored(backup, rows if es_part else [], files_part, run.file_mode)
    if problems:
        raise BackupError("After the restore, the data does not match the backup: " + "; ".join(problems[:5]))
    if run.state.get("old_tree"):
        store().drop_old_tree(Path(run.state["old_tree"]))
    runner.update(status=RestoreRun.Status.SUCCEEDED, finished_at=timezone.now(), phase="done")


def _safety_backup(run: RestoreRun, indices: list[str] | None, files: bool, runner) -> Backup:
    """Backs up exactly what the restore is about to overwrite, inside the restore's lock."""
    safety = Backup.objects.create(
        name=default_backup_name(f"safety-before-restore-{run.pk}"),
        description=f"Taken automatically before restore #{run.pk} of {run.backup.name}.",
        trigger=Backup.Trigger.SAFETY, include_elasticsearch=indices is not None, include_files=files,
        index_patterns=indices or [], requested_by=run.requested_by, actor=run.actor, source=run.source,
        status=Backup.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(),
    )
    actor = Actor(name=run.actor, source=run.source)
    audit.record(actor, "backup.safety", target=safety.name, outcome=Outcome.STARTED, backup=safety, restore=run)
    sub = running.Runner(safety)
    sub.check = runner.check  # cancelling the restore cancels its safety backup
    try:
        if indices is not None:
            _backup_elasticsearch(safety, sub, indices=indices)
        if files:
            _backup_files(safety, sub)
    except Exception as exc:
        _end_backup(safety, Backup.Status.CANCELLED if isinstance(exc, Cancelled) else Backup.Status.FAILED,
                    str(exc), _short_trace())
        raise BackupError(f"The safety backup failed, so nothing was restored: {exc}") from exc
    sub.update(status=Backup.Status.SUCCEEDED, finished_at=timezone.now(), phase="done")
    audit.record(actor, "backup.safety", target=safety.name, outcome=Outcome.SUCCEEDED, backup=safety, restore=run)
    return safety


def _restore_indices(backup: Backup, rows: list[dict], runner: running.Runner, rename: list | None = None) -> None:
    """Replaces, creates and removes indices as the plan's rows say, and waits for every shard."""
    cluster = elastic.cluster()
    restore_rows = [r for r in rows if r["action"] in ("replace", "create")]
    cluster.delete_indices([r["target"] for r in rows if r["action"] == "replace"])
    if restore_rows:
        single_node = cluster.info()["data_nodes"] <= 1
        cluster.start_restore(
            backup.repository or settings.A4C_ES_REPOSITORY, backup.snapshot_name or backup.name,
            [r["name"] for r in restore_rows],
            rename_pattern=rename[0] if rename else "", rename_replacement=rename[1] if rename else "",
            index_settings={"index.number_of_replicas": 0} if single_node else {},
        )
        cluster.wait_for_recovery(
            [r["target"] for r in restore_rows],
            on_progress=lambda done, total: runner.progress(shards_done=done, shards_total=total),
            poll=settings.A4C_POLL_SECONDS,
        )
    cluster.delete_indices([r["target"] for r in rows if r["action"] == "remove"])


def _restore_files(run: RestoreRun, runner: running.Runner) -> None:
    runner.update(state={**run.state, "changed": True})

    def on_progress(p) -> None:
        runner.progress(files_done=p.files_done, files_total=p.files_total,
                        bytes_done=p.bytes_done, bytes_total=p.bytes_total)

    result = store().restore_tree(
        run.backup.name, _data_dir(), exclude_dirs=tuple(settings.A4C_EXCLUDE_DIRS), mode=run.file_mode,
        progress=on_progress, check=runner.check,
    )
    runner.update(state={**run.state, "old_tree": str(result.old_tree) if result.old_tree else ""})


def _verify_restored(backup: Backup, rows: list[dict], files: bool, file_mode: str) -> list[str]:
    problems = []
    if rows:
        cluster = elastic.cluster()
        approximate = any("approximate" in w for w in backup.warnings)
        for row in rows:
            if row["action"] == "remove":
                if cluster.indices(include=[row["target"]]):
                    problems.append(f"index {row['target']} should have been removed")
                continue
            count = cluster.count(row["target"])
            if count != row["docs_in_backup"] and not approximate:
                problems.append(f"index {row['target']} holds {count} documents, the backup {row['docs_in_backup']}")
    if files:
        plan = store().plan_restore(backup.name, _data_dir(), exclude_dirs=tuple(settings.A4C_EXCLUDE_DIRS),
                                    mode=file_mode)
        plan_dict = dataclasses.asdict(plan)
        for key in ("added", "changed", "removed"):
            if plan_dict.get(key):
                problems.append(f"{plan_dict[key]} files would still be {key}")
    return problems


def _roll_back(run: RestoreRun, runner: running.Runner) -> None:
    """Puts back what the restore changed: the kept old tree, then the safety snapshot."""
    run.refresh_from_db()
    state = run.state
    # restore_tree swaps the data dir in one rename after staging and checking everything: when
    # it raised, the data dir is wholly old; when it returned, the old tree is kept beside it.
    if state.get("old_tree"):
        store().undo_restore(_data_dir(), Path(state["old_tree"]))
        runner.update(state={**state, "old_tree": ""})
    if _scope_touches(run.scope)[0] and state.get("changed"):
        cluster = elastic.cluster()
        created = [n for n in state.get("created", []) if cluster.indices(include=[n])]
        touched = state.get("existing_touched", [])
        if touched and not (run.safety_backup and run.safety_backup.include_elasticsearch):
            raise BackupError("indices were changed and no safety backup of them exists")
        cluster.delete_indices(created)
        if touched:
            rows = [{"name": n, "target": n, "action": "replace" if cluster.indices(include=[n]) else "create"}
                    for n in touched]
            _restore_indices(run.safety_backup, rows, runner)


def request_rollback(restore_id: int, actor: Actor, *, wait: float = 0.0) -> RestoreRun:
    """A new restore that puts back the safety backup taken before ``restore_id``."""
    run = _get_restore(restore_id)
    if run.is_active:
        raise InvalidInput(f"Restore #{run.pk} is still {run.status}; cancel it instead (it rolls back).")
    if run.rolled_back:
        raise InvalidInput(f"Restore #{run.pk} was already rolled back.")
    safety = run.safety_backup
    if safety is None or not safety.is_restorable:
        raise InvalidInput(f"Restore #{run.pk} has no safety backup left to roll back to.")
    if safety.include_elasticsearch and safety.include_files:
        scope = RestoreRun.Scope.ALL
    elif safety.include_elasticsearch:
        scope = RestoreRun.Scope.ELASTICSEARCH
    else:
        scope = RestoreRun.Scope.FILES
    # Everything the safety backup holds goes back; indices the restore created are removed;
    # nothing else is touched.
    rollback = request_restore(
        safety.pk, actor, scope=scope, safety_backup=True, wait=wait, rollback_of=run,
        remove_indices=run.state.get("created", []),
    )
    RestoreRun.objects.filter(pk=run.pk).update(rolled_back=True)
    audit.record(actor, "restore.rollback", target=run.backup.name, outcome=Outcome.REQUESTED,
                 restore=rollback, backup=safety, parameters={"restore": run.pk})
    return rollback


# --- cancel, verify, delete, garbage ------------------------------------------------------


def cancel(kind: str, run_id: int, actor: Actor) -> object:
    """Asks a running backup or restore to stop; a pending one is cancelled at once."""
    model = {"backup": Backup, "restore": RestoreRun}.get(kind)
    if model is None:
        raise InvalidInput("Only a backup or a restore can be cancelled.")
    run = _get_backup(run_id) if model is Backup else _get_restore(run_id)
    target = run.name if model is Backup else run.backup.name
    if model.objects.filter(pk=run.pk, status=model.Status.PENDING).update(
        status=model.Status.CANCELLED, finished_at=timezone.now(), error_message=f"Cancelled by {actor.name}."
    ):
        running.release(kind, run.pk)
    elif not model.objects.filter(pk=run.pk, status=model.Status.RUNNING).update(cancel_requested=True):
        run.refresh_from_db()
        raise InvalidInput(f"The {kind} is {run.status}; only a pending or running {kind} can be cancelled.")
    audit.record(actor, f"{kind}.cancel", target=target, outcome=Outcome.REQUESTED,
                 **({"backup": run} if model is Backup else {"restore": run}))
    run.refresh_from_db()
    return run


@dataclasses.dataclass
class VerifyReport:
    backup: str
    ok: bool
    problems: list[str]


def verify_backup(backup_id: int | str, actor: Actor) -> VerifyReport:
    """The snapshot exists and is SUCCESS, the repository verifies, every blob hashes right."""
    backup = _get_backup(backup_id)
    if backup.status != Backup.Status.SUCCEEDED:
        raise InvalidInput(f"Backup {backup.name} is {backup.status}; only a succeeded backup can be verified.")
    problems: list[str] = []
    if backup.include_elasticsearch and backup.indices:
        cluster = elastic.cluster()
        try:
            cluster.verify_repository(backup.repository or settings.A4C_ES_REPOSITORY)
            snap = cluster.snapshot(backup.repository or settings.A4C_ES_REPOSITORY, backup.snapshot_name or backup.name)
        except ElasticError as exc:
            problems.append(str(exc))
            snap = {}
        if snap is None:
            problems.append(f"snapshot {backup.snapshot_name or backup.name} is missing from repository "
                            f"{backup.repository}")
        elif snap:
            if snap.get("state") != "SUCCESS":
                problems.append(f"snapshot {backup.name} is {snap.get('state')}, not SUCCESS")
            missing = sorted(set(backup.indices) - set(snap.get("indices", [])))
            if missing:
                problems.append(f"snapshot {backup.name} lacks indices {', '.join(missing)}")
    if backup.include_files:
        if not store().has_manifest(backup.name):
            problems.append(f"the file manifest of {backup.name} is missing")
        else:
            try:
                problems.extend(store().verify(backup.name).problems)
            except BackupError as exc:
                problems.append(str(exc))
    ok = not problems
    Backup.objects.filter(pk=backup.pk).update(verified_at=timezone.now(), verify_ok=ok, verify_problems=problems[:100])
    audit.record(actor, "backup.verify", target=backup.name, backup=backup,
                 outcome=Outcome.SUCCEEDED if ok else Outcome.FAILED,
                 message="; ".join(problems[:5]), parameters={"problems": len(problems)})
    return VerifyReport(backup.name, ok, problems)


def delete_backup(backup_id: int | str, actor: Actor, *, collect: bool = True) -> Backup:
    """Deletes a backup's snapshot and manifest, then the blobs no other backup uses."""
    backup = _get_backup(backup_id)
    if backup.status in (Backup.Status.PENDING, Backup.Status.RUNNING):
        raise InvalidInput(f"Backup {backup.name} is {backup.status}: cancel it first.")
    if backup.status in (Backup.Status.DELETED, Backup.Status.DELETING):
        raise InvalidInput(f"Backup {backup.name} is already {backup.status}.")
    try:
        _claim("delete", backup, backup.name, actor, 0)
    except Busy as busy:
        audit.record(actor, "backup.delete", target=backup.name, outcome=Outcome.REFUSED, message=str(busy),
                     backup=backup)
        raise
    previous_status = backup.status
    try:
        Backup.objects.filter(pk=backup.pk).update(status=Backup.Status.DELETING)
        if backup.snapshot_name or (backup.include_elasticsearch and backup.indices):
            elastic.cluster().delete_snapshot(backup.repository or settings.A4C_ES_REPOSITORY,
                                              backup.snapshot_name or backup.name)
        store().delete_manifest(backup.name)
        store().discard_partial(backup.name)
        Backup.objects.filter(pk=backup.pk).update(status=Backup.Status.DELETED, deleted_at=timezone.now())
        freed = store().collect_garbage() if collect else None
    except BackupError as exc:
        Backup.objects.filter(pk=backup.pk).update(status=previous_status, error_message=str(exc))
        audit.record(actor, "backup.delete", target=backup.name, outcome=Outcome.FAILED, message=str(exc),
                     backup=backup)
        raise
    finally:
        running.release("delete", backup.pk)
    audit.record(actor, "backup.delete", target=backup.name, outcome=Outcome.SUCCEEDED, backup=backup,
                 parameters=dataclasses.asdict(freed) if freed else {})
    backup.refresh_from_db()
    return backup


# --- recovery ------------------------------------------------------------------------------


def recover_stale_runs(now=None) -> list[str]:
    """Finds runs whose worker died and ends them honestly; frees a lock nobody holds."""
    now = now or timezone.now()
    stale = now - timezone.timedelta(seconds=settings.A4C_STALE_AFTER_SECONDS)
    never_started = now - timezone.timedelta(seconds=settings.A4C_PENDING_TIMEOUT_SECONDS)
    system = Actor.system("recovery")
    notes = []
    for backup in Backup.objects.filter(status=Backup.Status.RUNNING, heartbeat_at__lt=stale):
        message = (f"The worker running this backup stopped answering during {backup.phase or 'its start'} "
                   "(killed or lost); the partial snapshot and manifest were removed.")
        if Backup.objects.filter(pk=backup.pk, status=Backup.Status.RUNNING, heartbeat_at__lt=stale).update(
            status=Backup.Status.FAILED, finished_at=now, error_message=message
        ):
            _end_backup(backup, Backup.Status.FAILED, message)
            running.release("backup", backup.pk)
            audit.record(system, "backup.recover", target=backup.name, outcome=Outcome.FAILED, message=message,
                         backup=backup)
            notes.append(f"backup {backup.name}: {message}")
    for backup in Backup.objects.filter(status=Backup.Status.PENDING, created_at__lt=never_started):
        message = "No worker started this backup in time; is the Celery worker running?"
        if Backup.objects.filter(pk=backup.pk, status=Backup.Status.PENDING).update(
            status=Backup.Status.FAILED, finished_at=now, error_message=message
        ):
            running.release("backup", backup.pk)
            audit.record(system, "backup.recover", target=backup.name, outcome=Outcome.FAILED, message=message,
                         backup=backup)
            notes.append(f"backup {backup.name}: {message}")
    for run in RestoreRun.objects.select_related("backup", "safety_backup").filter(
        status=RestoreRun.Status.RUNNING, heartbeat_at__lt=stale
    ):
        message = (f"The worker running this restore stopped answering during {run.phase or 'its start'}. "
                   + (_rollback_hint(run) if run.state.get("changed") else "Nothing had been changed yet."))
        if run.state.get("old_tree"):
            try:  # the data dir goes back to wholly old at once; the rollback does the rest
                store().undo_restore(_data_dir(), Path(run.state["old_tree"]))
            except BackupError as exc:
                message += f" The kept previous data dir could not be put back: {exc}."
        if RestoreRun.objects.filter(pk=run.pk, status=RestoreRun.Status.RUNNING, heartbeat_at__lt=stale).update(
            status=RestoreRun.Status.INTERRUPTED if run.state.get("changed") else RestoreRun.Status.FAILED,
            finished_at=now, error_message=message,
        ):
            if run.safety_backup_id and run.safety_backup.status == Backup.Status.RUNNING:
                _end_backup(run.safety_backup, Backup.Status.FAILED, "Interrupted with its restore.")
            running.release("restore", run.pk)
            audit.record(system, "restore.recover", target=run.backup.name, outcome=Outcome.FAILED,
                         message=message, restore=run, backup=run.backup)
            notes.append(f"restore #{run.pk}: {message}")
    for run in RestoreRun.objects.filter(status=RestoreRun.Status.PENDING, created_at__lt=never_started):
        if RestoreRun.objects.filter(pk=run.pk, status=RestoreRun.Status.PENDING).update(
            status=RestoreRun.Status.FAILED, finished_at=now,
            error_message="No worker started this restore in time; nothing was changed.",
        ):
            running.release("restore", run.pk)
            notes.append(f"restore #{run.pk}: never started")
    notes.extend(_free_orphan_lock())
    return notes


def _free_orphan_lock() -> list[str]:
    lock = running.lock_holder()
    if lock is None:
        return []
    model = {"backup": Backup, "restore": RestoreRun, "delete": Backup}.get(lock.kind)
    if lock.kind == "delete":
        alive = Backup.objects.filter(pk=lock.run_id, status=Backup.Status.DELETING).exists()
        stale = lock.acquired_at and lock.acquired_at < timezone.now() - timezone.timedelta(hours=1)
        alive = alive and not stale
    else:
        alive = model is not None and model.objects.filter(pk=lock.run_id, status__in=model.ACTIVE).exists()
    if alive:
        return []
    running.release(lock.kind, lock.run_id)
    return [f"lock held by finished {lock.kind} {lock.label} released"]
