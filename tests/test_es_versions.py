"""Every Elasticsearch version the tool supports, on real servers: 6.8 (what Alien4Cloud 3.x
runs), 7.17, 8.19 and 9.2.

8.19.8 is the suite's own node (A4C_ES_URLS). The others are started once, by
scripts/services.sh as an operator would, side by side on ports A4C_TEST_ES_MATRIX_PORT
(9270) and up, sharing one path.repo, and stopped when the module is done.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import elasticsearch
import pytest
from fault_support import (
    PROJECT,
    ScriptedElasticsearch,
    es_state,
    lose_the_console_database,
    run_all,
    tree,
)

from backups import operations
from backups.demo import generator as demo
from backups.doctor.checks import run_checks
from backups.elastic import client as elastic
from backups.elastic import drills as elastic_drills
from backups.elastic import repository as repository_files
from backups.elastic import versions
from backups.errors import DamagedBackup, InvalidInput
from backups.models import Backup, RestoreRun

pytestmark = pytest.mark.django_db(transaction=True)

MATRIX_PORT = int(os.environ.get("A4C_TEST_ES_MATRIX_PORT", "9270"))
STARTED_HERE = ("6.8.23", "7.17.29", "9.2.0")
SUITE_NODE = "8.19.8"
VERSIONS = ("6.8.23", "7.17.29", SUITE_NODE, "9.2.0")


@pytest.fixture(scope="module")
def servers() -> dict[str, ScriptedElasticsearch]:
    var_dir = PROJECT / "var" / "es-matrix"
    started = {
        version: ScriptedElasticsearch(version, MATRIX_PORT + i, MATRIX_PORT + 100 + i, var_dir)
        for i, version in enumerate(STARTED_HERE)
    }
    try:
        run_all(list(started.values()), "start")
        yield started
    finally:
        run_all(list(started.values()), "stop")


class Install:
    """An isolated Alien4Cloud installation on one server: index prefix, data dir, repository."""

    def __init__(self, version: str, url: str, path_repo: Path, root: Path, tag: str):
        self.version, self.url, self.path_repo = version, url, path_repo
        self.prefix = f"{tag}-"
        self.repository = f"a4c-versions-{tag}"
        self.data_dir = root / "a4c-data"
        self.backup_dir = root / "storage"
        self.repository_path = path_repo / self.repository

    def use(self, settings) -> elastic.Cluster:
        """Points the tool at this installation, as its settings would."""
        settings.A4C_ES_URLS = [self.url]
        settings.A4C_ES_REPOSITORY = self.repository
        settings.A4C_ES_REPOSITORY_PATH = str(self.repository_path)
        settings.A4C_INDEX_INCLUDE = [f"{self.prefix}*"]
        settings.A4C_DATA_DIR = self.data_dir
        settings.A4C_BACKUP_DIR = self.backup_dir
        settings.A4C_POLL_SECONDS = 0.1
        elastic.cluster.cache_clear()
        self.cluster = elastic.cluster()
        return self.cluster

    def index(self, name: str) -> str:
        return self.prefix + name

    def state(self) -> dict:
        return es_state(self.cluster, self.prefix)

    def portable_state(self) -> dict:
        """Documents, mappings and aliases as every version shows them (no 6.x mapping type)."""
        state = self.state()
        mappings = self.cluster.mappings(state)
        return {name: {**index, "mappings": mappings[name]} for name, index in state.items()}

    def clean(self) -> None:
        if self.cluster.indices(include=[f"{self.prefix}*"]):
            self.cluster.client.indices.delete(index=f"{self.prefix}*", ignore_unavailable=True)
        for snapshot in self.cluster.snapshots(self.repository):
            self.cluster.delete_snapshot(self.repository, snapshot.name)
        try:
            self.cluster.delete_repository(self.repository)
        except elastic.ElasticError:
            pass  # never registered
        # What a "new machine" imported: read-only repositories beside this one's, and dirs.
        for name in self.cluster.client.snapshot.get_repository():
            if name.startswith(self.repository):
                self.cluster.delete_repository(name)
        for path in self.path_repo.glob(f"{self.repository}*"):
            shutil.rmtree(path, ignore_errors=True)

    def become_a_new_machine(self, settings, root: Path) -> None:
        """The host is gone: a new, empty console database, backup storage and repository
        path, no data dir, and none of this installation's indices or repository left in
        the cluster (a fresh cluster, as far as this installation can tell)."""
        self.cluster.client.indices.delete(index=f"{self.prefix}*", expand_wildcards="all")
        self.cluster.delete_repository(self.repository)
        shutil.rmtree(self.data_dir)
        lose_the_console_database()
        self.backup_dir = root / "storage-new-machine"
        self.repository_path = self.path_repo / f"{self.repository}-new-machine"
        self.use(settings)


def install_on(server_version, servers, es_path_repo, settings, root: Path) -> Install:
    if server_version == SUITE_NODE:
        url, path_repo = settings.A4C_ES_URLS[0], es_path_repo
    else:
        url, path_repo = servers[server_version].url, servers[server_version].path_repo
    install = Install(server_version, url, path_repo, root, "v" + secrets.token_hex(3))
    install.use(settings)
    return install


@pytest.fixture(params=VERSIONS)
def on_version(request, settings, tmp_path, es_path_repo):
    started = request.getfixturevalue("servers") if request.param != SUITE_NODE else {}
    install = install_on(request.param, started, es_path_repo, settings, tmp_path)
    demo.generate(install.data_dir, size="small", prefix=install.prefix, cluster=install.cluster)
    yield install
    install.clean()
    elastic.cluster.cache_clear()


def backed_up(actor, name: str) -> Backup:
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name=name), actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    return backup


def restored(backup: Backup, actor, **kwargs) -> RestoreRun:
    run = operations.request_restore(
        operations.RestoreRequest(backup.pk, **kwargs), actor, confirm=backup.name
    )
    run = operations.run_restore(run.pk)
    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    return run


def change_everything(install: Install) -> None:
    """Deletes, edits and adds documents, indices and files, through calls every version takes."""
    cluster = install.cluster
    application = install.index("application")
    apps = install.state()[application]["docs"]
    first, second = sorted(apps)[:2]
    cluster.client.delete(index=application, id=first, refresh=True)
    cluster.bulk_index(application, [(second, {**apps[second], "name": "renamed-by-test"})])
    cluster.bulk_index(install.index("user"), [("intruder", {"username": "intruder"})])
    cluster.delete_indices([install.index("plugin")])
    cluster.create_index(
        install.index("brandnew"), {}, settings={"number_of_shards": 1, "number_of_replicas": 0}
    )
    data = install.data_dir
    (data / "artifacts" / "added-later.bin").write_bytes(os.urandom(2048))
    next((data / "images").iterdir()).unlink()
    os.chmod(next((data / "plugins").rglob("*.yml")), 0o600)


def test_a_restore_brings_back_every_document_mapping_alias_and_file_and_a_delete_its_snapshot(
    on_version, cli_actor
):
    install = on_version
    before_es, before_files = install.state(), tree(install.data_dir)
    backup = backed_up(cli_actor, "round-trip")
    assert backup.es_version == install.version
    report = operations.verify_backup(backup.pk, cli_actor)
    assert report.ok, report.problems
    change_everything(install)

    plan = operations.plan_restore(operations.RestoreRequest(backup.pk))
    actions = {step.target: step.action for step in plan.indices}
    restored(backup, cli_actor)

    assert actions[install.index("plugin")] == "create"
    assert actions[install.index("application")] == "replace"
    assert actions[install.index("brandnew")] == "remove"
    assert plan.files.added and plan.files.removed
    assert install.state() == before_es
    assert tree(install.data_dir) == before_files
    deleted = operations.delete_backup(backup.pk, cli_actor)
    assert deleted.status == Backup.Status.DELETED
    assert install.cluster.snapshot(install.repository, backup.snapshot_location.snapshot) is None


def test_an_exported_set_imported_on_a_new_machine_restores_byte_for_byte(
    on_version, settings, tmp_path, cli_actor
):
    """Export reads the repository's own files, whose layout differs between versions: the
    archive's copy must be one the same version reads, on a machine where nothing is left."""
    install = on_version
    before_es, before_files = install.state(), tree(install.data_dir)
    carried = backed_up(cli_actor, "carried-off")
    backed_up(cli_actor, "stays-home")  # another snapshot of the repository the archive leaves
    archive = tmp_path / "carried-off.a4c"
    found = repository_files.snapshot_files(install.repository_path, carried.snapshot_name)
    metadata = {f.rsplit("/", 1)[1] for f in found.files if f.count("/") == 2}
    generations = {
        f.split("/index-")[1] for f in found.files if f.count("/") == 3 and "/index-" in f
    }
    if install.version.startswith("6."):  # each index's metadata named after the snapshot
        assert metadata == {f"meta-{found.uuid}.dat"}
        assert generations and all(g.isdigit() for g in generations)
    else:  # named through the catalog, and shard generations are UUIDs
        assert f"meta-{found.uuid}.dat" not in metadata and len(metadata) > 1
        assert generations and not any(g.isdigit() for g in generations)

    header = operations.export_backup("carried-off", archive, cli_actor, recipients=[])
    install.become_a_new_machine(settings, tmp_path)
    backup = operations.import_archive(archive, cli_actor)

    assert header.repository_files > 6
    assert backup.es_version == install.version
    assert operations.verify_backup(backup.pk, cli_actor).ok
    snapshots = install.cluster.snapshots(backup.repository)
    assert [s.name for s in snapshots] == ["carried-off"], "only the exported snapshot came"
    restored(backup, cli_actor, safety_backup=False)
    assert install.state() == before_es
    assert tree(install.data_dir) == before_files


