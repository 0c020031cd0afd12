"""The policy pages: list, form, retention preview, run now, pause, notifications, who may."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from people import member

from backups import operations
from backups.models import AuditEvent, Backup, NotificationDelivery, Policy
from backups.web.views.policies import policies_panel_context

pytestmark = pytest.mark.django_db(transaction=True)
ROLE_OF = {"v": "viewers", "o": "operators", "r": "restorers"}


@pytest.fixture
def storage(settings, tmp_path):
    """A data dir and backup storage of the test's own; files-only policies need no more."""
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    settings.A4C_DATA_DIR = tmp_path / "data"
    settings.A4C_DATA_DIR.mkdir()
    (settings.A4C_DATA_DIR / "csar").mkdir()
    (settings.A4C_DATA_DIR / "csar" / "types.yml").write_text("tosca: 1.3\n")
    settings.A4C_NOTIFY_EMAILS = []
    settings.A4C_NOTIFY_WEBHOOK_URL = ""
    return settings


@pytest.fixture
def nightly(storage, cli_actor) -> Policy:
    return operations.save_policy(
        cli_actor, name="nightly", include_elasticsearch=False, keep_last=7
    )


def page(client, name: str, *args) -> str:
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200, response.content[:300]
    return response.content.decode()


FORM = {
    "name": "weekly",
    "name_pattern": "{policy}-{date}",
    "schedule": "0 3 * * 0",
    "include_files": "on",
    "keep_min": "1",
}


# --- pages -----------------------------------------------------------------------------------


def test_the_list_shows_schedule_next_run_last_success_and_last_failure(
    client, otto, nightly, cli_actor
):
    Policy.objects.filter(pk=nightly.pk).update(
        last_success_at=timezone.now() - timedelta(days=2),
        last_failure_at=timezone.now() - timedelta(hours=3),
        last_failure_message="the data dir /srv/a4c is not readable",
    )
    operations.save_policy(cli_actor, name="paused-one", paused=True)

    html = page(client, "policies:list")

    assert "nightly" in html and "0 2 * * *" in html
    assert "the data dir /srv/a4c is not readable" in html
    assert f"{timezone.localtime(nightly.next_run_at):%Y-%m-%d %H:%M}" in html
    row = re.search(r'<tr id="policy-\d+">.*?paused-one.*?</tr>', html, re.S).group(0)
    assert "badge-yellow" in row and ">Resume<" in row and ">Run now<" in row


def test_the_detail_form_and_notifications_pages_render(client, otto, nightly):
    assert "Retention preview" in page(client, "policies:detail", nightly.pk)
    assert 'value="0 2 * * *"' in page(client, "policies:edit", nightly.pk)
    assert "Create policy" in page(client, "policies:new")
    notifications = page(client, "policies:notifications")
    assert "Nothing was sent yet" in notifications and "A4C_NOTIFY_EMAILS" in notifications


def test_the_dashboard_panel_shows_each_policys_last_runs_and_next(nightly):
    Policy.objects.filter(pk=nightly.pk).update(
        last_failure_at=timezone.now(), last_failure_message="Elasticsearch did not answer"
    )

    html = render_to_string("policies/_dashboard_panel.html", policies_panel_context())

    assert "nightly" in html and "Elasticsearch did not answer" in html
    assert f"{timezone.localtime(nightly.next_run_at):%Y-%m-%d %H:%M}" in html


# --- the form --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change,sentence",
    [
        ({"schedule": "every night"}, "needs five cron fields: minute hour day month weekday"),
        ({"schedule": "61 2 * * *"}, "is not a valid cron expression"),
        ({"name_pattern": "weekly-{when}"}, "may use only {policy} and {date}"),
        ({"name_pattern": "Weekly-{date}"}, "lowercase"),
        ({"keep_last": "3", "keep_min": "5"}, "&#x27;Keep at least&#x27; (5) cannot be more"),
        ({"name": "Weekly"}, "Policy names are lowercase"),
        ({"include_files": ""}, "Choose what to back up"),
        ({"index_patterns": "app, bad/name"}, "is not an index name or pattern"),
    ],
    ids=["cron", "cron-range", "pattern", "pattern-case", "keep", "name", "nothing", "index"],
)
def test_a_mistake_is_refused_with_the_sentence_a_person_reads(
    client, otto, storage, change, sentence
):
    response = client.post(reverse("policies:new"), {**FORM, **change})

    assert response.status_code == 200
    assert sentence in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert not Policy.objects.exists()


