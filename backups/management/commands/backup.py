"""manage.py backup: takes a backup of Elasticsearch and the data dir, here or on a worker."""

from backups import operations
from backups.formatting import human_duration
from backups.management import arguments, base, follow, output, progress
from backups.models import Backup, RunKind
from backups.sizes import format_size


class Command(base.Command):
    help = (
        "Back up A4C's Elasticsearch indices and its data dir. Runs in this process unless "
        "--queue; exit codes: 0 done, 1 failed, 2 bad input, 3 another operation runs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", help="Backup name (lowercase); default backup-DATE-TIME.")
        parser.add_argument("--description", default="", help="A note shown with the backup.")
        parser.add_argument(
            "--unique",
            action="store_true",
            help="If --name is taken, add the date and time to it instead of refusing.",
        )
        parser.add_argument(
            "--index",
            dest="indices",
            action="append",
            default=[],
            metavar="PATTERN",
            help="Back up only these indices (repeatable; wildcards allowed).",
        )
        what = parser.add_mutually_exclusive_group()
        what.add_argument(
            "--no-elasticsearch",
            "--files-only",
            dest="no_es",
            action="store_true",
            help="Back up the data dir only.",
        )
        what.add_argument(
            "--no-files",
            "--elasticsearch-only",
            dest="no_files",
            action="store_true",
            help="Back up Elasticsearch only.",
        )
        parser.add_argument(
            "--wait-lock",
            type=arguments.positive_seconds,
            default=0.0,
            metavar="SECONDS",
            help="If another operation runs, wait up to this long for it instead of failing.",
        )
        arguments.add_run_arguments(parser)

    def handle(self, *args, **options):
        name = options["name"]
        if name and options["unique"]:
            operations.validate_backup_name(name)
            if Backup.objects.filter(name=name).exists():
                name = operations.default_backup_name(name)
        reporter = progress.Reporter.for_options(self.stdout, options)
        request = operations.BackupRequest(
            name=name or "",
            description=options["description"],
            include_elasticsearch=not options["no_es"],
            include_files=not options["no_files"],
            indices=tuple(options["indices"]),
        )
        backup = operations.request_backup(request, arguments.actor(), wait=options["wait_lock"])
        reporter.message(f"backing up to {backup.name} ({_what(backup)})")
        backup = follow.carry_out(RunKind.BACKUP, backup, options, reporter, self.stderr)
        output.report_outcome(self, backup, options, _done)


def _what(backup) -> str:
    parts = []
    if backup.include_elasticsearch:
        patterns = ", ".join(backup.index_patterns)
        parts.append(f"indices {patterns}" if patterns else "Elasticsearch")
    if backup.include_files:
        parts.append("the data dir")
    return " and ".join(parts)


def _done(backup) -> str:
    held = []
    if backup.include_elasticsearch:
        held.append(f"{backup.index_count} indices ({backup.document_count} documents)")
    if backup.include_files:
        held.append(
            f"{backup.file_count} files ({format_size(backup.file_bytes)}, "
            f"{format_size(backup.new_bytes)} new in the storage)"
        )
    took = human_duration(backup.duration)
    return f"backup {backup.name} succeeded in {took}: {', '.join(held) or 'nothing to hold'}"