def test_a_set_synced_on_a_new_machine_from_the_storage_that_survived_restores_byte_for_byte(
    on_version, settings, cli_actor
):
    """The host is gone but the backup storage and the snapshot repository survived: a new
    console with an empty database, no data dir and none of the indices syncs the storage
    and restores the set, on every version."""
    install = on_version
    before_es, before_files = install.state(), tree(install.data_dir)
    backed_up(cli_actor, "survives")
    install.cluster.client.indices.delete(index=f"{install.prefix}*", expand_wildcards="all")
    install.cluster.delete_repository(install.repository)
    shutil.rmtree(install.data_dir)
    lose_the_console_database()

    report = operations.sync_catalog(cli_actor)

    assert report.imported == ["survives"] and report.problems == []
    backup = Backup.objects.get(name="survives")
    assert not backup.foreign and backup.es_version == install.version
    restored(backup, cli_actor, safety_backup=False)
    assert install.state() == before_es
    assert tree(install.data_dir) == before_files


def test_a_drill_passes_and_changes_nothing_on_every_version(on_version, cli_actor, settings):
    install = on_version
    settings.A4C_DRILL_INDEX_PREFIX = f".{install.prefix}drill-"
    settings.A4C_DRILL_DIR = str(install.backup_dir.parent / "drills")
    backup = backed_up(cli_actor, "drilled")
    before_es, before_files = install.state(), tree(install.data_dir)

    job = operations.request_drill(backup.pk, cli_actor)
    report = operations.drill_now(job.pk)

    assert report.passed, report.problems
    assert report.indices == backup.index_count and report.documents == backup.document_count
    assert report.files == backup.file_count and report.restore_seconds > 0
    # listed from the snapshot's own files, as each version writes them
    assert report.aliases_unread == ""
    assert report.aliases == {name: index["aliases"] for name, index in before_es.items()}
    assert any(report.aliases.values()), "the demo puts aliases on some indices"
    # a backup taken before drills recorded counts and sizes only: the mappings and settings
    # are then checked against the snapshot's own metadata
    Backup.objects.filter(pk=backup.pk).update(
        indices={n: {"docs": i["docs"], "size": i["size"]} for n, i in backup.indices.items()}
    )
    older = operations.drill_now(operations.request_drill(backup.pk, cli_actor).pk)
    assert older.passed, older.problems
    assert install.state() == before_es
    assert tree(install.data_dir) == before_files
    assert not elastic_drills.indices_named(install.cluster, settings.A4C_DRILL_INDEX_PREFIX)
    assert not (install.backup_dir.parent / "drills" / f"drill-{job.pk}").exists()


