"""manage.py backups: lists the backups, newest first."""

from backups.formatting import human_duration
from backups.management import arguments, base, output
from backups.models import Backup
from backups.sizes import format_size


class Command(base.Command):
    help = "List backups, newest first (deleted ones only with --all or --status deleted)."

    def add_arguments(self, parser):
        parser.add_argument("--status", choices=Backup.Status.values, help="Only this status.")
        parser.add_argument("--all", action="store_true", help="Include deleted backups.")
        parser.add_argument("--limit", type=int, default=0, metavar="N", help="Only the N newest.")
        arguments.add_json_argument(parser, "the list")

    def handle(self, *args, **options):
        backups = Backup.objects.order_by("-created_at", "-id")
        if options["status"]:
            backups = backups.filter(status=options["status"])
        elif not options["all"]:
            backups = backups.exclude(status=Backup.Status.DELETED)
        if options["limit"] > 0:
            backups = backups[: options["limit"]]
        if options["json"]:
            self.emit_json([output.backup_summary(b) for b in backups])
            return
        rows = [_row(b) for b in backups]
        if not rows:
            self.say("no backups yet: take one with `manage.py backup`")
            return
        header = (
            "ID",
            "NAME",
            "STATUS",
            "CREATED",
            "TOOK",
            "INDICES",
            "DOCS",
            "FILES",
            "SIZE",
            "BY",
        )
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.say("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _row(backup: Backup) -> tuple:
    es = backup.include_elasticsearch
    files = backup.include_files
    status = backup.status + (" (pinned)" if backup.pinned else "")
    status += " (foreign)" if backup.foreign else ""
    return (
        backup.pk,
        backup.name,
        status,
        output.local_time(backup.created_at)[:16],
        human_duration(backup.duration) if backup.finished_at else "",
        backup.index_count if es else "-",
        backup.document_count if es else "-",
        backup.file_count if files else "-",
        format_size(backup.file_bytes) if files else "-",
        f"{backup.actor} ({backup.trigger})",
    )
