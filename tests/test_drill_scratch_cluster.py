"""Restore drills on a scratch cluster (A4C_DRILL_ES_URLS), against real servers: a second
Elasticsearch 8.19 node, a cluster of its own, started here with the live node's repository
directory under its path.repo. The drill restores there, the live cluster's indices, aliases
and repository registrations stay byte-identical, and nothing is left on the scratch cluster;
one that cannot read the repository fails the drill naming the setting."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from commands import manage
from django.conf import settings as django_settings
from fault_support import ThrowawayElasticsearch, closed_port, port_free

from backups import operations
from backups.doctor.drills import scratch_cluster_check
from backups.doctor.settings_checks import drill_cluster_problems
from backups.elastic import client as elastic
from backups.elastic import drills as elastic_drills
from backups.elastic import versions
from backups.errors import ElasticError
from backups.models import Backup, Job
from backups.operations import drill_cluster, drill_scratch

pytestmark = pytest.mark.django_db(transaction=True)


def ports(variable: str) -> tuple[int, int]:
    """HTTP and transport ports for a node of this module: "HTTP,TRANSPORT" from the
    environment variable, else two free ones (other worktrees' tests start nodes of their own
    on 9250, 9270 and up, 9281, 9283...)."""
    if os.environ.get(variable):
        http, transport = os.environ[variable].split(",")
        return int(http), int(transport)
    return closed_port(), closed_port()


class BlindNode(ThrowawayElasticsearch):
    """A scratch node as on another host without the shared filesystem: its path.repo names
    the shared directory's path, but in its own mount namespace an empty directory is mounted
    there, so it reads another directory of the same name."""

    def __init__(self, *args, shared: Path, empty: Path, **kwargs):
        super().__init__(*args, path_repo=[shared], **kwargs)
        self.shared, self.empty = shared, empty

    def as_es_user(self, command: list[str]) -> list[str]:
        mounted = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return [
            *("unshare", "--mount", "--propagation", "private", "sh", "-c", mounted, "sh"),
            *(str(self.empty), str(self.shared), *super().as_es_user(command)),
        ]


@pytest.fixture(scope="module")
def scratch_node(es_path_repo):
    """A second single-node cluster whose path.repo is a directory inside the live node's:
    a repository placed there is read by both, one placed elsewhere only by the live node."""
    http_port, transport_port = ports("A4C_TEST_DRILL_ES_PORTS")
    for port in (http_port, transport_port):
        assert port_free(port), f"port {port} is taken: set A4C_TEST_DRILL_ES_PORTS=HTTP,TRANSPORT"
    shared = es_path_repo / f"drill-scratch-{os.getpid()}"
    # Under var/, not a tmp dir: the node's user must reach it through every parent.
    root = Path(django_settings.VAR_DIR) / "es-drill-scratch" / str(os.getpid())
    node = ThrowawayElasticsearch(
        root,
        http_port=http_port,
        transport_port=transport_port,
        name="es-drill-scratch",
        path_repo=[shared],
    )
    node.shared = shared
    node.start()
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(scope="module")
def blind_node(scratch_node):
    http_port, transport_port = ports("A4C_TEST_DRILL_BLIND_ES_PORTS")
    for port in (http_port, transport_port):
        assert port_free(port), f"port {port} is taken: set A4C_TEST_DRILL_BLIND_ES_PORTS"
    root = scratch_node.root.parent / f"{os.getpid()}-blind"
    empty = root / "elsewhere"
    empty.mkdir(parents=True)
    node = BlindNode(
        root,
        http_port=http_port,
        transport_port=transport_port,
        name="es-drill-blind",
        shared=scratch_node.shared,
        empty=empty,
    )
    node.start()
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def scratch(scratch_node, settings):
    """The drills of this test go to the scratch node."""
    settings.A4C_DRILL_ES_URLS = [scratch_node.url]
    elastic.scratch_cluster.cache_clear()
    cluster = elastic.scratch_cluster()
    yield cluster
    elastic.scratch_cluster.cache_clear()


@pytest.fixture
def shared_repository(a4c, scratch_node, settings):
    """The test's repository inside the directory both clusters read."""
    location = scratch_node.shared / f"test-{a4c.tag}"
    settings.A4C_ES_REPOSITORY_PATH = str(location)
    yield location
    # its snapshots and registration first: a registered repository must not lose its dir
    for snap in a4c.cluster.snapshots(settings.A4C_ES_REPOSITORY):
        a4c.cluster.delete_snapshot(settings.A4C_ES_REPOSITORY, snap.name)
    try:
        a4c.cluster.delete_repository(settings.A4C_ES_REPOSITORY)
    except ElasticError:
        pass  # never registered
    shutil.rmtree(location, ignore_errors=True)


