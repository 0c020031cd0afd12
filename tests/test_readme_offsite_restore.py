"""The README's "Restore from the bucket alone" steps, run as written: a set pushed into the
real S3 server (S3Proxy) by the old machine's command line restores on a second machine (a new
Elasticsearch cluster with its own path.repo, a new backup storage, a new database, no data
dir) from the bucket and the key alone, byte for byte."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from fault_support import ThrowawayElasticsearch, backed_up, es_state, tree
from offsite_support import S3_CREDENTIAL, S3_ENDPOINT, S3_IDENTITY
from test_readme_disaster_recovery import run_steps

from backups.elastic import client as elastic

pytestmark = pytest.mark.django_db(transaction=True)

README = Path(django_settings.BASE_DIR) / "README.md"
# Ports of their own: the disaster recovery test's second cluster may run at the same time.
SECOND_HTTP_PORT = int(os.environ.get("A4C_OFFSITE_DR_ES_PORT", "9283"))
SECOND_TRANSPORT_PORT = int(os.environ.get("A4C_OFFSITE_DR_ES_TRANSPORT_PORT", "9383"))


def readme_steps(machine: str) -> str:
    """The shell block under the README's ``<!-- offsite-restore: MACHINE -->`` marker."""
    text = README.read_text()
    found = re.search(rf"<!-- offsite-restore: {machine} -->\n```sh\n(.*?)```", text, re.S)
    assert found, f"README.md lost its offsite-restore block for the {machine}"
    return found.group(1)


@pytest.fixture
def second_cluster():
    # Under var/, not the test's tmp dir: the node's user must reach it through every parent.
    root = Path(django_settings.BASE_DIR) / "var" / "es-offsite-second" / str(os.getpid())
    node = ThrowawayElasticsearch(
        root,
        http_port=SECOND_HTTP_PORT,
        transport_port=SECOND_TRANSPORT_PORT,
        name="es-offsite-second",
    )
    node.start()
    yield node
    node.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_the_readme_steps_restore_a4c_on_a_second_machine_from_the_bucket_alone(
    small_a4c, cli_actor, settings, offsite, second_cluster, tmp_path
):
    a4c = small_a4c
    (a4c.data_dir / "csar" / "random.bin").write_bytes(os.urandom(200 << 10))
    before_es, before_files = es_state(a4c.cluster, a4c.prefix), tree(a4c.data_dir)
    settings.A4C_OFFSITE_URL = ""  # the backup's own aftercare asks for no copy here
    backed_up(cli_actor, "acc1")
    keyfile = tmp_path / "restorer" / "restorer.key"
    keyfile.parent.mkdir()
    bucket = {
        "A4C_OFFSITE_URL": offsite.where(),
        "A4C_OFFSITE_ENDPOINT_URL": S3_ENDPOINT,
        "A4C_OFFSITE_REGION": "us-east-1",
        "A4C_OFFSITE_ACCESS_KEY": S3_IDENTITY,
        "A4C_OFFSITE_SECRET_KEY": S3_CREDENTIAL,
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("A4C_", "DATABASE_URL"))}
    base |= {
        "KEYFILE": str(keyfile),
        "SIGNER": str(tmp_path / "restorer" / "old-console.pub"),
        "A4C_POLL_SECONDS": "0.1",
    }
    old = readme_steps("old machine")
    keygen, rest = old.split("\n", 1)
    # The key pair is made on the restorer's own machine, which has no bucket settings.
    recipient = run_steps(keygen, base).stdout.strip()
    assert recipient.startswith("age1")
    base |= bucket | {"RECIPIENT": recipient}
    old_machine = base | {
        "A4C_OFFSITE_SEGMENT_SIZE": "64K",  # a few segments
        "A4C_SIGNING_KEY_FILE": str(tmp_path / "old-machine" / "signing-key"),
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "A4C_ES_URLS": settings.A4C_ES_URLS[0],
        "A4C_BACKUP_DIR": str(settings.A4C_BACKUP_DIR),
        "A4C_ES_REPOSITORY": settings.A4C_ES_REPOSITORY,
        "A4C_ES_REPOSITORY_PATH": settings.A4C_ES_REPOSITORY_PATH,
    }
    pushed = run_steps(rest, old_machine)
    assert "backup acc1 copied off-site" in pushed.stdout
    assert offsite.head("acc1/COPY.json") is not None

    # Nothing of the old host on the new one: no data dir, no storage, no database; only the
    # bucket's settings, the key file and the old console's public signing key.
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

    listed = [line for line in done.stdout.splitlines() if line.startswith("acc1 ")]
    assert listed and "not here" in listed[0], done.stdout
    assert "backup acc1 imported (signed by SHA256:" in done.stdout
    assert "other cluster: Backup acc1 was taken on cluster" in done.stdout
    assert "acc1" in done.stdout.splitlines()[-1]
    settings.A4C_ES_URLS = [second_cluster.url]
    elastic.cluster.cache_clear()
    try:
        assert es_state(elastic.cluster(), a4c.prefix) == before_es
    finally:
        elastic.cluster.cache_clear()  # the settings go back after the test; so must the client
    assert tree(new_data) == before_files
