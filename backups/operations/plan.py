"""The restore plan: what a restore would do, changing nothing.

Made once when a restore is asked for, shown to the person who confirms it, stored on the run
(``RestoreRun.plan``) and read back by the worker as the same typed value: the worker checks it
is still true of the indices (a cheap question to Elasticsearch) instead of planning again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings

from backups.elastic import client as elastic
from backups.errors import InvalidInput
from backups.models import Backup, RestoreRun
from backups.operations.lookup import get_backup
from backups.operations.maintenance_mode import current_state
from backups.operations.names import index_name_problem
from backups.operations.places import a4c_indices, copy_options, working_tree
from backups.operations.requests import RestoreRequest
from backups.operations.signing import foreign_reason
from backups.progress import Stage
from backups.sizes import format_size
from backups.storage import DATA_DIR, RECORDED, FilePlan

# --- restore: the plan ---------------------------------------------------------------------


@dataclass(frozen=True)
class IndexStep:
    """One index the restore replaces, creates (from ``name`` in the backup) or removes."""

    name: str
    target: str
    action: str  # "replace", "create" or "remove"
    docs_now: int | None
    docs_in_backup: int | None


@dataclass
class Plan:
    backup: str
    scope: str
    file_mode: str
    indices: list[IndexStep] = field(default_factory=list)
    files: FilePlan | None = None
    warnings: list[str] = field(default_factory=list)
    rename: tuple[str, str] | None = None
    a4c_maintenance: str = ""  # Alien4Cloud's maintenance mode when the plan was made
    # Why restoring into this cluster needs a confirmation ("" when it took the backup).
    other_cluster: str = ""
    # Why restoring this set needs a confirmation ("" when a key trusted here vouches for it).
    foreign: str = ""
    # Whose files the restore writes (storage.RECORDED, or storage.DATA_DIR for a set from
    # elsewhere: the data dir's owner, no set-id or world-writable bits).
    file_owners: str = RECORDED

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Plan:
        return cls(
            backup=data["backup"],
            scope=data["scope"],
            file_mode=data["file_mode"],
            indices=[IndexStep(**row) for row in data.get("indices") or []],
            files=FilePlan(**data["files"]) if data.get("files") else None,
            warnings=list(data.get("warnings") or []),
            rename=tuple(data["rename"]) if data.get("rename") else None,
            a4c_maintenance=data.get("a4c_maintenance", ""),
            other_cluster=data.get("other_cluster", ""),
            foreign=data.get("foreign", ""),
            file_owners=data.get("file_owners", RECORDED),
        )

    @property
    def owners_mapped(self) -> bool:
        """The restored files get the data dir's owner, not the recorded ones."""
        return self.file_owners == DATA_DIR

    def targets(self, *actions: str) -> list[str]:
        return [step.target for step in self.indices if step.action in actions]

    def counts(self) -> dict[str, int]:
        return {a: len(self.targets(a)) for a in ("replace", "create", "remove")}


def scope_touches(scope: str) -> tuple[bool, bool]:
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


def check_restore_request(backup: Backup, request: RestoreRequest) -> None:
    """The rules a restore request must meet, cheap to ask (no walk, no Elasticsearch): a
    confirmed plan is checked against them again when the restore is asked for."""
    if request.scope not in RestoreRun.Scope.values:
        raise InvalidInput(
            f"Unknown restore scope {request.scope!r}: choose one of "
            f"{', '.join(RestoreRun.Scope.values)}."
        )
    if request.file_mode not in RestoreRun.FileMode.values:
        raise InvalidInput(f"Unknown file mode {request.file_mode!r}: choose mirror or merge.")
    if not backup.is_restorable:
        raise InvalidInput(
            f"Backup {backup.name} is {backup.status}; only a succeeded backup can be restored."
        )
    if backup.vanished_at:
        raise InvalidInput(
            f"Backup {backup.name} is gone from the backup storage (sync found it missing): "
            "restore another backup, or put its files back and run `manage.py sync`."
        )
    scope = request.scope
    es_part, files_part = scope_touches(scope)
    if scope == RestoreRun.Scope.INDICES and not request.indices:
        raise InvalidInput("Choose at least one index to restore, or restore everything.")
    if request.indices and scope != RestoreRun.Scope.INDICES:
        raise InvalidInput("Indices can only be chosen with the 'indices' scope.")
    # "all" means everything this backup holds; a part asked for by name must be there.
    if es_part and not backup.include_elasticsearch and scope != RestoreRun.Scope.ALL:
        raise InvalidInput(
            f"Backup {backup.name} holds no Elasticsearch snapshot; restore its files only."
        )
    if files_part and not backup.include_files and scope == RestoreRun.Scope.FILES:
        raise InvalidInput(f"Backup {backup.name} holds no files; restore Elasticsearch only.")
    if request.rename_pattern:
        try:
            re.compile(request.rename_pattern)
        except re.error as exc:
            raise InvalidInput(
                f"The rename pattern is not a valid regular expression: {exc}."
            ) from None