def scratch_state(cluster) -> dict:
    """Every index (hidden ones too) and every repository registration of the scratch node."""
    indices = cluster.client.indices.get_settings(
        index="*", expand_wildcards="all", filter_path="*.settings.index.uuid"
    )
    return {
        "indices": sorted(name for name in (indices or {}) if not name.startswith(".security")),
        "repositories": cluster.client.snapshot.get_repository(),
    }


def live_registrations(a4c, drill_prefix: str) -> dict:
    """The live cluster's registrations of this test's repository and of any drill's: other
    worktrees' tests register theirs in the same cluster meanwhile."""
    found = a4c.cluster.client.snapshot.get_repository()
    return {
        name: body
        for name, body in found.items()
        if a4c.tag in name or name.startswith(drill_prefix)
    }


def backed_up(cli_actor) -> Backup:
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="nightly"), cli_actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    return backup


def test_a_drill_restores_on_the_scratch_cluster_and_leaves_the_live_one_byte_identical(
    small_a4c, drill_place, shared_repository, scratch, cli_actor, settings
):
    a4c = small_a4c
    backup = backed_up(cli_actor)
    prefix_root = settings.A4C_DRILL_INDEX_PREFIX
    live_before = a4c.state()
    registrations_before = live_registrations(a4c, prefix_root)
    scratch_before = scratch_state(scratch)
    seen = {}

    def watch(row) -> None:
        if row.phase == "elasticsearch: check" and "scratch" not in seen:
            prefix = drill_scratch.index_prefix(row.pk)
            seen["scratch"] = elastic_drills.indices_named(scratch, prefix)
            seen["live"] = elastic_drills.indices_named(a4c.cluster, prefix)
            seen["registration"] = scratch.client.snapshot.get_repository(
                name=drill_scratch.scratch_repository(row.pk)
            )

    job = operations.request_drill(backup.pk, cli_actor)
    report = operations.drill_now(job.pk, watch)
    job.refresh_from_db()

    assert report.passed, report.problems
    assert job.status == Job.Status.SUCCEEDED
    assert report.restored_in == f"scratch cluster {scratch_node_url(settings)}"
    assert (report.indices, report.documents) == (2, 41)
    assert report.elasticsearch_seconds > 0 and report.aliases_unread == ""
    prefix = drill_scratch.index_prefix(job.pk)
    # while it ran: the indices on the scratch cluster only, the repository read-only there
    assert seen["scratch"] == [prefix + a4c.index("application"), prefix + a4c.index("user")]
    assert seen["live"] == []
    registration = seen["registration"][drill_scratch.scratch_repository(job.pk)]
    assert registration["settings"]["readonly"] == "true"
    assert registration["settings"]["location"] == str(shared_repository)
    # after it: the live cluster as before, nothing of the drill left on the scratch one
    assert a4c.state() == live_before
    assert live_registrations(a4c, prefix_root) == registrations_before
    assert scratch_state(scratch) == scratch_before
    assert not drill_scratch.scratch_dir(job.pk).exists()


def scratch_node_url(settings) -> str:
    return ", ".join(settings.A4C_DRILL_ES_URLS)


def test_the_command_drills_the_latest_on_the_scratch_cluster(
    small_a4c, drill_place, shared_repository, scratch, cli_actor, capsys
):
    backed_up(cli_actor)
    before = scratch_state(scratch)

    ran = manage(capsys, "drill", "--latest")

    assert ran.code == 0, ran.err
    assert "on the scratch cluster http://127.0.0.1:" in ran.out
    assert "passed its restore drill: measured restore time" in ran.out
    assert scratch_state(scratch) == before


def test_a_scratch_cluster_that_cannot_read_the_repository_fails_the_drill_naming_the_setting(
    small_a4c, drill_place, scratch, cli_actor, settings
):
    # the test's repository stays where only the live node reads it (outside the scratch
    # node's path.repo)
    a4c = small_a4c
    backup = backed_up(cli_actor)
    live_before = a4c.state()
    registrations_before = live_registrations(a4c, settings.A4C_DRILL_INDEX_PREFIX)
    scratch_before = scratch_state(scratch)
    job = operations.request_drill(backup.pk, cli_actor)

    with pytest.raises(ElasticError) as raised:
        operations.drill_now(job.pk)

    job.refresh_from_db()
    message = str(raised.value)
    assert "A4C_DRILL_ES_URLS" in message and "path.repo" in message
    assert settings.A4C_ES_REPOSITORY_PATH in message
    assert job.status == Job.Status.FAILED and "A4C_DRILL_ES_URLS" in job.error_message
    assert a4c.state() == live_before
    assert live_registrations(a4c, settings.A4C_DRILL_INDEX_PREFIX) == registrations_before
    assert scratch_state(scratch) == scratch_before


