"""The policy form: what a person types, turned into the fields save_policy takes.

The rules are the engine's (backups/operations/policies.py): the form asks it about the
schedule, the name and the name pattern, so the console and `manage.py policy` refuse the same
things with the same sentences, each shown next to the field it is about.
"""

from __future__ import annotations

import re

from django import forms
from django.conf import settings
from django.utils import timezone

from backups.errors import InvalidInput
from backups.models import Policy
from backups.operations.drill_schedule import validate_drill_every
from backups.operations.names import (
    DESCRIPTION_MAX,
    index_name_problem,
    validate_backup_name,
    validate_description,
)
from backups.operations.schedules import backup_name_for, validate_schedule

POLICY_NAME_MAX = Policy._meta.get_field("name").max_length
SCHEDULE_HELP = (
    "Cron, in {zone}: minute hour day month weekday. "
    "0 2 * * * is every night at 02:00; 0 */6 * * * every six hours; "
    "30 1 * * 0 Sundays at 01:30."
)


def _count(label: str, help_text: str, *, required: bool = False, minimum: int = 0):
    return forms.IntegerField(
        label=label,
        required=required,
        min_value=minimum,
        help_text=help_text,
    )


class PolicyForm(forms.Form):
    # No max_length: the browser would cut a longer name silently; clean_name names the limit.
    name = forms.CharField(
        help_text=f"Lowercase letters, digits and - _ . + , like a backup name; at most "
        f"{POLICY_NAME_MAX} characters.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    description = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=f"What it is for, in at most {DESCRIPTION_MAX} characters.",
    )
    name_pattern = forms.CharField(
        max_length=150,
        initial="{policy}-{date}",
        label="Backup names",
        help_text="{policy} is the policy's name, {date} the start time as YYYYMMDD-HHMMSS.",
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )
    schedule = forms.CharField(
        max_length=100,
        initial="0 2 * * *",
        help_text=SCHEDULE_HELP,
        widget=forms.TextInput(attrs={"spellcheck": "false", "class": "mono"}),
    )
    include_elasticsearch = forms.BooleanField(
        required=False, initial=True, label="Elasticsearch indices"
    )
    include_files = forms.BooleanField(
        required=False, initial=True, label="Files of the data directory"
    )
    index_patterns = forms.CharField(
        required=False,
        label="Only these indices",
        help_text="Index names or patterns, one per line or comma separated; empty for all "
        "of A4C's.",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
    )
    keep_last = _count("Keep at most", "The newest N backups; empty for no limit.", minimum=1)
    keep_min = _count(
        "Keep at least", "Even when they are older than the age limit.", required=True
    )
    max_age_days = _count(
        "Expire after (days)", "Backups older than this go; empty to keep them.", minimum=1
    )
    keep_daily = _count("Daily", "The newest backup of each of the last N days.")
    keep_weekly = _count("Weekly", "The newest of each of the last N weeks.")
    keep_monthly = _count("Monthly", "The newest of each of the last N months.")
    drill_every = forms.CharField(
        required=False,
        max_length=10,
        initial="never",
        label="Drill every",
        help_text="Restore drills of the policy's newest good backup, run after its backup: "
        "never (or empty); daily or weekly (when the last drill is a day or a week old); "
        "or a number N, after every Nth backup.",
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )

    TIERS = ("keep_daily", "keep_weekly", "keep_monthly")

    def __init__(self, *args, policy: Policy | None = None, **kwargs):
        self.policy = policy
        if policy is not None:
            kwargs.setdefault("initial", initial_from(policy))
        else:
            kwargs.setdefault(
                "initial",
                {"keep_min": 1, "drill_every": "never", **dict.fromkeys(self.TIERS, 0)},
            )
        super().__init__(*args, **kwargs)
        self.fields["schedule"].help_text = SCHEDULE_HELP.format(zone=settings.TIME_ZONE)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if len(name) > POLICY_NAME_MAX:
            raise forms.ValidationError(
                f"The policy name is {len(name)} characters long; the limit is {POLICY_NAME_MAX}."
            )
        try:
            validate_backup_name(name)
        except InvalidInput as exc:
            raise forms.ValidationError(_as_policy_name(exc.message)) from None
        others = Policy.objects.filter(name=name)
        if self.policy is not None:
            others = others.exclude(pk=self.policy.pk)
        if others.exists():
            raise forms.ValidationError(f"A policy named {name!r} exists already.")
        return name

    def clean_description(self) -> str:
        try:
            return validate_description(self.cleaned_data["description"], of="policy")
        except InvalidInput as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_schedule(self) -> str:
        try:
            expression = validate_schedule(self.cleaned_data["schedule"])
        except InvalidInput as exc:
            raise forms.ValidationError(exc.message) from None
        return expression

    def clean_drill_every(self) -> str:
        try:
            return validate_drill_every(self.cleaned_data["drill_every"] or "never")
        except InvalidInput as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_index_patterns(self) -> list[str]:
        patterns = [p.strip() for p in re.split(r"[,\s]+", self.cleaned_data["index_patterns"])]
        patterns = [p for p in patterns if p]
        for pattern in patterns:
            problem = index_name_problem(pattern, pattern=True)
            if problem:
                raise forms.ValidationError(
                    f"{pattern!r} is not an index name or pattern: {problem}."
                )
        return patterns

    def clean(self):
        data = super().clean()
        if "name_pattern" in data:
            trial = Policy(name=data.get("name") or "policy", name_pattern=data["name_pattern"])
            try:
                backup_name_for(trial, timezone.now())
            except InvalidInput as exc:
                self.add_error("name_pattern", exc.message)
        if not data.get("include_elasticsearch") and not data.get("include_files"):
            raise forms.ValidationError("Choose what to back up: Elasticsearch, files, or both.")
        if data.get("index_patterns") and not data.get("include_elasticsearch"):
            self.add_error("index_patterns", "Indices were chosen but Elasticsearch is left out.")
        keep_last, keep_min = data.get("keep_last"), data.get("keep_min")
        if keep_last is not None and keep_min is not None and keep_min > keep_last:
            self.add_error(
                "keep_min",
                f"'Keep at least' ({keep_min}) cannot be more than 'keep at most' ({keep_last}).",
            )
        return data

    def policy_fields(self) -> dict:
        """The cleaned values, named as save_policy names them."""
        data = self.cleaned_data
        fields = {name: data[name] for name in self.fields}
        for tier in self.TIERS:
            fields[tier] = fields[tier] or 0
        return fields


def _as_policy_name(message: str) -> str:
    return message.replace("backup name", "policy name").replace("Backup name", "Policy name")


def initial_from(policy: Policy) -> dict:
    initial = {name: getattr(policy, name) for name in PolicyForm.base_fields}
    initial["index_patterns"] = "\n".join(policy.index_patterns or [])
    return initial
