"""Issue 26's done-when: `manage.py drill --latest` on the quickstart stack passes and prints the
measured restore time. The quickstart's own commands (scripts/quickstart.sh: `migrate`,
`demo_data --size small`), then a backup and the drill, each a `manage.py` process as an
operator types it, against the real Elasticsearch; the installation is the test's own (its
database, data dir, storage, repository and index prefix), so the services quickstart.sh
starts are not needed and a developer's demo data is left alone."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

from backups.elastic import client as elastic


@pytest.fixture
def quickstart_env(tmp_path, es_cluster, es_path_repo):
    tag = "q" + secrets.token_hex(4)
    repository, location = f"a4c-quickstart-{tag}", es_path_repo / f"quickstart-{tag}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("A4C_", "DATABASE_URL"))}
    env.update(
        {
            "A4C_VAR_DIR": str(tmp_path / "var"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "A4C_ES_URLS": ",".join(django_settings.A4C_ES_URLS),
            "A4C_ES_REPOSITORY": repository,
            "A4C_ES_REPOSITORY_PATH": str(location),
            "A4C_DATA_DIR": str(tmp_path / "a4c-data"),
            "A4C_BACKUP_DIR": str(tmp_path / "storage"),
            "A4C_INDEX_INCLUDE": f"{tag}-*",
            "A4C_DRILL_INDEX_PREFIX": f".{tag}-drill-",
            "A4C_POLL_SECONDS": "0.1",
        }
    )
    (tmp_path / "var").mkdir()
    yield tag, env
    es_cluster.client.indices.delete(
        index=f"{tag}-*,.{tag}-drill-*", expand_wildcards="all", ignore_unavailable=True
    )
    for snapshot in es_cluster.snapshots(repository):
        es_cluster.delete_snapshot(repository, snapshot.name)
    try:
        es_cluster.delete_repository(repository)
    except elastic.ElasticError:
        pass  # never registered
    shutil.rmtree(location, ignore_errors=True)


def manage_py(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_drill_latest_on_the_quickstart_demo_data_passes_and_prints_the_restore_time(
    quickstart_env, es_cluster
):
    tag, env = quickstart_env
    for argv in (
        ("migrate", "--noinput"),
        ("demo_data", "--size", "small", "--prefix", f"{tag}-"),
        ("backup", "--name", "demo"),
    ):
        done = manage_py(env, *argv)
        assert done.returncode == 0, f"manage.py {' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    indices = es_cluster.indices(include=[f"{tag}-*"])
    assert len(indices) >= 20, "the quickstart's demo data is about 30 indices"

    drill = manage_py(env, "drill", "--latest")

    assert drill.returncode == 0, f"{drill.stdout}\n{drill.stderr}"
    measured = re.search(
        r"^backup demo passed its restore drill: measured restore time (\d+\.\d) s$",
        drill.stdout,
        re.M,
    )
    assert measured, drill.stdout
    assert float(measured.group(1)) > 0
    assert re.search(
        rf"^elasticsearch: {len(indices)} indices, [\d,]+ documents restored in \d+\.\d s$",
        drill.stdout,
        re.M,
    ), drill.stdout
    assert re.search(
        r"^files: [\d,]+ files, [\d,]+ bytes restored in \d+\.\d s$", drill.stdout, re.M
    )
    # nothing of the drill is left in the cluster
    left = es_cluster.client.indices.get_settings(
        index=f".{tag}-drill-*", expand_wildcards="all", filter_path="*.settings.index.uuid"
    )
    assert not left
