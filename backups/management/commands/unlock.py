"""manage.py unlock: lifts a sign-in lock before its cool-off ends, in the audit history."""

from django.core.management.base import BaseCommand, CommandError

from backups.audit import Actor
from backups.operations.sign_in_locks import lift


class Command(BaseCommand):
    help = (
        "Lift the sign-in lock of a user name and/or an address (after A4C_LOGIN_FAILURE_LIMIT "
        "failures). The lift is audited under your OS user."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", default="", help="The user name that was locked.")
        parser.add_argument("--address", default="", help="The client address that was locked.")

    def handle(self, *args, **options):
        username, address = options["user"].strip(), options["address"].strip()
        if not username and not address:
            raise CommandError("name a --user, an --address, or both", returncode=2)
        removed = lift(Actor.command_line(), username=username, address=address)
        who = " and ".join(part for part in (username, address) if part)
        if removed:
            self.stdout.write(f"Lifted: {who} may sign in again ({removed} failure records).")
        else:
            self.stdout.write(f"{who} had no failures recorded: nothing to lift.")
