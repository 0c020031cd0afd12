"""manage.py keys: the key this installation signs with, and the keys it trusts."""

from django.conf import settings

from backups.management import base
from backups.operations import signing
from backups.signing import parse_trusted_keys


class Command(base.Command):
    help = (
        "Print this installation's public signing key (it signs every record it writes and "
        "every archive it exports): put that line in A4C_TRUSTED_KEYS on the installations "
        "that sync from the same storage or import its archives. --trusted lists the keys "
        "trusted here, with their ids."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--trusted",
            action="store_true",
            help="Also list the keys in A4C_TRUSTED_KEYS and where this key is kept.",
        )

    def handle(self, *args, **options):
        own = signing.installation_key()
        self.say(own.public.line)
        if not options["trusted"]:
            return
        self.say(f"# this installation: {own.key_id} (secret in {settings.A4C_SIGNING_KEY_FILE})")
        trusted = parse_trusted_keys(settings.A4C_TRUSTED_KEYS)
        if not trusted:
            self.say("# no other installation is trusted (A4C_TRUSTED_KEYS is empty)")
        for key in trusted:
            self.say(f"# trusted: {key.key_id} {key.comment}".rstrip())
