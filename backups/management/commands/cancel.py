"""manage.py cancel backup|restore ID: asks a running operation to stop."""

from backups import operations
from backups.management import arguments, base, output, progress
from backups.models import RunKind


class Command(base.Command):
    help = (
        "Cancel a pending or running backup or restore. A running one stops at its next check "
        "(a restore then puts the data back from its safety backup)."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=[RunKind.BACKUP, RunKind.RESTORE])
        parser.add_argument("run", metavar="ID", help="Restore number, or backup name or id.")
        arguments.add_json_argument(parser, "the run")

    def handle(self, *args, **options):
        kind = options["kind"]
        if kind == RunKind.BACKUP:
            run_id = arguments.resolve_backup(options["run"]).pk
        else:
            run_id = arguments.restore_id(options["run"])
        run = operations.cancel(kind, run_id, arguments.actor())
        if options["json"]:
            self.emit_json(output.summary(run))
        elif run.status == "cancelled":
            self.say(f"{progress.label(run)} cancelled before it started")
        else:
            self.say(
                f"asked {progress.label(run)} to stop; it does at its next check "
                f"(`manage.py show {output.backup_name_of(run)}` tells when)"
            )
