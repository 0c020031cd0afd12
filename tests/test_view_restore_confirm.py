"""The confirmation starts the plan the person read: carried signed in the page, its file half
never walked again, its Elasticsearch half asked again and refused when it changed."""

from __future__ import annotations

import re

import pytest
from django.core import signing
from django.urls import reverse

from backups.models import Backup, RestoreRun
from backups.operations.plan import Plan
from backups.storage import WorkingTree
from backups.web.forms import PLAN_SALT

pytestmark = pytest.mark.django_db(transaction=True)


def shown(client, choices: dict) -> tuple[str, str]:
    """The plan page for these choices: its HTML and the signed plan in its confirmation."""
    page = client.get(reverse("backups:restore_new"), choices).content.decode()
    token = re.search(r'name="plan" value="([^"]+)"', page)
    assert token, "the confirmation carries the plan shown"
    return page, token.group(1)


@pytest.fixture
def walks(monkeypatch) -> list:
    """Every walk of the data dir a plan makes."""
    seen = []
    real = WorkingTree.plan_restore
    monkeypatch.setattr(
        WorkingTree, "plan_restore", lambda self, *a, **k: seen.append(a) or real(self, *a, **k)
    )
    return seen


def test_the_confirmation_starts_the_plan_shown_without_walking_the_data_dir_again(
    client, a4c, rita, queued, walks, take
):
    backup = take("files-1", rita, include_elasticsearch=False)
    choices = {"backup": backup.pk, "scope": "files", "file_mode": "mirror"}
    _, token = shown(client, choices)
    assert len(walks) == 1
    (a4c.data_dir / "csar" / "late.yml").write_text("written after the plan was shown\n")

    started = client.post(
        reverse("backups:restore_new"),
        {**choices, "safety_backup": "on", "plan": token, "confirm": "files-1"},
    )

    assert started.status_code == 302 and [kind for kind, _ in queued] == ["restore"]
    assert len(walks) == 1, "the data dir is walked once, for the plan shown"
    run = RestoreRun.objects.get()
    assert Plan.from_json(run.plan).files.removed == 0, "the plan stored is the one read"


def test_a_plan_altered_in_the_page_is_refused(client, a4c, rita, queued, take):
    backup = take("files-1", rita, include_elasticsearch=False)
    choices = {"backup": backup.pk, "scope": "files", "file_mode": "mirror"}
    _, token = shown(client, choices)

    answer = client.post(
        reverse("backups:restore_new"), {**choices, "plan": token[:-2] + "xx", "confirm": "files-1"}
    )

    assert "The plan sent back is not the one shown" in answer.content.decode()
    assert not RestoreRun.objects.exists() and not queued


def test_a_plan_shown_for_other_choices_is_refused_and_the_new_plan_shown(
    client, a4c, rita, queued, take
):
    backup = take("files-1", rita, include_elasticsearch=False)
    choices = {"backup": backup.pk, "scope": "files", "file_mode": "mirror"}
    _, token = shown(client, choices)

    answer = client.post(
        reverse("backups:restore_new"),
        {**choices, "file_mode": "merge", "plan": token, "confirm": "files-1"},
    )

    page = answer.content.decode()
    assert "The plan shown was for other choices" in page
    assert not RestoreRun.objects.exists() and not queued
    token = re.search(r'name="plan" value="([^"]+)"', page).group(1)
    carried = signing.loads(token, salt=PLAN_SALT)["plan"]
    assert carried["file_mode"] == "merge", "the page now carries the plan of the choices made"


def test_an_index_created_after_the_plan_was_shown_refuses_the_confirmation(
    client, a4c, rita, queued, take
):
    a4c.cluster.client.indices.create(index=a4c.index("user"), settings={"number_of_replicas": 0})
    backup = take("both-1", rita)
    choices = {"backup": backup.pk, "scope": "all", "file_mode": "mirror"}
    _, token = shown(client, choices)
    a4c.cluster.client.indices.create(index=a4c.index("late"), settings={"number_of_replicas": 0})

    answer = client.post(
        reverse("backups:restore_new"),
        {**choices, "safety_backup": "on", "plan": token, "confirm": "both-1"},
    )

    page = answer.content.decode()
    assert "Elasticsearch changed since the plan was shown" in page
    assert a4c.index("late") in page, "the new plan, which removes it, is shown"
    assert not RestoreRun.objects.exists() and not queued


def test_a_foreign_set_says_so_on_the_confirmation_and_starts_only_with_its_checkbox(
    client, take, rita, queued
):
    backup = take("planted-1", rita, include_elasticsearch=False)
    Backup.objects.filter(pk=backup.pk).update(foreign=True, signed_by="SHA256:unknown")
    data = {"backup": backup.pk, "scope": "files", "file_mode": "mirror", "confirm": "planted-1"}

    page, _token = shown(client, {k: v for k, v in data.items() if k != "confirm"})
    refused = client.post(reverse("backups:restore_new"), data)
    started = client.post(reverse("backups:restore_new"), {**data, "foreign": "on"})

    assert 'id="foreign"' in page
    assert (
        "This is a foreign set: Backup planted-1 is a foreign set: no key trusted here vouches "
        "for it (it claims the key SHA256:unknown)"
    ) in page
    assert "Confirm that you restore it all the same" in refused.content.decode()
    assert started.status_code == 302 and [kind for kind, _ in queued] == ["restore"]
    detail = client.get(reverse("backups:backup_detail", args=[backup.pk])).content.decode()
    assert (
        'id="foreign"' in detail and 'it claims the key <span class="mono">SHA256:unknown' in detail
    )
    listed = client.get(reverse("backups:backup_list")).content.decode()
    assert 'planted-1</a> <span class="badge badge-yellow foreign"' in listed


def test_a_set_from_elsewhere_is_planned_with_the_data_dirs_owners_unless_kept(
    client, take, rita, queued
):
    backup = take("carried-1", rita, include_elasticsearch=False)
    Backup.objects.filter(pk=backup.pk).update(imported_from="archive carried-1.a4c")
    choices = {"backup": backup.pk, "scope": "files", "file_mode": "mirror"}

    mapped, _ = shown(client, choices)
    kept, token = shown(client, {**choices, "keep_owners": "on"})

    assert 'data-file-owners="data dir"' in mapped and "loses set-id" in mapped
    assert 'data-file-owners="recorded"' in kept and "came from elsewhere" in kept
    assert 'name="keep_owners" value="on"' in kept, "the confirmation carries the choice"
    # The plan read kept the owners: a confirmation without the choice is for another plan.
    refused = client.post(
        reverse("backups:restore_new"), {**choices, "plan": token, "confirm": "carried-1"}
    )
    assert refused.status_code == 200 and not queued
    started = client.post(
        reverse("backups:restore_new"),
        {**choices, "keep_owners": "on", "plan": token, "confirm": "carried-1"},
    )
    assert started.status_code == 302 and [kind for kind, _ in queued] == ["restore"]
    assert RestoreRun.objects.get().plan["file_owners"] == "recorded"
