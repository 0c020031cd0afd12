"""A command imports only what it needs (issue 28, item 3): its fixed cost is its start.

Asserted on the import graph of a real `manage.py` process, not on a timing: a listing
command must not load Celery, the Elasticsearch client, the HTTP client, the directory's
client, rich's progress bars, every room of backups/operations, or Django's URLs and views.
"""

import json
import os
import subprocess
import sys

from django.conf import settings as django_settings
from django.db import connection
from fault_support import database_url

# Runs manage.py as `python manage.py ...` would, then writes the modules it loaded.
PROBE = """
import json, runpy, sys
where, sys.argv = sys.argv[1], ["manage.py", *sys.argv[2:]]
code = 0
try:
    runpy.run_path("manage.py", run_name="__main__")
except SystemExit as stop:
    code = stop.code or 0
with open(where, "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""

# Top-level packages a command that lists, shows or checks must not load.
HEAVY = {
    "celery",
    "kombu",
    "elasticsearch",
    "elastic_transport",
    "boto3",
    "botocore",
    "requests",
    "urllib3",
    "ldap",
    "django_auth_ldap",
    "rich",
    "yaml",
}
# Our own rooms that only a run needs (the copy pipeline, a restore, the worker's tasks, the web).
HEAVY_ROOMS = (
    "backups.tasks",
    "backups.web",
    "backups.elastic.client",
    "backups.operations.backup",
    "backups.operations.restore",
    "backups.storage.restore",
    "a4c_backup.celery",
    "a4c_backup.urls",
)


def loaded_by(tmp_path, *argv: str) -> tuple[int, str, set[str]]:
    where = tmp_path / "modules.json"
    env = {**os.environ, "DATABASE_URL": database_url(connection)}
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, str(where), *argv],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = json.loads(where.read_text())
    return found["code"], ran.stdout + ran.stderr, set(found["modules"])


def test_listing_the_backups_loads_no_client_no_celery_and_no_views(db, tmp_path):
    code, said, modules = loaded_by(tmp_path, "backups", "--json")

    assert code == 0, said
    assert json.loads(said.strip().splitlines()[-1]) == []
    assert sorted(HEAVY & {name.split(".")[0] for name in modules}) == []
    assert sorted(m for m in modules if m.startswith(HEAVY_ROOMS)) == []


def test_a_command_still_stops_at_a_setting_in_error_without_the_clients(db, tmp_path, monkeypatch):
    """The settings checks every command runs first read the settings, not the network."""
    monkeypatch.setenv("A4C_ES_URLS", "http://localhost:9300")

    code, said, modules = loaded_by(tmp_path, "backups", "--json")

    assert code == 2
    assert said.startswith("error: configuration: the environment variable A4C_ES_URLS")
    assert "names port 9300" in said
    assert sorted(HEAVY & {name.split(".")[0] for name in modules}) == []