def test_a_chosen_index_comes_back_alone_and_under_a_new_name(on_version, cli_actor):
    install = on_version
    application, plugin, user = (install.index(n) for n in ("application", "plugin", "user"))
    before = install.state()
    backup = backed_up(cli_actor, "chosen")
    change_everything(install)
    changed, changed_files = install.state(), tree(install.data_dir)

    restored(backup, cli_actor, scope="indices", indices=[application])
    restored(
        backup,
        cli_actor,
        scope="indices",
        indices=[plugin],
        rename_pattern=plugin,
        rename_replacement=install.index("plugin-again"),
    )

    now = install.state()
    assert now[application] == before[application]
    assert now[user] == changed[user], "an index not chosen keeps its changes"
    assert plugin not in now, "a renamed restore leaves the original name alone"
    again = now[install.index("plugin-again")]
    assert (again["docs"], again["mappings"]) == (
        before[plugin]["docs"],
        before[plugin]["mappings"],
    )
    assert tree(install.data_dir) == changed_files


def test_the_doctor_finds_each_version_usable(on_version):
    checks = {check.name: check for check in run_checks(worker_timeout=0.1)}

    assert checks["Elasticsearch"].summary.startswith(f"{on_version.version} at ")
    for name in ("Elasticsearch", "path.repo", "Snapshot repository"):
        assert checks[name].level != "error", (name, checks[name].summary)


