"""The README's "Disaster recovery" steps, run as written: an encrypted off-site archive of a
backup restores on a second machine (a new Elasticsearch cluster with its own path.repo, a new
backup storage, a new database, no data dir), byte for byte."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from fault_support import ThrowawayElasticsearch, backed_up, es_state, tree

from backups.elastic import client as elastic

pytestmark = pytest.mark.django_db(transaction=True)

README = Path(django_settings.BASE_DIR) / "README.md"
# Ports set aside for a second, fresh cluster (the shared one is on 9200, the faults one 9250).
SECOND_HTTP_PORT = int(os.environ.get("A4C_DR_ES_PORT", "9281"))
SECOND_TRANSPORT_PORT = int(os.environ.get("A4C_DR_ES_TRANSPORT_PORT", "9381"))


def readme_steps(machine: str) -> str:
    """The shell block under the README's ``<!-- disaster-recovery: MACHINE -->`` marker."""
    text = README.read_text()
    found = re.search(rf"<!-- disaster-recovery: {machine} -->\n```sh\n(.*?)```", text, re.S)
    assert found, f"README.md lost its disaster-recovery block for the {machine}"
    return found.group(1)


def run_steps(script: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done


@pytest.fixture
def second_cluster():
    # Under var/, not the test's tmp dir: the node's user must reach it through every parent.
    root = Path(django_settings.BASE_DIR) / "var" / "es-second" / str(os.getpid())
    node = ThrowawayElasticsearch(
        root,
        http_port=SECOND_HTTP_PORT,
        transport_port=SECOND_TRANSPORT_PORT,
        name="es-second",
    )
    node.start()
    yield node
    node.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_the_readme_steps_bring_a4c_back_on_a_second_machine_from_an_offsite_archive(
    small_a4c,
    cli_actor,
    settings,
    second_cluster,
    tmp_path,
):
    a4c = small_a4c
    before_es, before_files = es_state(a4c.cluster, a4c.prefix), tree(a4c.data_dir)
    backed_up(cli_actor, "acc1")
    keyfile, archive = tmp_path / "offsite" / "restorer.key", tmp_path / "offsite" / "acc1.a4c"
    keyfile.parent.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("A4C_", "DATABASE_URL"))} | {
        "KEYFILE": str(keyfile),
        "ARCHIVE": str(archive),
        "SIGNER": str(tmp_path / "offsite" / "old-console.pub"),
        "A4C_POLL_SECONDS": "0.1",
    }
    old_machine = base | {
        # Each machine signs with a key of its own: the new one trusts the old one's archives
        # only by the public key the README says to keep.
        "A4C_SIGNING_KEY_FILE": str(tmp_path / "old-machine" / "signing-key"),
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "A4C_ES_URLS": settings.A4C_ES_URLS[0],
        "A4C_BACKUP_DIR": str(settings.A4C_BACKUP_DIR),
        "A4C_ES_REPOSITORY": settings.A4C_ES_REPOSITORY,
        "A4C_ES_REPOSITORY_PATH": settings.A4C_ES_REPOSITORY_PATH,
    }
    old = readme_steps("old machine")
    keygen, rest = old.split("\n", 1)
    recipient = run_steps(keygen, old_machine).stdout.strip()
    assert recipient.startswith("age1") and oct(keyfile.stat().st_mode)[-3:] == "600"
    run_steps(rest, old_machine | {"RECIPIENT": recipient})
    assert archive.read_bytes().startswith(b"age-encryption.org/v1\n")

    # Nothing of Alien4Cloud's on the new host: no data dir, not even its parent; the console's
    # own dir holds its (SQLite) database.
    (tmp_path / "new-machine").mkdir()
    new_data = tmp_path / "new-machine" / "alien4cloud" / "a4c-data"
    new_machine = base | {
        "A4C_SIGNING_KEY_FILE": str(tmp_path / "new-machine" / "signing-key"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'new-machine' / 'db.sqlite3'}",
        "A4C_ES_URLS": second_cluster.url,
        "A4C_ES_REPOSITORY_PATH": str(second_cluster.path_repo / "a4c-backup"),
        "A4C_BACKUP_DIR": str(tmp_path / "new-machine" / "storage"),
        "A4C_DATA_DIR": str(new_data),
        "A4C_INDEX_INCLUDE": f"{a4c.prefix}*",
    }
    done = run_steps(readme_steps("new machine"), new_machine)

    assert "backup acc1 imported (signed by SHA256:" in done.stdout
    assert "acc1" in done.stdout.splitlines()[-1]
    assert "other cluster: Backup acc1 was taken on cluster" in done.stdout
    assert f"The data dir {new_data} does not exist: it will be created" in done.stdout
    settings.A4C_ES_URLS = [second_cluster.url]
    elastic.cluster.cache_clear()
    try:
        assert es_state(elastic.cluster(), a4c.prefix) == before_es
    finally:
        elastic.cluster.cache_clear()  # the settings go back after the test; so must the client
    assert tree(new_data) == before_files
