"""manage.py import FILE: makes an exported backup set restorable on this machine."""

from pathlib import Path

from backups import operations
from backups.errors import InvalidInput
from backups.management import arguments, base, output
from backups.management.archive_progress import ArchiveReporter
from backups.management.commands.offsite import pull_and_report


class Command(base.Command):
    help = (
        "Import an archive written by `manage.py export` (or a set's off-site copy, "
        "s3://BUCKET/PREFIX/NAME, as `offsite pull` does): its files go into this backup "
        "storage, its snapshot into a repository directory of its own beside "
        "A4C_ES_REPOSITORY_PATH; then it is listed, restorable and verifiable. An encrypted "
        "archive needs --identity; a wrong key, a damaged archive or a name taken here is "
        "refused before anything is written."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "archive",
            metavar="FILE",
            help="The archive to import, or s3://BUCKET/PREFIX/NAME for a set's off-site copy.",
        )
        parser.add_argument(
            "--identity",
            metavar="KEYFILE",
            help="The age key file (AGE-SECRET-KEY-1...) that opens an encrypted archive.",
        )
        parser.add_argument(
            "--foreign",
            action="store_true",
            help="Import an archive that no trusted key signed (A4C_TRUSTED_KEYS) as a foreign "
            "set: it joins no policy, never counts as the newest backup, and restores only "
            "with --foreign.",
        )
        arguments.add_json_argument(parser, "the imported backup")

    def handle(self, *args, **options):
        if options["archive"].startswith("s3://"):
            # A set's copy in an off-site bucket: read and checked as `offsite pull` does.
            if not options["identity"]:
                raise InvalidInput(
                    "an off-site copy is encrypted: give the key that opens it (--identity KEYFILE)"
                )
            url, name = operations.split_copy_url(options["archive"])
            pull_and_report(self, name, options, url=url)
            return
        reporter = ArchiveReporter(self.stderr, "importing", quiet=options["json"])
        identity = Path(options["identity"]) if options["identity"] else None
        backup = operations.import_archive(
            Path(options["archive"]),
            arguments.actor(),
            identity=identity,
            foreign=options["foreign"],
            progress=reporter,
        )
        reporter.end()
        if options["json"]:
            self.emit_json(output.backup_summary(backup))
        else:
            self.say(output.imported_line(backup))
