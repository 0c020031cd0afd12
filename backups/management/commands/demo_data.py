"""manage.py demo_data: fills Elasticsearch and the data dir with a made-up A4C installation."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from backups.demo import generator as demo
from backups.errors import BackupError


class Command(BaseCommand):
    help = (
        "Creates a made-up Alien4Cloud installation to try backups and restores on: about 30 "
        "A4C indices with their documents, and a data dir of csars, artifacts, plugins and git "
        "repositories. Safe to run twice: a second run leaves existing demo data alone."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--size",
            default="small",
            help="small (~300 files, seconds), medium (~10k files, 100 MiB), large (~50k files, "
            "1 GiB), or a byte count such as 500M or 5G. Default: small.",
        )
        parser.add_argument(
            "--files", type=int, help="How many files, instead of the default for --size."
        )
        parser.add_argument("--prefix", default="", help="Put this before every index name.")
        parser.add_argument("--seed", type=int, default=1, help="Same seed, same data. Default: 1.")
        parser.add_argument("--data-dir", help="Where to write the files. Default: A4C_DATA_DIR.")
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete the demo indices (prefix + A4C names) and everything in the data dir "
            "first. Only what the generator made: other indices or data dirs are refused.",
        )

    def handle(self, *args, **options):
        data_dir = Path(options["data_dir"] or settings.A4C_DATA_DIR)
        prefix = options["prefix"]
        try:
            size = demo.parse_size(options["size"])
            if not options["reset"]:
                indices, files = demo.present(data_dir, prefix)
                if len(indices) == len(demo.index_names(prefix)) and files:
                    self.stdout.write(
                        f"demo data already present ({len(indices)} indices, {files} files); "
                        "use --reset to regenerate"
                    )
                    return
            summary = demo.generate(
                data_dir,
                size=size,
                files=options["files"],
                prefix=prefix,
                seed=options["seed"],
                reset=options["reset"],
                progress=self._progress if options["verbosity"] >= 2 else None,
            )
        except BackupError as exc:
            raise CommandError(exc.message, returncode=exc.exit_code) from exc
        self.stdout.write(self.style.SUCCESS(f"demo data: {summary}"))

    def _progress(self, phase: str, done: int, total: int) -> None:
        self.stderr.write(f"{phase}: {done}/{total}")