def test_the_demo_on_6x_is_shaped_like_alien4cloud_3x(servers, settings, tmp_path):
    install = install_on("6.8.23", servers, None, settings, tmp_path)
    demo.generate(install.data_dir, size="small", prefix=install.prefix, cluster=install.cluster)
    try:
        raw = install.cluster.client.indices.get_mapping(index=f"{install.prefix}*")

        assert sorted(raw) == sorted(demo.index_names(install.prefix)), "one index per class"
        assert {tuple(body["mappings"]) for body in raw.values()} == {("_doc",)}
    finally:
        install.clean()


def test_an_unsupported_version_is_refused_before_anything_is_touched(
    servers, settings, tmp_path, monkeypatch, cli_actor
):
    install = install_on("6.8.23", servers, None, settings, tmp_path)
    install.data_dir.mkdir()
    monkeypatch.setattr(versions, "SUPPORTED", tuple(v for v in versions.SUPPORTED if v != (6, 8)))
    install.use(settings)

    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="refused"), cli_actor).pk
    )
    checks = {check.name: check for check in run_checks(worker_timeout=0.1)}

    assert backup.status == Backup.Status.FAILED
    assert "Elasticsearch 6.8.23 answered" in backup.error_message
    assert versions.SUPPORTED_TEXT in backup.error_message
    doctor = checks["Elasticsearch"]
    assert doctor.level == "error" and "6.8.23" in doctor.summary
    assert "Start Elasticsearch" not in doctor.fix, "it answers: starting it is not the fix"
    monkeypatch.undo()
    cluster = install.use(settings)
    with pytest.raises(elasticsearch.NotFoundError):  # the repository was never registered
        cluster.client.snapshot.get_repository(name=install.repository)


