"""manage.py drill [NAME | --latest]: proves a backup restorable, and measures the restore."""

from backups import operations, selectors
from backups.management import arguments, base, follow


class Command(base.Command):
    help = (
        "Run a restore drill: restore a backup's indices under hidden names (on the scratch "
        "cluster of A4C_DRILL_ES_URLS when set) and its files into a scratch dir, "
        "check them against what the backup recorded, time it, remove them. "
        "Nothing Alien4Cloud reads changes. Exit code 5 when the set does not restore as "
        "recorded."
    )

    def add_arguments(self, parser):
        parser.add_argument("backup", nargs="?", metavar="NAME", help="The backup's name (or id).")
        parser.add_argument("--latest", action="store_true", help="Drill the newest good backup.")
        parser.add_argument(
            "--wait-lock",
            type=arguments.positive_seconds,
            default=0.0,
            metavar="SECONDS",
            help="Wait this long for another operation to free the lock.",
        )
        arguments.add_json_argument(parser, "the report")

    def handle(self, *args, **options):
        if bool(options["backup"]) == bool(options["latest"]):
            raise arguments.fail("name one backup, or give --latest", arguments.USAGE)
        if options["latest"]:
            backup = selectors.newest_good_backup()
            if backup is None:
                raise arguments.fail("there is no good backup to drill", arguments.NOT_FOUND)
        else:
            backup = arguments.resolve_backup(options["backup"])
        job = operations.request_drill(backup.pk, arguments.actor(), wait=options["wait_lock"])
        with follow.cancel_on_interrupt("drill", job.pk, self.stderr):
            report = operations.drill_now(job.pk)
        if options["json"]:
            self.emit_json({"drill": job.pk, **report.as_result()})
        else:
            for line in describe(report):
                self.say(line)
        if not report.passed:
            count = len(report.problems)
            raise arguments.fail(
                f"backup {report.backup} failed its restore drill: {count} problem"
                f"{'s' if count != 1 else ''}, first: {report.problems[0]}",
                arguments.VERIFY_FAILED,
            )


def describe(report: operations.DrillReport) -> list[str]:
    lines = []
    if report.elasticsearch_seconds is not None:
        where = f" on the {report.restored_in}" if report.restored_in.startswith("scratch") else ""
        lines.append(
            f"elasticsearch: {report.indices} indices, {report.documents:,} documents restored "
            f"in {report.elasticsearch_seconds:.1f} s{where}"
        )
    if report.files_seconds is not None:
        lines.append(
            f"files: {report.files:,} files, {report.file_bytes:,} bytes restored in "
            f"{report.files_seconds:.1f} s"
        )
    lines += [f"problem: {problem}" for problem in report.problems]
    if report.passed:
        lines.append(
            f"backup {report.backup} passed its restore drill: measured restore time "
            f"{report.restore_seconds:.1f} s"
        )
    return lines
