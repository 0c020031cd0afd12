"""manage.py delete NAME: removes a backup's snapshot and the files no other backup uses."""

from backups import operations
from backups.management import base as cli


class Command(cli.Command):
    help = "Delete a backup: its snapshot, its manifest, and the stored files only it used."

    def add_arguments(self, parser):
        parser.add_argument("backup", metavar="NAME", help="The backup's name (or id).")
        cli.add_yes_argument(parser, "Delete")
        self.add_json_argument(parser, "the deleted backup")

    def handle(self, *args, **options):
        backup = cli.resolve_backup(options["backup"])
        if backup.pinned and not options["json"]:
            self.stderr.write(f"warning: {backup.name} is pinned (retention would keep it)")
        self.confirm(
            options,
            question=f"Delete backup {backup.name} ({backup.status}, "
            f"{cli.local_time(backup.created_at)})? Type its name to go on: ",
            expected=backup.name,
            what=f"deleting {backup.name}",
        )
        backup = operations.delete_backup(backup.pk, cli.actor())
        if options["json"]:
            self.emit_json(cli.backup_summary(backup))
        else:
            self.say(f"deleted backup {backup.name}")
