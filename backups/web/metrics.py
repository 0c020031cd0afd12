"""/metrics: the rows, which are the truth, read at each scrape by a prometheus_client collector.

prometheus_client writes the text format (exact values: a timestamp or a byte count reads back
to the second and the byte). Queries are aggregates, so a scrape costs the same with ten or
ten thousand backups kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from backups import selectors
from backups.models import Backup, Policy, RestoreRun

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _ts(moment: datetime | None) -> float:
    return moment.timestamp() if moment else 0.0


def _gauge(name: str, help_text: str, labels: list[str], samples) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=labels)
    for label_values, value in samples:
        family.add_metric(label_values, value)
    return family


class RowsCollector:
    """Reads the rows at each scrape; holds no state of its own."""

    def collect(self) -> Iterator[Metric]:
        yield from self._policies()
        yield from self._backups()
        yield from self._restores_lock_and_worker()
        yield from self._drills()

    def _policies(self) -> Iterator[Metric]:
        policies = list(Policy.objects.all())
        yield _gauge(
            "a4c_backup_policy_last_success_timestamp_seconds",
            "When the policy's last backup succeeded (0: never).",
            ["policy"],
            [([p.name], _ts(p.last_success_at)) for p in policies],
        )
        yield _gauge(
            "a4c_backup_policy_last_failure_timestamp_seconds",
            "When the policy's last backup failed (0: never).",
            ["policy"],
            [([p.name], _ts(p.last_failure_at)) for p in policies],
        )
        yield _gauge(
            "a4c_backup_policy_last_duration_seconds",
            "How long the policy's last good backup took.",
            ["policy"],
            [([p.name], p.last_duration_seconds or 0) for p in policies],
        )
        yield _gauge(
            "a4c_backup_policy_paused",
            "1 when the policy is paused.",
            ["policy"],
            [([p.name], int(p.paused)) for p in policies],
        )

    def _backups(self) -> Iterator[Metric]:
        newest = selectors.newest_good_backup()
        yield _gauge(
            "a4c_backup_last_success_timestamp_seconds",
            "When the newest good backup finished (0: none).",
            [],
            [([], _ts(newest.finished_at if newest else None))],
        )
        if newest:
            for name, help_text, value in (
                ("a4c_backup_last_files", "Files in the newest good backup.", newest.file_count),
                (
                    "a4c_backup_last_bytes",
                    "Bytes of files in the newest good backup.",
                    newest.file_bytes,
                ),
                (
                    "a4c_backup_last_new_bytes",
                    "Bytes the newest good backup added to storage.",
                    newest.new_bytes,
                ),
            ):
                yield _gauge(name, help_text, ["backup"], [([newest.name], value)])
        by_status = selectors.backups_by_status()
        yield _gauge(
            "a4c_backups",
            "Backups by status.",
            ["status"],
            [([s], by_status.get(s, 0)) for s in Backup.Status.values],
        )
        yield _gauge(
            "a4c_backup_stored_bytes",
            "Bytes the kept backups added to storage.",
            [],
            [([], selectors.stored_bytes())],
        )
        failures = CounterMetricFamily("a4c_backup_failures", "Backups that failed.")
        failures.add_metric([], by_status.get(Backup.Status.FAILED, 0))
        yield failures

    def _restores_lock_and_worker(self) -> Iterator[Metric]:
        restores = selectors.restores_by_status()
        family = CounterMetricFamily(
            "a4c_restores", "Restores by how they ended.", labels=["status"]
        )
        for status in RestoreRun.Status.values:
            family.add_metric([status], restores.get(status, 0))
        yield family
        lock = selectors.lock_holder()
        held = lock is not None
        yield _gauge(
            "a4c_lock_held",
            "1 while an operation holds the lock.",
            ["kind"],
            [([lock.kind if held else ""], int(held))],
        )
        at = selectors.worker_heartbeat()
        yield _gauge(
            "a4c_worker_heartbeat_timestamp_seconds",
            "When a worker last ran a scheduled task (0: never).",
            [],
            [([], _ts(at))],
        )

    def _drills(self) -> Iterator[Metric]:
        last = selectors.last_drill()
        proven = selectors.newest_proven_backup()
        result = (last.result or {}) if last else {}
        yield _gauge(
            "a4c_drill_last_timestamp_seconds",
            "When the last restore drill ended (0: never).",
            [],
            [([], _ts(last.finished_at if last else None))],
        )
        yield _gauge(
            "a4c_drill_last_passed",
            "1 when the last restore drill passed, 0 when it failed or could not run.",
            ["backup", "outcome"],
            [([last.backup.name, selectors.drill_outcome(last)], int(last.status == "succeeded"))]
            if last
            else [],
        )
        yield _gauge(
            "a4c_drill_last_restore_seconds",
            "The last restore drill's measured time to restore, by part (0: not measured).",
            ["part"],
            [
                ([part], result.get(f"{part}_seconds") or 0)
                for part in ("elasticsearch", "files", "restore")
            ]
            if last
            else [],
        )
        yield _gauge(
            "a4c_drill_proven_timestamp_seconds",
            "When the newest backup proven restorable was proven by a drill (0: none).",
            ["backup"],
            [([proven.backup.name], _ts(proven.finished_at))] if proven else [],
        )


def prometheus_text() -> bytes:
    # A registry of our own: the process and platform collectors of the default one would
    # describe the web worker that answered, not the backups.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RowsCollector())
    return generate_latest(registry)