def test_a_scratch_cluster_reading_another_directory_at_that_path_fails_the_drill_naming_it(
    small_a4c, drill_place, shared_repository, blind_node, cli_actor, settings
):
    a4c = small_a4c
    backup = backed_up(cli_actor)
    settings.A4C_DRILL_ES_URLS = [blind_node.url]
    elastic.scratch_cluster.cache_clear()
    blind = elastic.scratch_cluster()
    live_before = a4c.state()
    blind_before = scratch_state(blind)
    job = operations.request_drill(backup.pk, cli_actor)

    try:
        with pytest.raises(ElasticError) as raised:
            operations.drill_now(job.pk)
        after = scratch_state(blind)
        doctor = scratch_cluster_check()
    finally:
        elastic.scratch_cluster.cache_clear()

    job.refresh_from_db()
    message = str(raised.value)
    assert "A4C_DRILL_ES_URLS" in message and str(shared_repository) in message, message
    assert "does not see the snapshot nightly" in message and "not the live cluster's" in message
    assert job.status == Job.Status.FAILED and "A4C_DRILL_ES_URLS" in job.error_message
    assert not doctor.ok and "another directory" in doctor.summary + doctor.fix, doctor
    assert a4c.state() == live_before
    assert after == blind_before


def test_the_doctor_says_whether_the_scratch_cluster_reads_the_repository(
    small_a4c, drill_place, shared_repository, scratch, cli_actor, settings, es_path_repo
):
    backed_up(cli_actor)
    before = scratch_state(scratch)

    reads = scratch_cluster_check()
    settings.A4C_ES_REPOSITORY_PATH = str(es_path_repo / f"test-{small_a4c.tag}-elsewhere")
    blind = scratch_cluster_check()

    assert reads.level != "error" and reads.ok, reads.summary
    assert "reads the repository" in reads.summary and "(1 snapshot)" in reads.summary
    assert not blind.ok and "A4C_DRILL_ES_URLS" in blind.summary
    assert "path.repo" in blind.summary
    assert scratch_state(scratch) == before


def test_the_recovery_removes_a_dead_drills_indices_and_registration_on_the_scratch_cluster(
    small_a4c, drill_place, shared_repository, scratch, cli_actor
):
    backup = backed_up(cli_actor)
    before = scratch_state(scratch)
    job = operations.request_drill(backup.pk, cli_actor)
    # what a drill killed after its restore leaves there
    elastic_drills.register_readonly(
        scratch, drill_scratch.scratch_repository(job.pk), str(shared_repository)
    )
    scratch.client.indices.create(
        index=drill_scratch.index_prefix(job.pk) + "left",
        settings={"number_of_replicas": 0, "index.hidden": True},
    )

    assert drill_scratch.remove_all(job.pk) == []

    assert scratch_state(scratch) == before


def test_a_malformed_or_live_scratch_address_is_a_settings_error(settings):
    settings.A4C_DRILL_ES_URLS = ["ftp://scratch.example"]
    malformed = drill_cluster_problems()
    settings.A4C_DRILL_ES_URLS = list(settings.A4C_ES_URLS)
    live = drill_cluster_problems()
    settings.A4C_DRILL_ES_URLS = []

    assert [p.id for p in malformed] == ["a4c.E029"]
    assert "A4C_DRILL_ES_URLS" in malformed[0].msg and "http(s)://host:port" in malformed[0].msg
    assert [p.id for p in live] == ["a4c.E029"] and "live cluster" in live[0].msg
    assert drill_cluster_problems() == []


def test_a_scratch_cluster_too_old_for_the_snapshot_is_an_error_naming_the_setting(settings):
    settings.A4C_DRILL_ES_URLS = ["http://scratch.example:9200"]
    # what a 7.17 scratch cluster says of an 8.19 snapshot
    cannot = versions.dialect_for(["7.17.29"]).can_restore("8.19.8")

    with pytest.raises(ElasticError) as raised:
        drill_cluster.too_old(cannot, "a4c-backup/nightly")

    message = str(raised.value)
    assert "A4C_DRILL_ES_URLS (http://scratch.example:9200)" in message
    assert "cannot restore a4c-backup/nightly: it was taken on Elasticsearch 8.19.8" in message
    assert message.endswith("or empty it to drill in the live cluster.")