def plan_restore(request: RestoreRequest, *, at_once: bool = False) -> Plan:
    """What a restore would do, changing nothing: the dry run anyone may ask for. The file
    half walks the data dir: made once, shown, confirmed and stored, never made again.
    ``at_once``: this process runs the restore next (the command line), so the paths found to
    differ are kept in its memory for the staging (storage/findings.py)."""
    backup = get_backup(request.backup_id)
    check_restore_request(backup, request)
    es_part, files_part = scope_touches(request.scope)
    plan = Plan(
        backup=backup.name,
        scope=request.scope,
        file_mode=request.file_mode,
        rename=request.rename,
        foreign=foreign_reason(backup),
    )
    warnings = plan.warnings
    if backup.verify_ok is False:
        warnings.append(
            f"Backup {backup.name} failed its last verification: "
            + "; ".join(backup.verify_problems[:3])
        )
    if es_part and backup.include_elasticsearch:
        plan.other_cluster = other_cluster(backup)
        plan.indices = plan_indices(backup, request, warnings)
    if files_part and backup.include_files:
        plan.file_owners = file_owners(backup, request)
        plan.files = working_tree().plan_restore(
            backup.name,
            exclude_dirs=copy_options().exclude_dirs,
            mode=request.file_mode,
            owners=plan.file_owners,
            local=backup.made_here,
            at_once=at_once,
        )
        warnings.extend(large_removal_warnings(plan.files))
        if backup.imported_from and plan.file_owners == RECORDED:
            warnings.append(
                f"Backup {backup.name} came from elsewhere ({backup.imported_from}) and its files "
                "keep the owners and modes its manifest records, set-id bits included."
            )
    plan.a4c_maintenance = current_state()
    warnings.extend(_a4c_activity_warnings(plan.a4c_maintenance))
    return plan


class PlanOutdated(InvalidInput):
    """The plan a person confirmed no longer says what the restore would do."""


def file_owners(backup: Backup, request: RestoreRequest) -> str:
    """Whose files a restore writes: a set from elsewhere (imported, or found by sync) gets the
    data dir's owner unless the person asked to keep the recorded ones; ours keeps them."""
    return RECORDED if request.keep_owners or backup.made_here else DATA_DIR


def recheck_confirmed_plan(backup: Backup, request: RestoreRequest, plan: Plan) -> Plan:
    """The plan a person confirmed, still true: the request's rules and the Elasticsearch half
    asked again (cheap); the file half is not planned again (the restore walks the data dir
    itself). Refuses when what Elasticsearch now holds changes what the restore would do;
    document counts alone may move (Alien4Cloud writes), and the fresh ones are kept."""
    check_restore_request(backup, request)
    if (plan.backup, plan.scope, plan.file_mode, plan.rename) != (
        backup.name,
        request.scope,
        request.file_mode,
        request.rename,
    ):
        raise PlanOutdated("The plan shown was for other choices: read the new plan and confirm.")
    if plan.files is not None and plan.file_owners != file_owners(backup, request):
        raise PlanOutdated("The plan shown was for other owners: read the new plan and confirm.")
    if plan.files is not None:
        working_tree().check_writable()  # a stat or two: the data dir may have moved since
    if not (scope_touches(request.scope)[0] and backup.include_elasticsearch):
        return plan
    fresh = plan_indices(backup, request, [])
    moved = decisions_changed(plan.indices, fresh)
    if moved:
        raise PlanOutdated(
            "Elasticsearch changed since the plan was shown (" + ", ".join(moved[:10]) + "): "
            "read the new plan and confirm again."
        )
    return dataclasses.replace(plan, indices=fresh, other_cluster=other_cluster(backup))


def decisions_changed(before: list[IndexStep], after: list[IndexStep]) -> list[str]:
    """The indices whose fate differs between two index halves (counts left aside)."""
    decided = {(s.name, s.target, s.action) for s in before}
    now = {(s.name, s.target, s.action) for s in after}
    return sorted({target for _, target, _ in decided ^ now})


# A mirror restore removing more than this is flagged before anyone types the name.
LARGE_REMOVAL_FILES = 100
LARGE_REMOVAL_BYTES = 100 * 2**20


def large_removal_warnings(files) -> list[str]:
    entries = files.entries("removed")
    if entries < LARGE_REMOVAL_FILES and files.removed_bytes < LARGE_REMOVAL_BYTES:
        return []
    return [
        f"This mirror restore deletes {files.removed_text} ({format_size(files.removed_bytes)}) "
        "that are in the data directory but not in the backup. Download the complete list and "
        "check it, or restore in merge mode, which deletes nothing."
    ]


def file_changes(backup_id: int | str, file_mode: str) -> Iterator[tuple[str, str, int]]:
    """The complete list behind a plan's file counts, streamed: (kind, path, size) for every
    path the restore would add, overwrite or (mirror) delete; unchanged paths are left out."""
    backup = get_backup(backup_id)
    if file_mode not in RestoreRun.FileMode.values:
        raise InvalidInput(f"Unknown file mode {file_mode!r}: choose mirror or merge.")
    if not backup.include_files or not backup.is_restorable:
        raise InvalidInput(f"Backup {backup.name} has no files a restore would write.")
    changes = working_tree().file_changes(
        backup.name,
        exclude_dirs=copy_options().exclude_dirs,
        mode=file_mode,
        local=backup.made_here,
    )
    return (
        (kind, path + "/" if node == "dir" else path, size)
        for kind, path, size, node in changes
        if kind != "unchanged"
    )


