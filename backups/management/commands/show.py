"""manage.py show NAME: everything about one backup, and the restores that used it."""

from backups import selectors
from backups.formatting import human_duration, measured_seconds
from backups.management import arguments, base, output
from backups.management.progress import counters
from backups.operations import signing
from backups.sizes import format_size


class Command(base.Command):
    help = "Show one backup: what it holds, how it went, and the restores that used it."

    def add_arguments(self, parser):
        parser.add_argument("backup", metavar="NAME", help="The backup's name (or id).")
        arguments.add_json_argument(parser, "the backup")

    def handle(self, *args, **options):
        backup = arguments.resolve_backup(options["backup"])
        restores = selectors.restores_protected_by(backup)
        if options["json"]:
            self.emit_json(
                {
                    **output.backup_summary(backup),
                    "restores": [output.restore_summary(r) for r in restores],
                    "last_drill": drill_summary(selectors.last_drill(backup)),
                }
            )
            return
        fields = described(backup)
        width = max(len(k) for k, _ in fields)
        for key, value in fields:
            if value not in ("", None):
                self.say(f"{key + ':':<{width + 1}} {value}")
        for warning in backup.warnings or []:
            self.say(f"warning: {warning}")
        indices = backup.indices or {}
        if indices and options["verbosity"] >= 2:
            self.say("indices:")
            for name, info in indices.items():
                self.say(f"  {name}  {info.get('docs', 0)} documents")
        if restores:
            self.say("restores:")
            for run in restores:
                role = (
                    "restored it"
                    if run.backup_id == backup.pk
                    else (f"(of {run.backup.name}) was protected by it")
                )
                self.say(
                    f"  #{run.pk} {role}: {run.status}, "
                    f"{output.local_time(run.created_at)} by {run.actor}"
                    + (f": {run.error_message}" if run.error_message else "")
                )


def described(backup) -> list[tuple[str, object]]:
    """The backup's lines, as (label, value): who, when, what it holds, its verdicts."""
    fields = [
        ("name", backup.name),
        ("id", backup.pk),
        ("status", backup.status + (" (pinned: retention keeps it)" if backup.pinned else "")),
        ("description", backup.description),
        ("foreign", signing.foreign_reason(backup)),
        ("signed by", backup.signed_by if not backup.foreign else ""),
        ("asked by", f"{backup.actor} ({backup.get_source_display()}, {backup.trigger})"),
        ("created", output.local_time(backup.created_at)),
        ("finished", output.local_time(backup.finished_at)),
        ("took", human_duration(backup.duration)),
        ("phase", backup.phase if backup.is_active else ""),
        ("progress", f"{backup.percent}% {counters(backup)}" if backup.is_active else ""),
        *held(backup),
    ]
    if backup.verified_at:
        verdict = "ok" if backup.verify_ok else "FAILED: " + "; ".join(backup.verify_problems[:3])
        fields.append(("verified", f"{output.local_time(backup.verified_at)}: {verdict}"))
    drill = selectors.last_drill(backup)
    if drill is not None:
        summary = drill_summary(drill)
        took = measured_seconds(summary["restore_seconds"])
        fields.append(
            (
                "last drill",
                f"{output.local_time(drill.finished_at)}: {summary['outcome']}"
                + (f", measured restore time {took}" if took else "")
                + (f" ({'; '.join(summary['problems'][:3])})" if summary["problems"] else ""),
            )
        )
    fields.append(("error", backup.error_message))
    return fields


def held(backup) -> list[tuple[str, object]]:
    """What the backup holds: its indices and snapshot, its files."""
    if backup.include_elasticsearch:
        fields = [
            (
                "elasticsearch",
                f"{backup.index_count} indices, {backup.document_count} "
                f"documents, snapshot {backup.snapshot_name or '-'} in "
                f"{backup.repository or '-'}",
            ),
            (
                "cluster",
                f"{backup.es_cluster_name} (Elasticsearch {backup.es_version})"
                if backup.es_version
                else "",
            ),
            ("index patterns", ", ".join(backup.index_patterns)),
        ]
    else:
        fields = [("elasticsearch", "not included")]
    if backup.include_files:
        fields.append(
            (
                "files",
                f"{backup.file_count} files, "
                f"{format_size(backup.file_bytes)} "
                f"({format_size(backup.new_bytes)} new in the storage)",
            )
        )
    else:
        fields.append(("files", "not included"))
    return fields


def drill_summary(job) -> dict | None:
    """The last drill of a backup, as `show --json` gives it."""
    if job is None:
        return None
    result = job.result or {}
    return {
        "drill": job.pk,
        "outcome": selectors.drill_outcome(job),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "restore_seconds": result.get("restore_seconds"),
        "problems": result.get("problems") or ([job.error_message] if job.error_message else []),
    }
