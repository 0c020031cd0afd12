"""A secured Elasticsearch 8.19: TLS on HTTP with a CA made here, a password, API keys.

A node of its own (port A4C_TEST_ES_SECURED_PORT, 9275) with a file-realm user; the suite's
node at 9200 stays unsecured. Every wrong credential gives an error naming its setting.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from fault_support import PROJECT, ThrowawayElasticsearch, es_state, tree

from backups import operations
from backups.demo import generator as demo
from backups.doctor.checks import run_checks
from backups.elastic import client as elastic
from backups.models import Backup, RestoreRun

pytestmark = pytest.mark.django_db(transaction=True)

PORT = int(os.environ.get("A4C_TEST_ES_SECURED_PORT", "9275"))
USER, PASSWORD = "a4c-backup", "s3cret-" + secrets.token_hex(4)


def make_ca(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.crt"),
         "-subj", f"/CN={name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder / f"{name}.crt"


def make_node_certificate(folder: Path, ca: str) -> None:
    """A certificate for 127.0.0.1, signed by the CA ``ca``."""
    extensions = folder / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(folder / "node.key"), "-out", str(folder / "node.csr")],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-req", "-days", "2", "-in", str(folder / "node.csr"),
         "-CA", str(folder / f"{ca}.crt"), "-CAkey", str(folder / f"{ca}.key"),
         "-CAcreateserial", "-extfile", str(extensions), "-out", str(folder / "node.crt")],
        check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def secured_es():
    root = PROJECT / "var" / "es-secured" / str(os.getpid())
    certs = root / "config" / "certs"
    ca = make_ca(certs, "a4c-test-ca")
    make_node_certificate(certs, "a4c-test-ca")
    other_ca = make_ca(root / "elsewhere", "another-ca")
    node = ThrowawayElasticsearch(
        root,
        http_port=PORT,
        transport_port=PORT + 100,
        security="\n".join(
            [
                "xpack.security.enabled: true",
                "xpack.security.http.ssl.enabled: true",
                "xpack.security.http.ssl.key: certs/node.key",
                "xpack.security.http.ssl.certificate: certs/node.crt",
                'xpack.security.http.ssl.certificate_authorities: ["certs/a4c-test-ca.crt"]',
                "xpack.security.transport.ssl.enabled: false",
            ]
        ),
    )
    node.run_tool("elasticsearch-users", "useradd", USER, "-p", PASSWORD, "-r", "superuser")
    node.start()
    node.ca, node.other_ca = ca, other_ca
    yield node
    node.stop()
    shutil.rmtree(root, ignore_errors=True)


class Secured:
    def __init__(self, node, settings, root: Path):
        self.node, self.settings = node, settings
        self.tag = "s" + secrets.token_hex(3)
        self.prefix = f"{self.tag}-"
        self.data_dir = root / "a4c-data"
        settings.A4C_ES_URLS = [node.url]
        settings.A4C_ES_CA_CERT = str(node.ca)
        settings.A4C_ES_REPOSITORY = f"secured-{self.tag}"
        settings.A4C_ES_REPOSITORY_PATH = str(node.path_repo / f"secured-{self.tag}")
        settings.A4C_INDEX_INCLUDE = [f"{self.prefix}*"]
        settings.A4C_DATA_DIR = self.data_dir
        settings.A4C_BACKUP_DIR = root / "storage"
        settings.A4C_POLL_SECONDS = 0.1
        self.with_password(PASSWORD)

    def with_password(self, password: str) -> elastic.Cluster:
        self.settings.A4C_ES_API_KEY = ""
        self.settings.A4C_ES_USERNAME, self.settings.A4C_ES_PASSWORD = USER, password
        return self.reconnect()

    def with_api_key(self, key: str) -> elastic.Cluster:
        self.settings.A4C_ES_USERNAME = self.settings.A4C_ES_PASSWORD = ""
        self.settings.A4C_ES_API_KEY = key
        return self.reconnect()

    def reconnect(self) -> elastic.Cluster:
        elastic.cluster.cache_clear()
        self.cluster = elastic.cluster()
        return self.cluster

    def state(self) -> dict:
        return es_state(self.cluster, self.prefix)


@pytest.fixture
def secured(secured_es, settings, tmp_path):
    install = Secured(secured_es, settings, tmp_path)
    demo.generate(install.data_dir, size="small", prefix=install.prefix, cluster=install.cluster)
    yield install
    settings.A4C_ES_CA_CERT = str(secured_es.ca)
    cluster = install.with_password(PASSWORD)
    cluster.client.indices.delete(index=f"{install.prefix}*", ignore_unavailable=True)
    for snapshot in cluster.snapshots(settings.A4C_ES_REPOSITORY):
        cluster.delete_snapshot(settings.A4C_ES_REPOSITORY, snapshot.name)
    elastic.cluster.cache_clear()


def elasticsearch_check():
    return next(check for check in run_checks(worker_timeout=0.1) if check.name == "Elasticsearch")


def test_a_secured_cluster_backs_up_restores_and_passes_the_doctor(secured, cli_actor):
    before, files = secured.state(), tree(secured.data_dir)
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="secured"), cli_actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    secured.cluster.delete_indices([f"{secured.prefix}application", f"{secured.prefix}plugin"])
    (secured.data_dir / "artifacts" / "later.txt").write_text("written after the backup")

    run = operations.request_restore(
        operations.RestoreRequest(backup.pk), cli_actor, confirm=backup.name
    )
    run = operations.run_restore(run.pk)

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert secured.state() == before
    assert tree(secured.data_dir) == files
    check = elasticsearch_check()
    assert check.level != "error" and check.summary.startswith("8.19.8 at https://"), check


def test_an_invalid_api_key_is_refused_with_a_message_naming_the_setting(secured, cli_actor):
    # The minimal 8.19 distribution lacks analysis-common, which the security index needs, so
    # no real key can be created here: this one is well formed and unknown to the cluster.
    made_up = base64.b64encode(b"a4c-made-up-id:" + secrets.token_hex(11).encode()).decode()
    secured.with_api_key(made_up)

    refused = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="bad-key"), cli_actor).pk
    )

    assert refused.status == Backup.Status.FAILED
    assert "A4C_ES_API_KEY" in refused.error_message and "HTTP 401" in refused.error_message
    check = elasticsearch_check()
    assert check.level == "error" and "A4C_ES_API_KEY" in check.summary
    assert "Start Elasticsearch" not in check.fix, "it answers: starting it is not the fix"


def test_a_wrong_password_is_refused_with_a_message_naming_the_setting(secured, cli_actor):
    secured.with_password("not-the-password")

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="wrong-pw"), cli_actor).pk
    )

    assert backup.status == Backup.Status.FAILED
    assert "A4C_ES_PASSWORD" in backup.error_message and "HTTP 401" in backup.error_message
    check = elasticsearch_check()
    assert check.level == "error" and "A4C_ES_PASSWORD" in check.summary
    assert "Start Elasticsearch" not in check.fix


def test_a_certificate_from_another_ca_is_refused_with_a_message_naming_the_setting(
    secured, secured_es, settings, cli_actor
):
    settings.A4C_ES_CA_CERT = str(secured_es.other_ca)
    secured.reconnect()

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="wrong-ca"), cli_actor).pk
    )

    assert backup.status == Backup.Status.FAILED
    assert "A4C_ES_CA_CERT" in backup.error_message
    assert str(secured_es.other_ca) in backup.error_message
    check = elasticsearch_check()
    assert check.level == "error" and "A4C_ES_CA_CERT" in check.summary
    assert "Start Elasticsearch" not in check.fix
