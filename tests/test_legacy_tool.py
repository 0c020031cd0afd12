"""backup-restore-tool.sh: the original tool's command line, run as a cron line would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from fault_support import backed_up, tree

from backups import operations
from backups.demo import generator as demo
from backups.models import Backup, RestoreRun
from backups.storage import Store

pytestmark = pytest.mark.django_db(transaction=True)

TOOL_DIR = Path(django_settings.BASE_DIR)
TOOL = "./backup-restore-tool.sh"


@pytest.fixture
def config(a4c, settings, tmp_path) -> Path:
    """A config.yml in the original format naming the test's data dir, storage and cluster."""
    address = urlsplit(settings.A4C_ES_URLS[0]).netloc
    path = tmp_path / "config.yml"
    path.write_text(
        "elasticsearch:\n"
        f"  cluster_name: {a4c.cluster.info().cluster_name}\n"
        f"  addresses: {address}\n"
        f"backup.files_dir: {settings.A4C_BACKUP_DIR}\n"
        f"alien4cloud.dir: {a4c.data_dir}\n"
    )
    return path


@pytest.fixture
def tool(settings, config):
    """Runs the tool from its own directory, as `cd /opt/tool && ./backup-restore-tool.sh ...`.

    What config.yml holds comes from config.yml only: the environment carries the database
    and the test's own snapshot repository and index prefix, which config.yml has no key for.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("A4C_", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"))
    }
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
            "A4C_ES_REPOSITORY": settings.A4C_ES_REPOSITORY,
            "A4C_ES_REPOSITORY_PATH": settings.A4C_ES_REPOSITORY_PATH,
            "A4C_INDEX_INCLUDE": ",".join(settings.A4C_INDEX_INCLUDE),
            "A4C_POLL_SECONDS": "0.1",
            "A4C_LEGACY_CONFIG": str(config),
        }
    )

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [TOOL, *args],
            cwd=TOOL_DIR,
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


def test_the_old_cron_line_backs_up_and_a_restore_brings_everything_back(
    a4c, tool, config, settings
):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    before_es, before_files = a4c.state(), tree(a4c.data_dir)

    backup = tool("-backup", "-n", "nightly")

    assert backup.returncode == 0, backup.stderr
    assert "backup-restore-tool.sh: backing up Alien4Cloud as nightly" in backup.stdout
    assert backup.stdout.rstrip().endswith("backup-restore-tool.sh: backup done")
    row = Backup.objects.get(name="nightly")
    assert row.status == Backup.Status.SUCCEEDED and row.source == "cli"
    assert Store(settings.A4C_BACKUP_DIR).manifests.exists("nightly")  # backup.files_dir was read

    client = a4c.cluster.client
    client.indices.delete(index=a4c.index("plugin"))
    client.index(index=a4c.index("user"), id="intruder", document={"username": "x"}, refresh=True)
    (a4c.data_dir / "artifacts" / "added-later.bin").write_bytes(b"later")
    next(p for p in (a4c.data_dir / "images").iterdir()).unlink()
    assert a4c.state() != before_es and tree(a4c.data_dir) != before_files

    restore = tool("-restore", "-n", "nightly", "-c", str(config), A4C_LEGACY_CONFIG="")

    assert restore.returncode == 0, restore.stderr
    assert a4c.state() == before_es
    assert tree(a4c.data_dir) == before_files
    run = RestoreRun.objects.get()
    assert run.backup.name == "nightly" and run.safety_backup is not None
    assert "restoring the newest backup of nightly" in restore.stdout

    again = tool("-backup", "-n", "nightly")
    listing = tool("-list")

    assert again.returncode == 0, again.stderr
    second = Backup.objects.filter(name__startswith="nightly-").get()
    assert second.status == Backup.Status.SUCCEEDED
    assert "nightly " in listing.stdout and second.name in listing.stdout


def test_a_fresh_install_with_only_config_yml_finds_the_set_and_restores_it(
    a4c, tool, settings, tmp_path
):
    """The host is lost: a new database, a cluster that lost the indices and the repository's
    registration, no data dir; config.yml still names the same backup.files_dir."""
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    before_es, before_files = a4c.state(), tree(a4c.data_dir)
    assert tool("-backup", "-n", "nightly").returncode == 0
    fresh = {"DATABASE_URL": f"sqlite:///{tmp_path / 'fresh-install.sqlite3'}"}
    migrated = subprocess.run(
        [str(TOOL_DIR / ".venv" / "bin" / "python"), "manage.py", "migrate", "--no-input"],
        cwd=TOOL_DIR,
        env={**os.environ, **fresh},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrated.returncode == 0, migrated.stderr
    a4c.cluster.client.indices.delete(index=f"{a4c.prefix}*", expand_wildcards="all")
    a4c.cluster.delete_repository(settings.A4C_ES_REPOSITORY)
    shutil.rmtree(a4c.data_dir)

    restore = tool("-restore", "-n", "nightly", **fresh)

    assert restore.returncode == 0, restore.stderr
    assert "imported from the backup storage by sync: nightly" in restore.stderr
    assert a4c.state() == before_es
    assert tree(a4c.data_dir) == before_files


def test_help_lists_every_option(tool):
    shown = tool("-help")

    assert shown.returncode == 0
    for option in (
        "-backup -n NAME",
        "-restore -n NAME",
        "-list",
        "-delete -n NAME",
        "-help",
        "-c FILE",
        "Exit codes",
    ):
        assert option in shown.stdout


def test_a_name_in_capitals_from_the_old_documentation_backs_up_and_deletes(tool, a4c):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)

    backed_up = tool("-backup", "-n", "yourBackupName")

    assert backed_up.returncode == 0, backed_up.stderr
    assert "as yourbackupname (yourBackupName in lowercase" in backed_up.stdout
    backup = Backup.objects.get()
    assert backup.name == "yourbackupname" and backup.status == Backup.Status.SUCCEEDED
    assert "-n yourBackupName" in backup.description, "the name as typed is kept for people"

    deleted = tool("-delete", "-n", "yourBackupName")

    assert deleted.returncode == 0, deleted.stderr
    backup.refresh_from_db()
    assert backup.status == Backup.Status.DELETED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "choose an action"),
        (("-backup",), "-backup needs a backup name"),
        (("-backup", "-restore", "-n", "x"), "-backup and -restore cannot go together"),
        (("-backup", "-n"), "-n needs a value"),
        (("-frobnicate",), "unknown option '-frobnicate'"),
        (("-list", "-c", "/nowhere/config.yml"), "the config file /nowhere/config.yml does not"),
    ],
)
def test_bad_usage_is_one_line_and_exit_code_2(tool, args, message):
    refused = tool(*args)

    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and message in refused.stderr


def test_restoring_or_deleting_an_unknown_backup_exits_4(tool):
    restore = tool("-restore", "-n", "never-taken")
    delete = tool("-delete", "-n", "never-taken")

    assert restore.returncode == delete.returncode == 4
    assert "error: No backup 'never-taken'" in restore.stderr
    assert "restore failed (exit code 4)" in restore.stderr


def test_a_missing_virtualenv_is_named_with_what_to_run(tool):
    missing = tool("-list", A4C_PYTHON="/nowhere/bin/python")

    assert missing.returncode == 1
    assert "no Python environment at /nowhere/bin/python" in missing.stderr
    assert "scripts/setup.sh" in missing.stderr


def test_a_planted_newer_set_of_the_series_is_never_the_one_dash_n_restores(
    small_a4c, tool, settings, cli_actor
):
    """Finding 2 of issue 23: a planted `nb-20991208-030000` (created 2099, other file
    contents), taken in by sync, was restored as the newest of the series without asking. The
    record schema now refuses dates in the future: the planted one is as new as it may claim."""
    key = {"A4C_SIGNING_KEY_FILE": str(settings.A4C_SIGNING_KEY_FILE)}
    data = small_a4c.data_dir / "data.txt"
    data.write_text("genuine")
    assert tool("-backup", "-n", "nb", **key).returncode == 0
    data.write_text("ATTACKER")
    backed_up(cli_actor, "evil")
    storage = Path(settings.A4C_BACKUP_DIR)
    forged = json.loads((storage / "records" / "evil.json").read_text())
    forged.pop("signature")
    forged["record"].update(
        name="nb-20991208-030000",
        set_id="a" * 32,
        created_at=(timezone.now() + timedelta(minutes=1)).isoformat(),
        finished_at=(timezone.now() + timedelta(minutes=2)).isoformat(),
    )
    (storage / "records" / "nb-20991208-030000.json").write_text(json.dumps(forged))
    manifests = storage / "manifests"
    shutil.copy(manifests / "evil.manifest", manifests / "nb-20991208-030000.manifest")
    assert operations.sync_catalog(cli_actor, foreign=True).foreign == ["nb-20991208-030000"]

    restore = tool("-restore", "-n", "nb", **key)

    assert restore.returncode == 0, restore.stderr
    assert data.read_text() == "genuine"
    (run,) = RestoreRun.objects.all()
    assert run.backup.name == "nb" and not run.backup.foreign
