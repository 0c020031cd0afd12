"""Prometheus text for /metrics: read from the rows, which are the truth.

Queries are aggregates, so the cost does not grow with the number of backups kept.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Max, Sum

from backups.models import Backup, OperationLock, Policy, RestoreRun, SystemState


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _ts(moment: datetime | None) -> float:
    return moment.timestamp() if moment else 0.0


class _Text:
    def __init__(self):
        self.lines: list[str] = []

    def metric(
        self, name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            rendered = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(
                f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}"
            )

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def prometheus_text() -> str:
    out = _Text()
    policies = list(Policy.objects.all())
    out.metric(
        "a4c_backup_policy_last_success_timestamp_seconds",
        "gauge",
        "When the policy's last backup succeeded (0: never).",
        [({"policy": p.name}, _ts(p.last_success_at)) for p in policies],
    )
    out.metric(
        "a4c_backup_policy_last_failure_timestamp_seconds",
        "gauge",
        "When the policy's last backup failed (0: never).",
        [({"policy": p.name}, _ts(p.last_failure_at)) for p in policies],
    )
    out.metric(
        "a4c_backup_policy_last_duration_seconds",
        "gauge",
        "How long the policy's last good backup took.",
        [({"policy": p.name}, p.last_duration_seconds or 0) for p in policies],
    )
    out.metric(
        "a4c_backup_policy_paused",
        "gauge",
        "1 when the policy is paused.",
        [({"policy": p.name}, int(p.paused)) for p in policies],
    )

    last_good = Backup.objects.filter(status=Backup.Status.SUCCEEDED).exclude(
        trigger=Backup.Trigger.SAFETY
    )
    newest = last_good.order_by("-finished_at").first()
    out.metric(
        "a4c_backup_last_success_timestamp_seconds",
        "gauge",
        "When the newest good backup finished (0: none).",
        [({}, _ts(newest.finished_at if newest else None))],
    )
    if newest:
        out.metric(
            "a4c_backup_last_files",
            "gauge",
            "Files in the newest good backup.",
            [({"backup": newest.name}, newest.file_count)],
        )
        out.metric(
            "a4c_backup_last_bytes",
            "gauge",
            "Bytes of files in the newest good backup.",
            [({"backup": newest.name}, newest.file_bytes)],
        )
        out.metric(
            "a4c_backup_last_new_bytes",
            "gauge",
            "Bytes the newest good backup added to storage.",
            [({"backup": newest.name}, newest.new_bytes)],
        )
    by_status = dict(Backup.objects.values_list("status").annotate(n=Count("id")))
    out.metric(
        "a4c_backups",
        "gauge",
        "Backups by status.",
        [({"status": s}, by_status.get(s, 0)) for s in Backup.Status.values],
    )
    totals = Backup.objects.filter(status=Backup.Status.SUCCEEDED).aggregate(
        files=Sum("file_count"), stored=Sum("new_bytes"), latest=Max("finished_at")
    )
    out.metric(
        "a4c_backup_stored_bytes",
        "gauge",
        "Bytes the kept backups added to storage.",
        [({}, totals["stored"] or 0)],
    )
    out.metric(
        "a4c_backup_failures_total",
        "counter",
        "Backups that failed.",
        [({}, by_status.get(Backup.Status.FAILED, 0))],
    )
    restores = dict(RestoreRun.objects.values_list("status").annotate(n=Count("id")))
    out.metric(
        "a4c_restores_total",
        "counter",
        "Restores by how they ended.",
        [({"status": s}, restores.get(s, 0)) for s in RestoreRun.Status.values],
    )
    lock = OperationLock.objects.filter(pk=1).first()
    held = bool(lock and lock.kind)
    out.metric(
        "a4c_lock_held",
        "gauge",
        "1 while an operation holds the lock.",
        [({"kind": lock.kind if held else ""}, int(held))],
    )
    beat = SystemState.objects.filter(key="worker-heartbeat").first()
    beat_at = datetime.fromisoformat(beat.value["at"]) if beat and beat.value.get("at") else None
    out.metric(
        "a4c_worker_heartbeat_timestamp_seconds",
        "gauge",
        "When a worker last ran a scheduled task (0: never).",
        [({}, _ts(beat_at))],
    )
    return out.render()
