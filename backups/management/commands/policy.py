"""manage.py policy: backup schedules and their retention, and a test notification.

Subcommands: list, create, edit, run, retention and `notify test`. Each parses its options and
calls backups/operations (save_policy, set_paused, run_policy_now, retention_preview,
apply_retention, send_test_notification), as the console's policy pages do.
"""

from __future__ import annotations

import argparse
import itertools

from django.core.management.base import CommandError
from django.utils import timezone

from backups import operations
from backups.formatting import human_duration
from backups.management import arguments, base, follow, output, progress, prompts
from backups.models import Backup, Policy, RunKind
from backups.operations.names import index_name_problem
from backups.operations.notifications import send_test_notification, shown_target

ACTIONS = ("list", "create", "edit", "delete", "run", "retention", "notify")


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative: give 0 or more")
    return value


class Command(base.Command):
    help = (
        "Backup policies: list, create, edit (--pause, --resume), run one now, preview or apply "
        "its retention; `policy notify test` checks the notification channels. Exit codes: 0 "
        "done, 1 failed, 2 bad input, 3 another operation runs, 4 no such policy."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        for sub in self._subparsers.values():
            sub.error = _one_line_error(sub)  # "error: ..." and exit 2, as the main parser does
        return parser

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="action", metavar="{" + ",".join(ACTIONS) + "}")
        commands.required = True
        add = commands.add_parser
        self._subparsers = {
            "list": add("list", help="List the policies with their last and next runs."),
            "create": add("create", help="Create a policy."),
            "edit": add("edit", help="Change a policy; only the options given change."),
            "delete": add("delete", help="Remove a policy (asks first); its backups stay."),
            "run": add("run", help="Take the policy's backup now, in this process."),
            "retention": add("retention", help="Show what retention would delete; --apply."),
            "notify": add("notify", help="`notify test`: send a test notification."),
        }
        subs = self._subparsers
        arguments.add_json_argument(subs["list"], "the policies")
        subs["create"].add_argument("name", metavar="NAME")
        subs["create"].add_argument("--schedule", required=True, metavar="CRON", help=CRON_HELP)
        subs["edit"].add_argument("name", metavar="NAME", help="The policy's name or id.")
        subs["edit"].add_argument("--schedule", metavar="CRON", help=CRON_HELP)
        for name in ("create", "edit"):
            _policy_options(subs[name], editing=name == "edit")
            arguments.add_json_argument(subs[name], "the policy")
        subs["delete"].add_argument("name", metavar="NAME", help="The policy's name or id.")
        arguments.add_yes_argument(subs["delete"], "Delete")
        subs["run"].add_argument("name", metavar="NAME", help="The policy's name or id.")
        arguments.add_run_arguments(subs["run"])
        subs["retention"].add_argument("name", metavar="NAME", help="The policy's name or id.")
        subs["retention"].add_argument(
            "--apply", action="store_true", help="Delete what the preview lists (asks first)."
        )
        arguments.add_yes_argument(subs["retention"], "With --apply, delete")
        arguments.add_json_argument(subs["retention"], "the verdicts")
        subs["notify"].add_argument("what", choices=["test"])
        arguments.add_json_argument(subs["notify"], "the deliveries")

    def handle(self, *args, **options):
        getattr(self, f"_{options['action']}")(options)

    # --- list, create, edit ------------------------------------------------------------------
    def _list(self, options):
        policies = list(Policy.objects.all())
        if options["json"]:
            self.emit_json([policy_summary(p) for p in policies])
            return
        if not policies:
            self.say("no policy yet: `manage.py policy create NAME --schedule CRON` adds one")
            return
        width = max(len(p.name) for p in policies)
        cron = max(len(p.schedule) for p in policies)
        self.say(f"{'NAME':<{width}}  {'SCHEDULE':<{cron}}  {'NEXT RUN':<19}  LAST SUCCESS")
        for p in policies:
            upcoming = "paused" if p.paused else output.local_time(p.next_run_at)
            success = output.local_time(p.last_success_at) or "never"
            self.say(f"{p.name:<{width}}  {p.schedule:<{cron}}  {upcoming:<19}  {success}")
            if p.last_failure_at and (
                not p.last_success_at or p.last_failure_at > p.last_success_at
            ):
                message = p.last_failure_message or "no message"
                self.say(f"  last failure {output.local_time(p.last_failure_at)}: {message}")
            if p.drill_waiting:
                self.say(f"  {p.drill_waiting}")

    def _create(self, options):
        fields = _fields(options)
        fields["paused"] = bool(options["pause"])
        policy = operations.save_policy(arguments.actor(), None, name=options["name"], **fields)
        self._show_saved(policy, "created", options)

    def _edit(self, options):
        policy = find_policy(options["name"])
        fields = _fields(options)
        if not fields and not options["pause"] and not options["resume"]:
            raise arguments.fail(
                "nothing to change: give --schedule, --keep-last, --pause ... "
                "(`manage.py policy edit --help` lists them)",
                arguments.USAGE,
            )
        if fields:
            policy = operations.save_policy(arguments.actor(), policy.pk, **fields)
        if options["pause"] or options["resume"]:
            policy = operations.set_paused(policy.pk, bool(options["pause"]), arguments.actor())
        self._show_saved(policy, "saved", options)

    def _show_saved(self, policy: Policy, verb: str, options) -> None:
        warning = operations.schedule_warning(policy.schedule)
        if warning:
            self.warn(warning)
        if options["json"]:
            self.emit_json(policy_summary(policy))
            return
        upcoming = (
            "paused" if policy.paused else f"next run {output.local_time(policy.next_run_at)}"
        )
        self.say(f"policy {policy.name} {verb}: {policy.schedule}, {upcoming}")

    def _delete(self, options):
        policy = find_policy(options["name"])
        prompts.confirm(
            self.stderr,
            options,
            question=f"Delete policy {policy.name} ({policy.schedule})? Its backups stay. "
            "Type its name to go on: ",
            expected=policy.name,
            what=f"deleting policy {policy.name}",
        )
        name = operations.delete_policy(policy.pk, arguments.actor())
        self.say(f"policy {name} deleted; the backups it took stay")

    # --- run ---------------------------------------------------------------------------------
    def _run(self, options):
        policy = find_policy(options["name"])
        started = timezone.now()
        reporter = progress.Reporter.for_options(self.stdout, options)
        backup = operations.run_policy_now(policy.pk, arguments.actor())
        reporter.message(f"policy {policy.name}: backing up to {backup.name}")
        backup = follow.carry_out(RunKind.BACKUP, backup, options, reporter, self.stderr)
        output.report_outcome(self, backup, options, _done)
        if options["json"] or backup.status != Backup.Status.SUCCEEDED:
            return
        thinned = Backup.objects.filter(
            policy=policy, status=Backup.Status.DELETED, deleted_at__gte=started
        ).values_list("name", flat=True)
        if thinned:
            self.say(f"retention deleted {len(thinned)}: {', '.join(thinned)}")

    # --- retention ---------------------------------------------------------------------------
    def _retention(self, options):
        policy = find_policy(options["name"])
        now = timezone.now()
        verdicts = operations.retention_preview(policy.pk, now)
        going = [v for v in verdicts if v.delete]
        kept = [v for v in verdicts if not v.delete]
        if not options["apply"]:
            self._show_verdicts(policy, going, kept, options, preview=True)
            return
        deleted: list[str] = []
        if going:
            what = f"deleting {len(going)} backups of policy {policy.name}"
            prompts.can_confirm(options, what)
            if not options["json"]:
                self._show_verdicts(policy, going, kept, options, preview=False)
            prompts.confirm(
                self.stderr,
                options,
                question=f"Delete these {len(going)} backups? Type yes to go on: ",
                expected="yes",
                what=what,
            )
            deleted = operations.apply_retention(policy.pk, arguments.actor(), now)
        if options["json"]:
            self.emit_json(
                {"policy": policy.name, "deleted": deleted, "kept": [_verdict(v) for v in kept]}
            )
        elif deleted:
            self.say(f"deleted {len(deleted)}: {', '.join(deleted)}")
        else:
            self.say(f"nothing to delete; {len(kept)} backups kept")

    def _show_verdicts(self, policy, going, kept, options, *, preview: bool) -> None:
        if options["json"]:
            self.emit_json(
                {
                    "policy": policy.name,
                    "preview": preview,
                    "delete": [_verdict(v) for v in going],
                    "keep": [_verdict(v) for v in kept],
                }
            )
            return
        if not going and not kept:
            self.say(f"policy {policy.name} has no succeeded backup yet: nothing to delete")
            return
        verb = "would delete" if preview else "deleting"
        self.say(f"policy {policy.name}: {verb} {len(going)}" + (":" if going else ""))
        width = max((len(v.backup.name) for v in itertools.chain(going, kept)), default=0)
        for v in going:
            self.say(
                f"  {v.backup.name:<{width}}  {output.local_time(v.backup.created_at)}  {v.reason}"
            )
        self.say(f"keeping {len(kept)}" + (":" if kept else ""))
        for v in kept:
            self.say(
                f"  {v.backup.name:<{width}}  {output.local_time(v.backup.created_at)}  {v.reason}"
            )
        if preview and going:
            self.say(f"apply with `manage.py policy retention {policy.name} --apply`")

    # --- notify test -------------------------------------------------------------------------
    def _notify(self, options):
        deliveries = send_test_notification(arguments.actor())
        if options["json"]:
            self.emit_json(
                [
                    {
                        "channel": d.channel,
                        "target": shown_target(d),
                        "ok": d.ok,
                        "error": d.error,
                    }
                    for d in deliveries
                ]
            )
        else:
            for d in deliveries:
                outcome = "sent" if d.ok else f"failed: {d.error}"
                self.say(f"{d.channel} to {shown_target(d)}: {outcome}")
        failed = [d for d in deliveries if not d.ok]
        if failed:
            raise arguments.fail(f"{len(failed)} of {len(deliveries)} test notifications failed")


