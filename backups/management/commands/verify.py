"""manage.py verify NAME: re-reads a backup and says whether it is whole (exit 5 when not)."""

from backups import operations
from backups.management import arguments, base


class Command(base.Command):
    help = (
        "Verify a backup: its snapshot exists and succeeded, and every stored file still has "
        "its hash. Exit code 5 when it does not."
    )

    def add_arguments(self, parser):
        parser.add_argument("backup", metavar="NAME", help="The backup's name (or id).")
        arguments.add_json_argument(parser, "the report")

    def handle(self, *args, **options):
        backup = arguments.resolve_backup(options["backup"])
        report = operations.verify_backup(backup.pk, arguments.actor())
        if options["json"]:
            self.emit_json({"backup": report.backup, "ok": report.ok, "problems": report.problems})
        elif report.ok:
            self.say(f"backup {report.backup} is whole: its snapshot and every file check out")
        else:
            for problem in report.problems:
                self.say(f"problem: {problem}")
        if not report.ok:
            count = len(report.problems)
            raise arguments.fail(
                f"backup {report.backup} failed verification: {count} problem"
                f"{'s' if count != 1 else ''}, first: {report.problems[0]}",
                arguments.VERIFY_FAILED,
            )