def test_an_operator_creates_a_policy_and_the_audit_says_who(client, otto, storage):
    data = {**FORM, "include_elasticsearch": "on", "index_patterns": "app-*\nusers, csar"}
    response = client.post(reverse("policies:new"), data)

    policy = Policy.objects.get(name="weekly")
    assert response.status_code == 302 and response["Location"] == reverse(
        "policies:detail", args=[policy.pk]
    )
    assert policy.index_patterns == ["app-*", "users", "csar"]
    assert policy.keep_last is None, "a policy without retention deletes nothing"
    assert policy.next_run_at > timezone.now()
    event = AuditEvent.objects.get(action="policy.create")
    assert event.actor == "otto" and event.target == "weekly"


def test_an_operator_may_not_give_a_policy_a_retention_that_deletes_backups(client, otto, storage):
    response = client.post(reverse("policies:new"), {**FORM, "keep_last": "1"})

    html = response.content.decode()
    assert response.status_code == 200 and not Policy.objects.exists()
    assert "otto may not delete backups" in html and "restorers" in html
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.actor, denied.action) == ("otto", "backup.delete")


def test_an_operator_may_not_tighten_the_retention_of_a_policy_and_run_it(
    client, otto, nightly, queued
):
    """The journey of issue 15.3: keep at most 1, then Run now, deleted backups."""
    data = {**FORM, "name": "nightly", "keep_last": "1"}

    response = client.post(reverse("policies:edit", args=[nightly.pk]), data)

    nightly.refresh_from_db()
    assert response.status_code == 200 and nightly.keep_last == 7
    assert "may not delete backups" in response.content.decode()


def test_a_restorer_sets_the_retention_the_schedule_then_applies(client, nightly, storage):
    client.force_login(member("rex", "restorers"))
    data = {**FORM, "name": "nightly", "keep_last": "1"}

    response = client.post(reverse("policies:edit", args=[nightly.pk]), data)

    nightly.refresh_from_db()
    assert response.status_code == 302 and nightly.keep_last == 1


def test_editing_records_only_what_changed(client, otto, nightly):
    data = {**FORM, "name": "nightly", "schedule": "0 2 * * 1", "keep_last": "7"}

    response = client.post(reverse("policies:edit", args=[nightly.pk]), data)

    assert response.status_code == 302
    event = AuditEvent.objects.get(action="policy.update")
    assert event.parameters == {"schedule": ["0 2 * * *", "0 2 * * 1"]} and event.actor == "otto"


def test_a_schedule_that_fires_every_minute_is_saved_with_a_warning(client, otto, storage):
    response = client.post(reverse("policies:new"), {**FORM, "schedule": "* * * * *"}, follow=True)

    html = response.content.decode()
    assert Policy.objects.get().schedule == "* * * * *"
    assert "starts a backup every 1 minute" in html and "msg-warning" in html


def test_a_policy_name_longer_than_kept_is_refused_with_the_limit(client, otto, storage):
    form = client.get(reverse("policies:new")).content.decode()
    response = client.post(reverse("policies:new"), {**FORM, "name": "p" * 150})

    field = re.search(r'<input[^>]*name="name"[^>]*>', form).group(0)
    assert "maxlength" not in field, "the browser must not cut the name silently"
    assert "The policy name is 150 characters long; the limit is 100." in response.content.decode()
    assert not Policy.objects.exists()


def test_a_policy_is_deleted_after_asking_and_its_backups_stay(client, otto, nightly):
    kept = Backup.objects.create(name="nightly-1", status="succeeded", policy=nightly)

    asked = client.get(reverse("policies:delete", args=[nightly.pk]))
    response = client.post(reverse("policies:delete", args=[nightly.pk]))

    assert "Delete policy nightly?" in asked.content.decode()
    assert response.status_code == 302 and response["Location"] == reverse("policies:list")
    assert not Policy.objects.exists()
    kept.refresh_from_db()
    assert kept.status == "succeeded" and kept.policy is None
    event = AuditEvent.objects.get(action="policy.delete")
    assert (event.actor, event.target) == ("otto", "nightly")


