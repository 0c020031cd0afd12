"""manage.py offsite push NAME | pull NAME --identity KEYFILE | list [--json]: off-site copies
in the bucket of A4C_OFFSITE_URL."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from backups import operations
from backups.formatting import printable
from backups.management import arguments, base, output
from backups.management.archive_progress import ArchiveReporter
from backups.sizes import format_size

ACTIONS = ("push", "pull", "list")


class Command(base.Command):
    help = (
        "Off-site copies in the bucket of A4C_OFFSITE_URL (README, 'Off-site copies'): `push "
        "NAME` copies a succeeded set there now, encrypted to A4C_EXPORT_RECIPIENTS, resuming "
        "what an interrupted push sent; `pull NAME --identity KEYFILE` imports a set from its "
        "copy (a new machine restores from the bucket alone); `list` says which sets have a "
        "complete copy there, and when (the bucket's markers are the truth)."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        for sub in self._subparsers.values():
            sub.error = _one_line_error(sub)
        return parser

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="action", metavar="{" + ",".join(ACTIONS) + "}")
        commands.required = True
        self._subparsers = {
            "push": commands.add_parser("push", help="Copy a set off-site now, in this process."),
            "pull": commands.add_parser(
                "pull",
                help="Import a set from its copy off-site (then `restore` it), checked as "
                "`import` checks an archive.",
            ),
            "list": commands.add_parser("list", help="The sets with a complete copy off-site."),
        }
        pull = self._subparsers["pull"]
        pull.add_argument("backup", metavar="NAME", help="The set's name in the bucket.")
        pull.add_argument(
            "--identity",
            metavar="KEYFILE",
            required=True,
            help="The age key file (AGE-SECRET-KEY-1...) matching A4C_EXPORT_RECIPIENTS.",
        )
        pull.add_argument(
            "--foreign",
            action="store_true",
            help="Take in a copy no trusted key signed (A4C_TRUSTED_KEYS) as a foreign set.",
        )
        arguments.add_json_argument(pull, "the imported backup")
        self._subparsers["push"].add_argument(
            "backup", metavar="NAME", help="The backup's name (or id)."
        )
        arguments.add_json_argument(self._subparsers["push"], "what was copied")
        arguments.add_json_argument(self._subparsers["list"], "the copies")

    def handle(self, *args, **options):
        getattr(self, f"_{options['action']}")(options)

    def _push(self, options):
        backup = arguments.resolve_backup(options["backup"])
        report = operations.push_now(backup.pk, arguments.actor())
        if options["json"]:
            self.emit_json(report.as_result())
        elif report.already:
            self.say(
                f"backup {report.name} already has a complete copy off-site "
                f"(completed {report.completed})"
            )
        else:
            self.say(
                f"backup {report.name} copied off-site: {format_size(report.archive_size)} in "
                f"{report.segments} segment{'s' if report.segments != 1 else ''} "
                f"({report.segments_sent} sent, {report.segments_kept} kept from an earlier "
                f"push), sha256 {report.archive_sha256[:16]}.."
            )

    def _pull(self, options):
        pull_and_report(self, options["backup"], options)

    def _list(self, options):
        print_copies(self, options["json"])


def print_copies(command: base.Command, as_json: bool) -> None:
    """What the bucket holds, each set with its marker's facts (also `sync --offsite`); what
    comes from the bucket is escaped, and a copy that cannot be verified says why."""
    copies = operations.list_copies()
    if as_json:
        command.emit_json([copy.as_json() for copy in copies])
        return
    if not copies:
        command.say("no complete copy in the bucket yet")
        return
    width = max(len(printable(c.name)) for c in copies)
    command.say(f"{'NAME':<{width}}  {'COMPLETED':<20}  {'SIZE':>9}  HERE")
    for c in copies:
        name = printable(c.name)
        here = c.local_status or "not here"
        if c.problem:
            command.say(
                f"{name:<{width}}  {'-':<20}  {'-':>9}  {here}; "
                f"cannot be verified: {printable(c.problem)}"
            )
            continue
        if not c.trusted:
            here += f" (signed by {printable(c.installation)}, an untrusted installation)"
        command.say(
            f"{name:<{width}}  {printable(c.completed):<20}  "
            f"{format_size(c.archive_size):>9}  {here}"
        )


def pull_and_report(command: base.Command, name: str, options, url: str | None = None) -> None:
    """Imports a set from the bucket and says so (also `import s3://...`)."""
    reporter = ArchiveReporter(command.stderr, "pulling", quiet=options["json"])
    backup = operations.pull_copy(
        name,
        arguments.actor(),
        identity=Path(options["identity"]),
        foreign=options["foreign"],
        url=url,
        option="`import --foreign`" if url else "`offsite pull --foreign`",
        progress=reporter,
    )
    reporter.end()
    if options["json"]:
        command.emit_json(output.backup_summary(backup))
    else:
        command.say(output.imported_line(backup))


def _one_line_error(sub):
    def error(message: str):
        text = f"{message} (see `{sub.prog} --help`)"
        if sub.called_from_command_line:
            sub.exit(arguments.USAGE, f"error: {text}\n")
        raise CommandError(text, returncode=arguments.USAGE)

    return error
