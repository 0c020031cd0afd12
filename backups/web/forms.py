"""The console's forms: they turn what a person typed into the values operations take.

Validation that the engine owns (backup names, restore scopes, the typed confirmation) is asked
of backups/operations, so the web and the command line refuse the same things with the
same sentences.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.core import signing
from django.db.models import Q, QuerySet
from django.utils import timezone

from backups import operations
from backups.errors import BackupError, InvalidInput
from backups.models import AuditEvent, Backup, RestoreRun
from backups.operations.names import DESCRIPTION_MAX, validate_description
from backups.operations.plan import Plan, PlanOutdated
from backups.operations.requests import BackupRequest, RestoreRequest


def check_new_name(name: str) -> str:
    """The engine's naming rules, and not taken yet; raises InvalidInput with the sentence."""
    operations.validate_backup_name(name)
    if Backup.objects.filter(name=name).exists():
        raise InvalidInput(f"A backup named {name!r} exists already; choose another name.")
    return name


class BackupForm(forms.Form):
    # No max_length: the browser would cut a longer name silently (maxlength); the engine
    # refuses it instead, naming the limit.
    name = forms.CharField(
        required=False,
        help_text="Lowercase letters, digits and - _ . + (at most 200); empty for a dated name.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    description = forms.CharField(
        # No max_length: the browser would cut a longer text silently; clean_description names
        # the limit.
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=f"Why this backup, in at most {DESCRIPTION_MAX} characters.",
    )
    include_elasticsearch = forms.BooleanField(
        required=False, initial=True, label="Elasticsearch indices"
    )
    include_files = forms.BooleanField(
        required=False, initial=True, label="Files of the data directory"
    )
    indices = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to back up every A4C index.",
    )

    def __init__(self, *args, index_names=(), es_problem: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["indices"].choices = [(name, name) for name in index_names]
        if es_problem:  # a snapshot cannot work now: only the files can be backed up
            field = self.fields["include_elasticsearch"]
            field.disabled, field.initial = True, False

    def clean_description(self) -> str:
        try:
            return validate_description(self.cleaned_data["description"])
        except InvalidInput as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name:
            try:
                check_new_name(name)
            except InvalidInput as exc:
                raise forms.ValidationError(exc.message) from None
        return name

    def clean(self):
        data = super().clean()
        if not data.get("include_elasticsearch") and not data.get("include_files"):
            raise forms.ValidationError("Choose what to back up: Elasticsearch, files, or both.")
        if data.get("indices") and not data.get("include_elasticsearch"):
            self.add_error("indices", "Indices were chosen but Elasticsearch is left out.")
        data["request"] = BackupRequest(
            name=data.get("name", ""),
            description=data.get("description", ""),
            include_elasticsearch=data.get("include_elasticsearch", False),
            include_files=data.get("include_files", False),
            indices=tuple(data.get("indices") or ()),
        )
        return data


class RestoreForm(forms.Form):
    """What to restore. Bound from the query string to show the plan, from POST to start it."""

    backup = forms.TypedChoiceField(
        coerce=int,
        label="Backup",
        # Choosing another backup never reloads the page (a keyboard's ArrowDown chooses one):
        # the indices offered, the old backup's, are put away until its plan is shown.
        widget=forms.Select(attrs={"data-puts-away": "index-choice"}),
        help_text="Then press Show the plan: it lists this backup's indices too.",
    )
    scope = forms.ChoiceField(
        choices=RestoreRun.Scope.choices, initial=RestoreRun.Scope.ALL, widget=forms.RadioSelect
    )
    indices = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only with the scope 'Chosen indices only'.",
    )
    file_mode = forms.ChoiceField(
        choices=RestoreRun.FileMode.choices,
        initial=RestoreRun.FileMode.MIRROR,
        widget=forms.RadioSelect,
        label="Files",
    )
    safety_backup = forms.BooleanField(
        required=False,
        initial=True,
        label="Take a safety backup of what will be overwritten first (allows a rollback)",
    )
    rename_pattern = forms.CharField(
        required=False,
        max_length=200,
        help_text="Optional regular expression: restore indices under new names.",
    )
    rename_replacement = forms.CharField(
        required=False, max_length=200, help_text="For example restored-$1 with the pattern (.+)"
    )
    keep_owners = forms.BooleanField(
        required=False,
        label="Keep the owners and modes a set from elsewhere records "
        "(by default its files get the data directory's owner, without set-id bits)",
    )
    # Ticked on the confirmation, under a plan that found the backup from another cluster.
    other_cluster = forms.BooleanField(required=False)
    # Ticked on the confirmation, under a plan that found the backup to be a foreign set.
    foreign = forms.BooleanField(required=False)

    def __init__(self, *args, backups=(), chosen: Backup | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [
            (b.pk, f"{b.name}  ({timezone.localtime(b.created_at):%Y-%m-%d %H:%M %Z})")
            for b in backups
        ]
        if chosen is not None and all(pk != chosen.pk for pk, _ in choices):
            choices.insert(0, (chosen.pk, chosen.name))
        self.fields["backup"].choices = choices
        if chosen is not None:
            # the backup whose indices the page lists (console.js: data-puts-away)
            self.fields["backup"].widget.attrs["data-shown-for"] = str(chosen.pk)
            self.fields["indices"].choices = [(n, n) for n in sorted(chosen.indices or {})]

    def clean(self):
        data = super().clean()
        if data.get("indices") and data.get("scope") != RestoreRun.Scope.INDICES:
            data["scope"] = RestoreRun.Scope.INDICES  # ticking indices means restoring just those
        if "backup" in data and "scope" in data and "file_mode" in data:
            data["request"] = RestoreRequest(
                backup_id=data["backup"],
                scope=data["scope"],
                indices=tuple(data.get("indices") or ()),
                file_mode=data["file_mode"],
                rename_pattern=data.get("rename_pattern", ""),
                rename_replacement=data.get("rename_replacement", ""),
                safety_backup=data.get("safety_backup", False),
                other_cluster=data.get("other_cluster", False),
                foreign=data.get("foreign", False),
                keep_owners=data.get("keep_owners", False),
            )
        return data


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class DateRangeMixin(forms.Form):
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def filter_dates(self, queryset: QuerySet, field: str) -> QuerySet:
        data = self.cleaned_data
        if data.get("date_from"):
            queryset = queryset.filter(**{f"{field}__gte": _day_start(data["date_from"])})
        if data.get("date_to"):
            end = _day_start(data["date_to"] + timedelta(days=1))
            queryset = queryset.filter(**{f"{field}__lt": end})
        return queryset


def _blank(choices) -> list:
    return [("", "any"), *choices]


class BackupFilterForm(DateRangeMixin):
    status = forms.ChoiceField(required=False, choices=_blank(Backup.Status.choices))
    trigger = forms.ChoiceField(required=False, choices=_blank(Backup.Trigger.choices))
    who = forms.CharField(required=False, max_length=150, label="Who")
    q = forms.CharField(required=False, max_length=200, label="Name")
    field_order = ["q", "status", "trigger", "who", "date_from", "date_to"]

    def filter(self, queryset: QuerySet) -> QuerySet:
        if not self.is_valid():
            return queryset
        data = self.cleaned_data
        if data["status"]:
            queryset = queryset.filter(status=data["status"])
        if data["trigger"]:
            queryset = queryset.filter(trigger=data["trigger"])
        if data["who"]:
            queryset = queryset.filter(actor__icontains=data["who"].strip())
        if data["q"]:
            queryset = queryset.filter(name__icontains=data["q"].strip())
        return self.filter_dates(queryset, "created_at")


class RestoreFilterForm(DateRangeMixin):
    status = forms.ChoiceField(required=False, choices=_blank(RestoreRun.Status.choices))
    who = forms.CharField(required=False, max_length=150, label="Who")
    field_order = ["status", "who", "date_from", "date_to"]

    def filter(self, queryset: QuerySet) -> QuerySet:
        if not self.is_valid():
            return queryset
        data = self.cleaned_data
        if data["status"]:
            queryset = queryset.filter(status=data["status"])
        if data["who"]:
            queryset = queryset.filter(actor__icontains=data["who"].strip())
        return self.filter_dates(queryset, "created_at")


class AuditFilterForm(DateRangeMixin):
    person = forms.CharField(required=False, max_length=150, label="Person")
    action = forms.CharField(
        required=False, max_length=40, widget=forms.TextInput(attrs={"list": "audit-actions"})
    )
    target = forms.CharField(required=False, max_length=300)
    outcome = forms.ChoiceField(required=False, choices=_blank(AuditEvent.Outcome.choices))
    restores_only = forms.BooleanField(required=False, label="Restores only")
    field_order = ["person", "action", "target", "outcome", "date_from", "date_to", "restores_only"]

    def filter(self, queryset: QuerySet) -> QuerySet:
        if not self.is_valid():
            return queryset
        data = self.cleaned_data
        if data["person"]:
            queryset = queryset.filter(actor__icontains=data["person"].strip())
        if data["action"]:
            action = data["action"].strip()
            # "restore" finds every restore.* action; a full name finds exactly that one.
            if "." in action:
                queryset = queryset.filter(action=action)
            else:
                queryset = queryset.filter(action__startswith=f"{action}.")
        if data["target"]:
            queryset = queryset.filter(target__icontains=data["target"].strip())
        if data["outcome"]:
            queryset = queryset.filter(outcome=data["outcome"])
        if data["restores_only"]:
            queryset = queryset.filter(Q(action__startswith="restore.") | Q(restore__isnull=False))
        return self.filter_dates(queryset, "at")


PLAN_SALT = "backups.restore-plan"


def _planned_choices(request: RestoreRequest) -> list:
    """What the plan depends on; the safety backup and the other-cluster word do not change it."""
    return [
        str(request.backup_id),
        request.scope,
        list(request.indices),
        request.file_mode,
        request.rename_pattern,
        request.rename_replacement,
        request.keep_owners,
    ]


def sign_plan(request: RestoreRequest, plan: Plan) -> str:
    """The plan shown, with the choices it was made for, signed to travel in the page: the
    confirmation starts the restore of this plan, not of one made again (which would walk the
    data dir a second time, and might differ from what the person read)."""
    payload = {"choices": _planned_choices(request), "plan": plan.to_json()}
    return signing.dumps(payload, salt=PLAN_SALT, compress=True)


class ConfirmRestoreForm(forms.Form):
    confirm = forms.CharField(
        required=False,
        label="Type the backup's name to confirm",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    plan = forms.CharField(required=False, widget=forms.HiddenInput)

    def confirmed_plan(self, request: RestoreRequest) -> Plan | None:
        """The signed plan this confirmation was given for; None when the page sent none.
        PlanOutdated when it was altered or made for other choices."""
        token = self.data.get("plan", "")
        if not token:
            return None
        try:
            payload = signing.loads(token, salt=PLAN_SALT)
        except signing.BadSignature:
            raise PlanOutdated("The plan sent back is not the one shown: read it again.") from None
        if payload.get("choices") != _planned_choices(request):
            raise PlanOutdated(
                "The plan shown was for other choices: read the new plan and confirm."
            )
        return Plan.from_json(payload["plan"])


def error_text(exc: Exception) -> str:
    """The sentence a person sees for an engine error."""
    return exc.message if isinstance(exc, BackupError) else str(exc)
