"""manage.py restore NAME: puts a backup back, after showing the plan and asking."""

from backups import operations, selectors
from backups.errors import NotFound
from backups.formatting import human_duration
from backups.management import arguments, base, follow, output, progress, prompts
from backups.models import Backup, RestoreRun, RunKind
from backups.operations.plan import Plan
from backups.sizes import format_size

SERIES_SUFFIX = r"-\d{8}-\d{6}(-\d+)?"


class Command(base.Command):
    help = (
        "Restore a backup over the current Elasticsearch indices and data dir. Shows the plan "
        "and asks first (--yes to skip); takes a safety backup of what it overwrites, so a "
        "failed restore rolls back by itself."
    )

    def add_arguments(self, parser):
        parser.add_argument("backup", metavar="NAME", help="The backup's name (or id).")
        parser.add_argument(
            "--scope",
            choices=RestoreRun.Scope.values,
            help="all, indices (with --index), elasticsearch, or files; by default "
            "whatever the backup holds.",
        )
        parser.add_argument(
            "--index",
            dest="indices",
            action="append",
            default=[],
            metavar="NAME",
            help="Restore only this index (repeatable); implies --scope indices.",
        )
        parser.add_argument(
            "--merge",
            action="store_true",
            help="Only add and overwrite files; by default the data dir mirrors the backup.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the plan; change nothing."
        )
        parser.add_argument(
            "--no-safety-backup",
            action="store_true",
            help="Skip the safety backup (a failed restore can then not be rolled back).",
        )
        parser.add_argument(
            "--rename-pattern",
            default="",
            metavar="REGEX",
            help="Restore indices under new names: a regex on the index name.",
        )
        parser.add_argument(
            "--rename-replacement",
            default="",
            metavar="TEXT",
            help="The new name, with $1 for the pattern's first group.",
        )
        parser.add_argument(
            "--newest",
            action="store_true",
            help="NAME names a series: restore the newest succeeded backup named NAME or "
            "NAME-DATE-TIME (as `backup --unique` names them).",
        )
        parser.add_argument(
            "--other-cluster",
            action="store_true",
            help="The backup was taken on another Elasticsearch cluster (a new machine after a "
            "disaster): restore into this one all the same.",
        )
        parser.add_argument(
            "--foreign",
            action="store_true",
            help="The backup is a foreign set (no key trusted here signed it): restore it "
            "all the same.",
        )
        parser.add_argument(
            "--keep-owners",
            action="store_true",
            help="A set from elsewhere (imported, or found by sync) keeps the owners and modes "
            "its manifest records, set-id bits included; by default its files get the data "
            "dir's owner, lose set-id and world-writable bits, and the data dir keeps its own.",
        )
        parser.add_argument(
            "--wait-lock",
            type=arguments.positive_seconds,
            default=0.0,
            metavar="SECONDS",
            help="Wait up to this long for a running operation.",
        )
        arguments.add_yes_argument(parser, "Restore")
        arguments.add_run_arguments(parser)

    def handle(self, *args, **options):
        try:
            backup = find(options)
        except NotFound:
            # A fresh install, or a set another console took: the storage may describe it.
            report = operations.sync_catalog(arguments.actor())
            if report.refused:
                self.warn(
                    f"sync refused {len(report.refused)} record(s) of the backup storage "
                    "(`manage.py sync` says why)"
                )
            if not report.imported:
                raise
            self.stderr.write(
                f"imported from the backup storage by sync: {', '.join(report.imported)}"
            )
            backup = find(options)
        if options["rename_replacement"] and not options["rename_pattern"]:
            raise arguments.fail("--rename-replacement needs --rename-pattern", arguments.USAGE)
        scope = options["scope"] or ("indices" if options["indices"] else default_scope(backup))
        if options["indices"] and scope != "indices":
            raise arguments.fail(
                f"--index restores chosen indices: it cannot go with --scope {scope}",
                arguments.USAGE,
            )
        request = operations.RestoreRequest(
            backup_id=backup.pk,
            scope=scope,
            indices=tuple(options["indices"]),
            file_mode="merge" if options["merge"] else "mirror",
            rename_pattern=options["rename_pattern"],
            rename_replacement=options["rename_replacement"],
            safety_backup=not options["no_safety_backup"],
            other_cluster=options["other_cluster"],
            foreign=options["foreign"],
            keep_owners=options["keep_owners"],
        )
        # once: the confirmed plan is the one run, here (what it found is kept for the staging)
        at_once = not (options["dry_run"] or options.get("queue"))
        plan = operations.plan_restore(request, at_once=at_once)
        if options["dry_run"]:
            if options["json"]:
                self.emit_json({"dry_run": True, "plan": plan.to_json()})
            else:
                self.say("\n".join(plan_lines(plan)))
                self.say("dry run: nothing was changed")
            return
        what = f"restoring {backup.name}"
        prompts.can_confirm(options, what)
        if not options["json"]:
            self.say("\n".join(plan_lines(plan)))
        if options["no_safety_backup"]:
            self.stderr.write("warning: no safety backup: a failed restore cannot roll back")
        prompts.confirm(
            self.stderr,
            options,
            question=f"Restore {backup.name} over the current data? Type its name to go on: ",
            expected=backup.name,
            what=what,
        )
        reporter = progress.Reporter.for_options(self.stdout, options)
        run = operations.request_restore(
            request, arguments.actor(), plan=plan, confirm=backup.name, wait=options["wait_lock"]
        )
        reporter.message(f"restore #{run.pk} of {backup.name} starts")
        run = follow.carry_out(RunKind.RESTORE, run, options, reporter, self.stderr)
        output.report_outcome(self, run, options, done)