def test_a_viewer_refused_a_policy_edit_is_told_it_is_about_policies(client, nightly):
    client.force_login(member("vic", "viewers"))

    response = client.get(reverse("policies:edit", args=[nightly.pk]))

    html = response.content.decode()
    assert response.status_code == 403
    assert "may not edit policies" in html and "create backups" not in html
    assert AuditEvent.objects.get(outcome="denied").target == "policy nightly"


# --- run now, pause --------------------------------------------------------------------------


def test_run_now_requests_the_policys_backup_and_hands_it_to_a_worker(
    client, otto, nightly, queued
):
    response = client.post(reverse("policies:run", args=[nightly.pk]))

    backup = Backup.objects.get(policy=nightly)
    assert backup.status == Backup.Status.PENDING and backup.name.startswith("nightly-")
    assert queued == [("backup", backup.pk)]
    assert response["Location"] == reverse("backups:backup_detail", args=[backup.pk])
    assert AuditEvent.objects.filter(action="policy.run_now", actor="otto").exists()


def test_run_now_while_another_operation_runs_says_so_and_queues_nothing(
    client, otto, nightly, queued
):
    client.post(reverse("policies:run", args=[nightly.pk]))

    response = client.post(reverse("policies:run", args=[nightly.pk]), follow=True)

    assert "could not start a backup" in response.content.decode()
    assert len(queued) == 1 and Backup.objects.filter(policy=nightly).count() == 1


def test_pause_then_resume_toggles_the_policy_and_returns_to_the_list(client, otto, nightly):
    back = reverse("policies:list")
    url = reverse("policies:pause", args=[nightly.pk])

    paused = client.post(url, {"paused": "1", "next": back})
    assert paused["Location"] == back
    nightly.refresh_from_db()
    assert nightly.paused and "badge-yellow" in page(client, "policies:list")

    resumed = client.post(url, {"paused": "0", "next": "https://elsewhere.example/"})
    assert resumed["Location"] == reverse("policies:detail", args=[nightly.pk]), "never offsite"
    nightly.refresh_from_db()
    assert not nightly.paused and nightly.next_run_at > timezone.now()
    actions = AuditEvent.objects.filter(action__in=["policy.pause", "policy.resume"])
    assert list(actions.order_by("id").values_list("action", "actor")) == [
        ("policy.pause", "otto"),
        ("policy.resume", "otto"),
    ]


# --- retention preview -----------------------------------------------------------------------


def names_in(html: str, table_id: str) -> set[str]:
    table = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    return set(re.findall(r'/backups/\d+/">([^<]+)</a>', table.group(0))) if table else set()


def test_the_preview_lists_exactly_the_backups_that_apply_deletes(client, a4c, cli_actor):
    client.force_login(member("rita", "restorers"))
    (a4c.data_dir / "csar").mkdir()
    policy = operations.save_policy(cli_actor, name="daily", include_elasticsearch=False)
    names = []
    for day in range(4):
        (a4c.data_dir / "csar" / f"day-{day}.yml").write_text(f"day: {day}\n")
        names.append(operations.run_backup(operations.run_policy_now(policy.pk, cli_actor).pk).name)
    for age, name in zip([4, 3, 2], names[:3], strict=True):
        Backup.objects.filter(name=name).update(created_at=timezone.now() - timedelta(days=age))
    operations.save_policy(cli_actor, policy.pk, keep_last=3, max_age_days=3, keep_min=1)

    html = page(client, "policies:detail", policy.pk)
    shown = names_in(html, "would-delete")
    expected = re.search(r'name="expected" value="([^"]*)"', html).group(1)
    response = client.post(
        reverse("policies:apply_retention", args=[policy.pk]), {"expected": expected}
    )

    assert shown == {names[0], names[1]}, "older than 3 days"
    assert names_in(html, "would-keep") == {names[2], names[3]}
    assert "older than 3 days" in html
    assert response.status_code == 302
    gone = set(Backup.objects.filter(status=Backup.Status.DELETED).values_list("name", flat=True))
    assert gone == shown
    assert AuditEvent.objects.get(action="retention.apply").actor == "rita"


