"""manage.py sync: rebuilds the console's catalog from the backup storage and the repository."""

from backups import operations
from backups.formatting import printable
from backups.management import arguments, base
from backups.management.commands.offsite import print_copies


class Command(base.Command):
    help = (
        "Bring the list of backups in line with the backup storage (A4C_BACKUP_DIR): import "
        "the sets this console does not list (after a reinstall, or taken by another console), "
        "flag those that are gone, and bring back the audit history and policies. Safe to run "
        "any time; running it twice changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--foreign",
            action="store_true",
            default=None,
            help="Take records that no trusted key signed (A4C_TRUSTED_KEYS) in as foreign "
            "sets, instead of refusing them: they join no policy, never count as the newest "
            "backup, and restore only with --foreign (default: A4C_SYNC_FOREIGN).",
        )
        parser.add_argument(
            "--offsite",
            action="store_true",
            help="Sync nothing: list what the off-site bucket (A4C_OFFSITE_URL) holds, each "
            "set with its marker's facts, as `offsite list` does; `offsite pull NAME` imports "
            "one.",
        )
        arguments.add_json_argument(parser, "what it did")

    def handle(self, *args, **options):
        if options["offsite"]:
            print_copies(self, options["json"])
            return
        report = operations.sync_catalog(arguments.actor(), foreign=options["foreign"])
        if options["json"]:
            self.emit_json(report.as_json())
        else:
            for line in report_lines(report):
                self.say(line)
        if report.refused:
            raise arguments.fail(
                f"sync refused {len(report.refused)} record(s) of the backup storage, "
                f"the others are in: {report.problems[0]}",
                arguments.FAILED,
            )
        if report.problems:
            raise arguments.fail(
                f"sync found {len(report.problems)} problem(s): {report.problems[0]}",
                arguments.FAILED,
            )


def report_lines(report) -> list[str]:
    lines = [f"backup storage {report.storage}"]
    for label, names in (
        ("imported", report.imported),
        ("of which foreign (no trusted key signed them)", report.foreign),
        ("records signed again from this console's rows", report.resigned),
        ("gone from the storage", report.vanished),
        ("back in the storage", report.returned),
        ("refreshed", report.refreshed),
        ("policies imported (paused)", report.policies_imported),
    ):
        if names:
            lines.append(f"{label}: {', '.join(names)}")
    if report.refused:
        lines.append(
            f"refused: {len(report.refused)} record(s), not imported: "
            + ", ".join(printable(repr(n)) for n in report.refused)
        )
    if report.unchanged:
        lines.append(f"unchanged: {len(report.unchanged)} set(s) already listed")
    if report.events_imported:
        lines.append(f"audit events imported: {report.events_imported}")
    if not report.changed:
        lines.append("the catalog was up to date: nothing changed")
    lines += [f"problem: {p}" for p in report.problems]
    return lines