# --- moving between versions ----------------------------------------------------------------


@pytest.fixture
def old_and_new(servers, settings, tmp_path):
    """The same installation (data dir, repository path) seen from 6.8.23, then from 7.17.29."""
    old = install_on("6.8.23", servers, None, settings, tmp_path)
    new = install_on("7.17.29", servers, None, settings, tmp_path)
    new.prefix, new.repository, new.repository_path = (
        old.prefix,
        old.repository,
        old.repository_path,
    )
    yield old, new
    # 6.8 first: once 7.17 has written to the repository, 6.8 can no longer read it.
    for install in (old, new):
        install.use(settings)
        install.clean()
    elastic.cluster.cache_clear()


def test_a_backup_taken_on_6_8_restores_into_7_17(old_and_new, settings, cli_actor):
    old, new = old_and_new
    old.use(settings)
    demo.generate(old.data_dir, size="small", prefix=old.prefix, cluster=old.cluster)
    on_6, files = old.portable_state(), tree(old.data_dir)
    backup = backed_up(cli_actor, "leaving-6")
    change_everything(old)

    new.use(settings)
    restored(backup, cli_actor, other_cluster=True)  # another cluster: it must be said

    assert new.portable_state() == on_6
    assert tree(new.data_dir) == files


def test_a_newer_snapshot_is_refused_by_an_older_server_before_anything_changes(
    old_and_new, settings, cli_actor
):
    old, new = old_and_new
    new.use(settings)
    demo.generate(new.data_dir, size="small", prefix=new.prefix, cluster=new.cluster)
    backup = backed_up(cli_actor, "taken-on-7")
    old.use(settings)
    demo.generate(old.data_dir, size="small", prefix=old.prefix, cluster=old.cluster, reset=True)
    es_before, files_before = old.state(), tree(old.data_dir)

    with pytest.raises(InvalidInput) as refused:
        operations.request_restore(
            operations.RestoreRequest(backup.pk), cli_actor, confirm=backup.name
        )

    assert "7.17.29, newer than this cluster's 6.8.23" in str(refused.value)
    assert old.state() == es_before
    assert tree(old.data_dir) == files_before
    assert not RestoreRun.objects.exists()
    assert not Backup.objects.filter(trigger=Backup.Trigger.SAFETY).exists()


def test_a_slow_snapshot_recovery_is_waited_for_until_every_primary_has_started(on_version):
    """6.8 and 7.x call an index yellow while its primaries still wait for their snapshot
    recovery, and only 8.x reports unassigned primaries: a restore throttled to take seconds
    shows that the wait ends when every shard has started, on every version."""
    install = on_version
    client = install.cluster.client
    index, repository = install.index("throttled"), install.repository + "-slow"
    client.indices.create(index=index, settings={"number_of_shards": 3, "number_of_replicas": 0})
    noise = [(str(n), {"blob": secrets.token_urlsafe(600)}) for n in range(1500)]
    install.cluster.bulk_index(index, noise)
    client.snapshot.create_repository(
        name=repository,
        body={
            "type": "fs",
            "settings": {
                "location": str(install.path_repo / repository),
                "max_restore_bytes_per_sec": "100kb",
            },
        },
    )
    try:
        client.snapshot.create(
            repository=repository, snapshot="slow", indices=index, wait_for_completion=True
        )
        install.cluster.delete_indices([index])
        looks: list[tuple[int, int]] = []

        install.cluster.start_restore(repository, "slow", [index])
        install.cluster.wait_for_recovery(
            [index], on_progress=lambda p: looks.append((p.done, p.total)), poll=0.2
        )

        shards = client.cat.shards(index=index, format="json", h="prirep,state")
        assert [s["state"] for s in shards if s["prirep"] == "p"] == ["STARTED"] * 3
        assert install.cluster.count(index) == len(noise)
        assert looks[0][0] < 3, "the first look found primaries not yet started"
        assert len(looks) > 2, "it looked again while they recovered"
        assert looks[-1] == (3, 3)
    finally:
        client.options(ignore_status=404).snapshot.delete(repository=repository, snapshot="slow")
        client.options(ignore_status=404).snapshot.delete_repository(name=repository)