def test_apply_deletes_nothing_when_the_preview_changed_since_it_was_shown(client, nightly):
    client.force_login(member("rita", "restorers"))
    for age in (1, 2, 30):
        Backup.objects.create(
            name=f"old-{age}",
            status=Backup.Status.SUCCEEDED,
            actor="t",
            policy=nightly,
            created_at=timezone.now() - timedelta(days=age),
        )
    Policy.objects.filter(pk=nightly.pk).update(keep_last=1)

    response = client.post(
        reverse("policies:apply_retention", args=[nightly.pk]), {"expected": ""}, follow=True
    )

    assert "The retention preview changed" in response.content.decode()
    assert not Backup.objects.filter(status=Backup.Status.DELETED).exists()
    assert names_in(response.content.decode(), "would-delete") == {"old-2", "old-30"}


# --- notifications ---------------------------------------------------------------------------


def test_send_test_records_a_delivery_and_an_audit_event(client, otto, storage):
    storage.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    storage.A4C_NOTIFY_EMAILS = ["ops@example.org"]

    response = client.post(reverse("policies:notification_test"), follow=True)

    delivery = NotificationDelivery.objects.get()
    assert (delivery.event, delivery.channel, delivery.ok) == ("test", "email", True)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@example.org"]
    html = response.content.decode()
    assert "Test sent: Email to ops@example.org" in html and "badge-succeeded" in html
    event = AuditEvent.objects.get(action="notify.test")
    assert event.actor == "otto" and event.outcome == "succeeded"


def test_a_failed_webhook_shows_its_error_but_never_its_secret_path(client, otto, storage):
    storage.A4C_NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/hooks/T0001/s3cret-token"

    html = client.post(reverse("policies:notification_test"), follow=True).content.decode()

    assert "Test failed: Webhook to http://127.0.0.1:9/…" in html
    assert "s3cret-token" not in html
    assert AuditEvent.objects.get(action="notify.test").outcome == "failed"
    assert "s3cret-token" not in str(AuditEvent.objects.get(action="notify.test").parameters)


def test_send_test_with_no_channel_says_which_setting_to_set(client, otto, storage):
    html = client.post(reverse("policies:notification_test"), follow=True).content.decode()

    assert "No notification channel is configured: set A4C_NOTIFY_EMAILS" in html
    assert not NotificationDelivery.objects.exists()
    assert AuditEvent.objects.get(action="notify.test").outcome == "refused"


# --- who may ---------------------------------------------------------------------------------

# (name, method, url name, with the policy's pk, form data, roles allowed, denied action)
ACTIONS = [
    ("list", "get", "policies:list", False, None, "vor", "page.view"),
    ("detail", "get", "policies:detail", True, None, "vor", "page.view"),
    ("notifications", "get", "policies:notifications", False, None, "vor", "page.view"),
    ("new form", "get", "policies:new", False, None, "or", "policy.create"),
    ("create", "post", "policies:new", False, FORM, "or", "policy.create"),
    ("edit form", "get", "policies:edit", True, None, "or", "policy.update"),
    (
        "edit",
        "post",
        "policies:edit",
        True,
        {**FORM, "name": "nightly", "keep_last": "7"},
        "or",
        "policy.update",
    ),
    ("delete", "post", "policies:delete", True, {}, "or", "policy.delete"),
    ("run now", "post", "policies:run", True, {}, "or", "policy.run_now"),
    ("pause", "post", "policies:pause", True, {"paused": "1"}, "or", "policy.pause"),
    ("send test", "post", "policies:notification_test", False, {}, "or", "notify.test"),
    ("apply", "post", "policies:apply_retention", True, {"expected": ""}, "r", "retention.apply"),
]


@pytest.mark.parametrize("letter", ["v", "o", "r"], ids=["viewer", "operator", "restorer"])
@pytest.mark.parametrize(
    "name,method,url_name,with_pk,data,allowed,action", ACTIONS, ids=[a[0] for a in ACTIONS]
)
def test_each_role_is_allowed_or_refused_each_action(
    client, nightly, queued, letter, name, method, url_name, with_pk, data, allowed, action
):
    user = member(f"{ROLE_OF[letter]}-user", ROLE_OF[letter])
    client.force_login(user)

    url = reverse(url_name, args=[nightly.pk] if with_pk else [])
    response = getattr(client, method)(url, data or {})

    denied = AuditEvent.objects.filter(outcome="denied", actor=user.username)
    if letter in allowed:
        assert response.status_code in (200, 302), response.content[:400]
        assert not denied.exists()
    else:
        assert response.status_code == 403
        assert "Not allowed" in response.content.decode()
        assert denied.get().action == action
