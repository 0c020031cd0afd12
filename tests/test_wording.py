"""Issue 25, item 5: the console's words. Counts in their number's form with thousands
separators, how long ago in the words console.js keeps up, every time with its zone, one
message per refusal, and descriptions held to a stated limit at every door."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from commands import manage
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from backups.errors import InvalidInput
from backups.formatting import count_of, time_ago
from backups.models import Backup, Policy
from backups.operations import locking
from backups.operations.names import DESCRIPTION_MAX, validate_description
from backups.web.views.policies import retention_rules


@pytest.mark.parametrize(
    "count, nouns, said",
    [
        (1, ("backup",), "1 backup"),
        (0, ("backup",), "0 backups"),
        (30306, ("file",), "30,306 files"),
        (1, ("index", "indices"), "1 index"),
        (2, ("index", "indices"), "2 indices"),
        (None, ("event",), "0 events"),
    ],
)
def test_a_count_reads_in_its_numbers_form_with_thousands_separators(count, nouns, said):
    assert count_of(count, *nouns) == said


@pytest.mark.parametrize(
    "seconds, said",
    [
        (-5, "in the future"),
        (0, "just now"),
        (9.9, "just now"),
        (45, "45 s ago"),
        (60 * 12 + 5, "12 min ago"),
        (3600 * 3 + 60 * 5, "3 h 05 min ago"),
        (3600 * 30, "30 h 00 min ago"),
        (86400 * 4 + 100, "4 days ago"),
    ],
)
def test_how_long_ago_is_said_without_a_decimal_hour(seconds, said):
    assert time_ago(timedelta(seconds=seconds)) == said
    assert time_ago(seconds) == said


def render(text: str, **context) -> str:
    return Template(text).render(Context(context))


def test_the_counted_and_ago_filters_say_the_same(settings):
    assert render('{{ n|counted:"backup" }}', n=1) == "1 backup"
    assert render('{{ n|counted:"index,indices" }}', n=1234) == "1,234 indices"
    assert render("{{ t|ago }}", t=timezone.now() - timedelta(minutes=3)) == "3 min ago"


def test_every_time_is_shown_relative_and_absolute_in_the_named_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    moment = datetime(2026, 11, 7, 6, 18, 41, tzinfo=UTC)
    shown = render('{% include "backups/_when.html" with t=t %}.', t=moment)

    assert "2026-11-07 07:18:41 CET</span></span>." in shown, "no space before a full stop"
    assert 'title="2026-11-07 07:18:41, Europe/Paris time"' in shown
    assert "days ago</time>" in shown


def test_retention_is_said_in_plural_forms():
    policy = Policy(name="p", keep_last=1, keep_min=1, max_age_days=1, keep_daily=1)
    assert retention_rules(policy) == [
        "The newest backup of each of the last 1 day.",
        "None older than 1 day.",
        "At most the newest.",
        "At least 1 backup, even when older.",
        "Pinned backups, and the newest good backup of all, are always kept.",
    ]
    policy = Policy(name="p", keep_last=1500, keep_min=2, max_age_days=30)
    assert "At most the 1,500 newest." in retention_rules(policy)
    assert "None older than 30 days." in retention_rules(policy)


def test_a_description_over_the_limit_is_refused_with_its_length_and_the_limit():
    assert validate_description("  why  ") == "why"
    assert validate_description("x" * DESCRIPTION_MAX) == "x" * DESCRIPTION_MAX
    with pytest.raises(InvalidInput) as refused:
        validate_description("x" * 6000)
    assert refused.value.message == (
        "The backup's description is 6,000 characters long; at most 500 are allowed: shorten "
        "it (the details belong elsewhere)."
    )


@pytest.mark.django_db(transaction=True)
def test_the_command_line_refuses_a_long_description_and_takes_nothing(files, capsys):
    ran = manage(capsys, "backup", "--files-only", "--name", "long", "--description", "d" * 501)

    assert ran.code == 2
    assert ran.err.startswith("error: The backup's description is 501 characters long")
    assert not Backup.objects.exists()


@pytest.mark.django_db
def test_the_policy_form_states_the_limit_and_refuses_a_longer_description(otto, client):
    page = client.get(reverse("policies:new")).content.decode()
    assert "in at most 500 characters" in page

    refused = client.post(
        reverse("policies:new"),
        {"name": "nightly", "description": "d" * 501, "schedule": "0 2 * * *"},
    ).content.decode()

    assert "The policy&#x27;s description is 501 characters long" in refused
    assert not Policy.objects.exists()


@pytest.mark.django_db
def test_a_backup_refused_for_a_run_under_way_says_so_once(files, otto, client):
    other = Backup.objects.create(name="other", status=Backup.Status.RUNNING, actor="rita")
    locking.acquire("backup", other.pk, "other", "rita")
    try:
        page = client.post(
            reverse("backups:backup_new"), {"name": "mine", "include_files": "on"}
        ).content.decode()
    finally:
        locking.release("backup", other.pk)

    assert 'id="busy"' not in page, "no yellow box beside the red one"
    assert page.count("msg-error") == 1