def other_cluster(backup) -> str:
    """Why restoring into this cluster needs a confirmation, or "" when it is the backup's."""
    info = elastic.cluster().info()
    if not backup.es_cluster_uuid or info.cluster_uuid == backup.es_cluster_uuid:
        return ""
    return (
        f"Backup {backup.name} was taken on cluster {backup.es_cluster_name} "
        f"({backup.es_cluster_uuid}); Elasticsearch now is cluster {info.cluster_name} "
        f"({info.cluster_uuid})."
    )


def plan_indices(backup: Backup, request: RestoreRequest, warnings: list[str]) -> list[IndexStep]:
    """The Elasticsearch half of a plan: a question to Elasticsearch, cheap to ask again."""
    scope, chosen, remove = request.scope, list(request.indices), request.remove_indices
    pattern, replacement = request.rename_pattern, request.rename_replacement
    cluster = elastic.cluster()
    if why := cluster.cannot_restore(backup.es_version):
        raise InvalidInput(
            f"Backup {backup.name} cannot be restored into this Elasticsearch: {why}."
        )
    in_backup = backup.indices or {}
    if chosen:
        missing = [i for i in chosen if i not in in_backup]
        if missing:
            raise InvalidInput(f"Backup {backup.name} does not hold {', '.join(missing)}.")
        names = chosen
    else:
        names = list(in_backup)
    current = a4c_indices(cluster)
    try:
        targets = {name: _renamed(name, pattern, replacement) for name in names}
    except (re.error, IndexError) as exc:
        raise InvalidInput(
            f"The rename replacement {replacement!r} cannot be used: {exc}."
        ) from None
    for name, target in targets.items() if pattern else ():
        problem = index_name_problem(target)
        if problem:
            raise InvalidInput(
                f"The rename turns {name} into {target!r}, which cannot be an index name: "
                f"{problem}."
            )
    if len(set(targets.values())) < len(targets):
        raise InvalidInput("The rename gives two indices the same name; each needs its own.")
    extra = {}
    if pattern:
        extra = cluster.indices(include=list(targets.values())) if targets else {}
    rows: list[IndexStep] = []
    for name in names:
        target = targets[name]
        now = current.get(target) or extra.get(target)
        rows.append(
            IndexStep(
                name,
                target,
                "replace" if now else "create",
                now.docs if now else None,
                in_backup[name].get("docs"),
            )
        )
    full = scope in (RestoreRun.Scope.ALL, RestoreRun.Scope.ELASTICSEARCH)
    if full and not pattern and remove is None:
        for name, now in current.items():
            if name not in in_backup:
                rows.append(IndexStep(name, name, "remove", now.docs, None))
    for name in remove or ():
        if name in current and not any(r.target == name for r in rows):
            rows.append(IndexStep(name, name, "remove", current[name].docs, None))
    return rows


def _a4c_activity_warnings(maintenance: str) -> list[str]:
    """What the operator must know of Alien4Cloud around this restore, given its maintenance
    mode now (maintenance_mode.current_state)."""
    restart = (
        "A4C_RESTART_COMMAND restarts it afterwards"
        if settings.A4C_RESTART_COMMAND
        else "restart it afterwards: its caches and in-memory state predate the restore"
    )
    if maintenance == "off":  # configured, answering, free: the restore takes it
        return [
            "Alien4Cloud goes into maintenance mode for the restore, from before the safety "
            f"backup to the end; {restart}. Elasticsearch must stay up."
        ]
    return [
        "Stop Alien4Cloud or keep it idle during the restore, and restart it afterwards; "
        "Elasticsearch must stay up. A 'hot restore' is safe only when the restore cannot "
        "affect clouds or plugins configuration.",
        f"Alien4Cloud maintenance mode: {maintenance}.",
    ]


def restore_stages(run: RestoreRun, rows: list[IndexStep], files: bool, early: bool) -> list[Stage]:
    """The stages in the order this restore runs them, weighed in bytes: the backup's files
    (re-hashed when checked in full, written when staged), the safety backup (what it covers
    now), and the indices restored. The other phases are moments."""
    sizes = {name: i.get("size", 0) for name, i in (run.backup.indices or {}).items()}
    index_bytes = sum(sizes.get(r.name, 0) for r in rows if r.action in ("replace", "create"))
    file_bytes = run.backup.file_bytes if files else 0
    staging = [Stage("files", file_bytes)] if files else []
    stages = [Stage("checking the backup", file_bytes)] if files and not early else []
    stages += staging if early else []
    if run.take_safety_backup:
        stages.append(Stage("safety backup", index_bytes + file_bytes))
    if rows:
        stages.append(Stage("elasticsearch", index_bytes))
    stages += [] if early else staging
    return stages
