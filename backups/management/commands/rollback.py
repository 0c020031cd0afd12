"""manage.py rollback RESTORE_ID: puts back the safety backup a restore took."""

from backups import operations
from backups.errors import NotFound
from backups.formatting import human_duration
from backups.management import arguments, base, follow, output, progress, prompts
from backups.models import RestoreRun, RunKind


class Command(base.Command):
    help = (
        "Undo a finished restore: restore the safety backup it took before changing anything, "
        "and remove the indices it created."
    )

    def add_arguments(self, parser):
        parser.add_argument("restore", metavar="RESTORE_ID", help="The restore's number.")
        parser.add_argument(
            "--wait-lock",
            type=arguments.positive_seconds,
            default=0.0,
            metavar="SECONDS",
            help="Wait up to this long for a running operation.",
        )
        arguments.add_yes_argument(parser, "Roll back")
        arguments.add_run_arguments(parser)

    def handle(self, *args, **options):
        number = arguments.restore_id(options["restore"])
        original = RestoreRun.objects.select_related("backup", "safety_backup").filter(pk=number)
        original = original.first()
        if original is None:
            raise NotFound(f"No restore run #{number}.")
        safety = original.safety_backup.name if original.safety_backup_id else "its safety backup"
        prompts.confirm(
            self.stderr,
            options,
            question=f"Put back {safety}, the state before restore #{number} of "
            f"{original.backup.name}? Type {number} to go on: ",
            expected=str(number),
            what=f"rolling back restore #{number}",
        )
        reporter = progress.Reporter.for_options(self.stdout, options)
        run = operations.request_rollback(number, arguments.actor(), wait=options["wait_lock"])
        reporter.message(f"restore #{run.pk} puts back {run.backup.name}")
        run = follow.carry_out(RunKind.RESTORE, run, options, reporter, self.stderr)
        output.report_outcome(
            self,
            run,
            options,
            lambda r: (
                f"restore #{number} rolled back by restore #{r.pk} from {r.backup.name} "
                f"in {human_duration(r.duration)}"
            ),
        )
