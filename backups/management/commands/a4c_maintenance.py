"""manage.py a4c_maintenance: Alien4Cloud's maintenance mode now, and clearing a stuck one."""

from backups.management import arguments, base, progress
from backups.operations import maintenance_mode


class Command(base.Command):
    help = (
        "Show Alien4Cloud's maintenance mode and the runs that could not disable it; "
        "`off` disables the maintenance this tool enabled (never someone else's)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "action",
            nargs="?",
            choices=("status", "off"),
            default="status",
            help="status (the default) or off.",
        )

    def handle(self, *args, **options):
        if options["action"] == "off":
            self.say(maintenance_mode.end_stuck_maintenance(arguments.actor()))
            return
        self.say(f"Alien4Cloud maintenance mode: {maintenance_mode.current_state()}")
        stuck = maintenance_mode.stuck_maintenance_runs()
        for run in stuck:
            self.say(f"stuck: {progress.label(run)}: {run.a4c_maintenance_note}")
        if stuck:
            raise arguments.fail(f"clear it with `{maintenance_mode.CLEAR_COMMAND}`")