def moved_to(install: Install, machine: Install, settings) -> None:
    """Points ``install`` at the storage and repository path ``machine`` became."""
    install.backup_dir, install.repository_path = machine.backup_dir, machine.repository_path
    install.use(settings)


def test_a_set_exported_on_6_8_is_imported_and_restored_on_a_new_7_17_machine(
    old_and_new, settings, tmp_path, cli_actor
):
    old, new = old_and_new
    old.use(settings)
    demo.generate(old.data_dir, size="small", prefix=old.prefix, cluster=old.cluster)
    on_6, files = old.portable_state(), tree(old.data_dir)
    backed_up(cli_actor, "leaving-6")
    archive = tmp_path / "leaving-6.a4c"
    operations.export_backup("leaving-6", archive, cli_actor, recipients=[])
    old.become_a_new_machine(settings, tmp_path)

    moved_to(new, old, settings)
    backup = operations.import_archive(archive, cli_actor)
    restored(backup, cli_actor, other_cluster=True, safety_backup=False)

    assert backup.es_version == "6.8.23"
    assert new.portable_state() == on_6
    assert tree(new.data_dir) == files


def test_a_set_exported_on_7_17_is_refused_by_a_6_8_machine_before_anything_changes(
    old_and_new, settings, tmp_path, cli_actor
):
    old, new = old_and_new
    new.use(settings)
    demo.generate(new.data_dir, size="small", prefix=new.prefix, cluster=new.cluster)
    backed_up(cli_actor, "taken-on-7")
    archive = tmp_path / "taken-on-7.a4c"
    operations.export_backup("taken-on-7", archive, cli_actor, recipients=[])
    new.become_a_new_machine(settings, tmp_path)
    moved_to(old, new, settings)
    backup = operations.import_archive(archive, cli_actor)

    with pytest.raises(InvalidInput) as refused:
        operations.request_restore(
            operations.RestoreRequest(backup.pk), cli_actor, confirm=backup.name
        )

    assert "7.17.29, newer than this cluster's 6.8.23" in str(refused.value)
    assert old.state() == {}
    assert not old.data_dir.exists()
    assert not RestoreRun.objects.exists()


def write_catalog(location: Path, data: dict) -> None:
    location.mkdir(parents=True)
    (location / "index-0").write_text(json.dumps(data))


def test_a_catalog_older_than_6_8_is_refused_saying_what_to_do(tmp_path):
    location = tmp_path / "repository"
    write_catalog(location, {"snapshots": [{"name": "acc1"}], "indices": {}})

    with pytest.raises(DamagedBackup) as refused:
        repository_files.snapshot_files(location, "acc1")

    assert "layout this tool does not read" in str(refused.value)
    assert "back it up again" in str(refused.value)


def test_a_6_8_index_whose_metadata_is_missing_is_refused_naming_the_file(tmp_path):
    location = tmp_path / "repository"
    write_catalog(
        location,
        {
            "snapshots": [{"name": "acc1", "uuid": "snapuuid", "state": 1}],
            "indices": {"app": {"id": "indexid", "snapshots": ["snapuuid"]}},
            "incompatible-snapshots": [],
        },
    )
    (location / "snap-snapuuid.dat").write_bytes(b"")

    with pytest.raises(DamagedBackup) as refused:
        repository_files.snapshot_files(location, "acc1")

    assert "no metadata for index app of snapshot acc1" in str(refused.value)
    assert "indices/indexid/meta-snapuuid.dat is missing" in str(refused.value)
