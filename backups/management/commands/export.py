"""manage.py export NAME --to FILE: one backup set in one portable archive, for off-site."""

from pathlib import Path

from django.conf import settings

from backups import operations
from backups.management import arguments, base
from backups.management.archive_progress import ArchiveReporter
from backups.sizes import format_size


class Command(base.Command):
    help = (
        "Write a backup set into one compressed archive: its snapshot's files, its stored "
        "files, its manifest and record, with a checksum of everything. Encrypted with age "
        "to the public keys in A4C_EXPORT_RECIPIENTS; `manage.py import FILE` on another "
        "machine makes it restorable there."
    )

    def add_arguments(self, parser):
        parser.add_argument("backup", metavar="NAME", help="The backup's name (or id).")
        parser.add_argument("--to", required=True, metavar="FILE", help="The archive to write.")
        parser.add_argument(
            "--recipient",
            action="append",
            default=None,
            metavar="AGE_PUBLIC_KEY",
            help="Encrypt to this age public key (repeatable); by default A4C_EXPORT_RECIPIENTS.",
        )
        arguments.add_json_argument(parser, "what was written")

    def handle(self, *args, **options):
        backup = arguments.resolve_backup(options["backup"])
        recipients = options["recipient"]
        if recipients is None:
            recipients = settings.A4C_EXPORT_RECIPIENTS
        if not recipients:
            self.stderr.write(
                "warning: A4C_EXPORT_RECIPIENTS is empty: the archive is NOT encrypted, and "
                "Alien4Cloud's indices hold credentials"
            )
        reporter = ArchiveReporter(self.stderr, "exporting", quiet=options["json"])
        header = operations.export_backup(
            backup.pk,
            Path(options["to"]),
            arguments.actor(),
            recipients=recipients,
            progress=reporter,
        )
        reporter.end()
        size = Path(options["to"]).stat().st_size
        if options["json"]:
            self.emit_json(
                {
                    "backup": header.name,
                    "file": options["to"],
                    "size": size,
                    "encrypted": bool(recipients),
                    "blobs": header.blobs,
                    "repository_files": header.repository_files,
                }
            )
        else:
            self.say(
                f"backup {header.name} exported to {options['to']} ({format_size(size)}, "
                f"{'encrypted' if recipients else 'NOT encrypted'})"
            )