CRON_HELP = "Cron in the console's time zone: minute hour day month weekday ('0 2 * * *')."


def _policy_options(parser, *, editing: bool) -> None:
    parser.add_argument("--description", help="A note shown with the policy.")
    parser.add_argument(
        "--pattern",
        dest="name_pattern",
        metavar="PATTERN",
        help="Backup names: {policy} and {date} (YYYYMMDD-HHMMSS) are replaced; "
        "default {policy}-{date}.",
    )
    none = " (0: no limit)" if editing else ""
    parser.add_argument("--keep-last", type=count, metavar="N", help=f"Keep at most N{none}.")
    parser.add_argument("--keep-min", type=count, metavar="M", help="Keep at least M (default 1).")
    parser.add_argument(
        "--max-age-days", type=count, metavar="D", help=f"Expire backups after D days{none}."
    )
    for tier, unit in (("daily", "day"), ("weekly", "week"), ("monthly", "month")):
        parser.add_argument(
            f"--{tier}",
            type=count,
            metavar="N",
            help=f"Keep the newest backup of each of the last N {unit}s.",
        )
    parser.add_argument(
        "--drill",
        dest="drill_every",
        metavar="WHEN",
        help="Restore drills after the policy's backups: never (the default), daily or weekly "
        "(when the last drill is a day or a week old), or N (every Nth backup).",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--files-only", action="store_true", help="Back up the data dir only.")
    what.add_argument(
        "--elasticsearch-only", action="store_true", help="Back up Elasticsearch only."
    )
    if editing:
        what.add_argument("--both", action="store_true", help="Back up Elasticsearch and files.")
    indices = parser.add_mutually_exclusive_group()
    indices.add_argument(
        "--index",
        dest="index_patterns",
        action="append",
        metavar="PATTERN",
        help="Back up only these indices (repeatable; wildcards allowed).",
    )
    if editing:
        indices.add_argument(
            "--all-indices", action="store_true", help="Forget --index: back up every index."
        )
    pause = parser.add_mutually_exclusive_group()
    pause.add_argument("--pause", action="store_true", help="Take no backup until resumed.")
    if editing:
        pause.add_argument("--resume", action="store_true", help="Take backups again.")


def _fields(options: dict) -> dict:
    """The options given, as save_policy's fields; those not given are left out."""
    fields = {}
    for name, option in (
        ("description", "description"),
        ("name_pattern", "name_pattern"),
        ("schedule", "schedule"),
        ("keep_min", "keep_min"),
        ("keep_daily", "daily"),
        ("keep_weekly", "weekly"),
        ("keep_monthly", "monthly"),
        ("drill_every", "drill_every"),
    ):
        if options.get(option) is not None:
            fields[name] = options[option]
    for name in ("keep_last", "max_age_days"):
        if options.get(name) is not None:
            fields[name] = options[name] or None  # 0 means no limit
    if options.get("files_only"):
        fields.update(include_elasticsearch=False, include_files=True)
    elif options.get("elasticsearch_only"):
        fields.update(include_elasticsearch=True, include_files=False)
    elif options.get("both"):
        fields.update(include_elasticsearch=True, include_files=True)
    if options.get("index_patterns"):
        if options.get("files_only"):
            raise arguments.fail(
                "--index needs Elasticsearch: it cannot go with --files-only", arguments.USAGE
            )
        for pattern in options["index_patterns"]:
            problem = index_name_problem(pattern, pattern=True)
            if problem:
                raise arguments.fail(f"--index {pattern!r}: {problem}", arguments.USAGE)
        fields["index_patterns"] = options["index_patterns"]
    elif options.get("all_indices"):
        fields["index_patterns"] = []
    return fields


def find_policy(name_or_id: str) -> Policy:
    """A policy by exact name first, then by id."""
    found = Policy.objects.filter(name=name_or_id).first()
    if found is None and name_or_id.isdigit():
        found = Policy.objects.filter(pk=int(name_or_id)).first()
    if found is None:
        raise arguments.fail(
            f"no policy {name_or_id!r}: `manage.py policy list` shows them", arguments.NOT_FOUND
        )
    return found


def _one_line_error(sub):
    def error(message: str):
        text = f"{message} (see `{sub.prog} --help`)"
        if sub.called_from_command_line:
            sub.exit(arguments.USAGE, f"error: {text}\n")
        raise CommandError(text, returncode=arguments.USAGE)

    return error


def _done(backup: Backup) -> str:
    took = human_duration(backup.duration)
    return f"backup {backup.name} of policy {backup.policy.name} succeeded in {took}"


def _iso(value):
    return value.isoformat() if value else None


def policy_summary(policy: Policy) -> dict:
    return {
        "id": policy.pk,
        "name": policy.name,
        "description": policy.description,
        "schedule": policy.schedule,
        "name_pattern": policy.name_pattern,
        "elasticsearch": policy.include_elasticsearch,
        "files": policy.include_files,
        "index_patterns": policy.index_patterns,
        "keep_last": policy.keep_last,
        "keep_min": policy.keep_min,
        "max_age_days": policy.max_age_days,
        "keep_daily": policy.keep_daily,
        "keep_weekly": policy.keep_weekly,
        "keep_monthly": policy.keep_monthly,
        "paused": policy.paused,
        "drill_every": policy.drill_every,
        "drill_waiting": policy.drill_waiting,
        "next_run_at": _iso(policy.next_run_at),
        "last_run_at": _iso(policy.last_run_at),
        "last_success_at": _iso(policy.last_success_at),
        "last_failure_at": _iso(policy.last_failure_at),
        "last_failure_message": policy.last_failure_message,
        "last_duration_seconds": policy.last_duration_seconds,
    }


def _verdict(verdict) -> dict:
    b = verdict.backup
    return {
        "id": b.pk,
        "name": b.name,
        "created_at": b.created_at.isoformat(),
        "pinned": b.pinned,
        "reason": verdict.reason,
    }
