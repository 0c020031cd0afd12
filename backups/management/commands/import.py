"""manage.py import FILE: makes an exported backup set restorable on this machine."""

from pathlib import Path

from backups import operations
from backups.management import arguments, base, output
from backups.management.archive_progress import ArchiveReporter


class Command(base.Command):
    help = (
        "Import an archive written by `manage.py export`: its files go into this backup "
        "storage, its snapshot into a repository directory of its own beside "
        "A4C_ES_REPOSITORY_PATH; then it is listed, restorable and verifiable. An encrypted "
        "archive needs --identity; a wrong key, a damaged archive or a name taken here is "
        "refused before anything is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", metavar="FILE", help="The archive to import.")
        parser.add_argument(
            "--identity",
            metavar="KEYFILE",
            help="The age key file (AGE-SECRET-KEY-1...) that opens an encrypted archive.",
        )
        arguments.add_json_argument(parser, "the imported backup")

    def handle(self, *args, **options):
        reporter = ArchiveReporter(self.stderr, "importing", quiet=options["json"])
        identity = Path(options["identity"]) if options["identity"] else None
        backup = operations.import_archive(
            Path(options["archive"]), arguments.actor(), identity=identity, progress=reporter
        )
        reporter.end()
        if options["json"]:
            self.emit_json(output.backup_summary(backup))
        else:
            self.say(
                f"backup {backup.name} imported: restore it with `manage.py restore "
                f"{backup.name}` (add --other-cluster when it was taken on another cluster)"
            )