def find(options: dict) -> Backup:
    backup = (
        selectors.newest_of_series(options["backup"], SERIES_SUFFIX) if options["newest"] else None
    )
    return backup or arguments.resolve_backup(options["backup"])


def default_scope(backup: Backup) -> str:
    """Everything the backup holds: a files-only backup restores files, and so on."""
    if backup.include_elasticsearch and not backup.include_files:
        return RestoreRun.Scope.ELASTICSEARCH
    if backup.include_files and not backup.include_elasticsearch:
        return RestoreRun.Scope.FILES
    return RestoreRun.Scope.ALL


def done(run) -> str:
    text = f"restore #{run.pk} of {run.backup.name} succeeded in {human_duration(run.duration)}"
    if run.safety_backup_id:
        text += (
            f"; safety backup {run.safety_backup.name} holds what was there before "
            f"(`manage.py rollback {run.pk}` puts it back)"
        )
    return text


def plan_lines(plan: Plan) -> list[str]:
    """A restore plan as a person reads it before saying yes."""
    lines = [f"restore of backup {plan.backup} (scope {plan.scope})"]
    if plan.other_cluster:
        lines.append(f"other cluster: {plan.other_cluster}")
    if plan.foreign:
        lines.append(f"foreign: {plan.foreign}")
    rows = plan.indices
    if rows:
        width = max(len(r.target) for r in rows)
        lines.append(f"Elasticsearch: {len(rows)} indices")
        for row in rows:
            now = "absent" if row.docs_now is None else f"{row.docs_now} documents now"
            after = "" if row.action == "remove" else f" -> {row.docs_in_backup} from the backup"
            source = f" (from {row.name})" if row.name != row.target else ""
            lines.append(f"  {row.action:<8} {row.target:<{width}}  {now}{after}{source}")
    files = plan.files
    if files:
        verb = (
            "mirror: the data dir becomes the backup's"
            if files.mode == "mirror"
            else ("merge: files are added and overwritten, none removed")
        )
        lines.append(f"Files ({verb}):")
        if files.creates_data_dir:
            lines.append(f"  {files.creates_data_dir}")
        for kind in ("added", "changed", "removed", "unchanged"):
            size = format_size(getattr(files, f"{kind}_bytes"))
            lines.append(f"  {kind:<9} {files.described(kind)} ({size})")
        if plan.owners_mapped:
            lines.append(
                "  owners: the data dir's (a set from elsewhere: no set-id or world-writable "
                "bits; the data dir keeps its own owner and mode; --keep-owners keeps the "
                "recorded ones)"
            )
        else:
            lines.append("  owners: as the backup records them")
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    return lines
