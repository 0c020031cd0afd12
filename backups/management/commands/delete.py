"""manage.py delete NAME: removes a backup's snapshot and the files no other backup uses."""

from backups import operations
from backups.management import arguments, base, output, prompts


class Command(base.Command):
    help = "Delete a backup: its snapshot, its manifest, and the stored files only it used."

    def add_arguments(self, parser):
        parser.add_argument("backup", metavar="NAME", help="The backup's name (or id).")
        arguments.add_yes_argument(parser, "Delete")
        arguments.add_json_argument(parser, "the deleted backup")

    def handle(self, *args, **options):
        backup = arguments.resolve_backup(options["backup"])
        if backup.pinned and not options["json"]:
            self.warn(f"{backup.name} is pinned (retention would keep it)")
        prompts.confirm(
            self.stderr,
            options,
            question=f"Delete backup {backup.name} ({backup.status}, "
            f"{output.local_time(backup.created_at)})? Type its name to go on: ",
            expected=backup.name,
            what=f"deleting {backup.name}",
        )
        backup = operations.delete_backup(backup.pk, arguments.actor())
        for note in operations.collection_notes(backup.pk):
            self.warn(note)
        if options["json"]:
            self.emit_json(output.backup_summary(backup))
        else:
            self.say(f"deleted backup {backup.name}")
