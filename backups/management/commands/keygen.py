"""manage.py keygen KEYFILE: an age key pair for encrypted off-site archives."""

import os
from datetime import UTC, datetime
from pathlib import Path

from pyrage import x25519

from backups.management import arguments, base


class Command(base.Command):
    help = (
        "Write a new age secret key to KEYFILE (readable by its owner only) and print its "
        "public key: put the public key in A4C_EXPORT_RECIPIENTS where archives are written, "
        "and keep KEYFILE away from that machine, where archives are read."
    )

    def add_arguments(self, parser):
        parser.add_argument("keyfile", metavar="KEYFILE")

    def handle(self, *args, **options):
        path = Path(options["keyfile"])
        identity = x25519.Identity.generate()
        public = str(identity.to_public())
        text = (
            f"# created: {datetime.now(UTC).isoformat(timespec='seconds')}\n"
            f"# public key: {public}\n{identity}\n"
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise arguments.fail(
                f"{path} exists already: choose another file", arguments.USAGE
            ) from None
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.say(public)
