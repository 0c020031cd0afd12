"""The demo generator and `manage.py demo_data`, against the real Elasticsearch and real files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import secrets
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from backups.demo import generator as demo
from backups.demo.documents import Installation
from backups.errors import InvalidInput


def new_prefix() -> str:
    return f"t{secrets.token_hex(4)}-"


def drop(cluster, prefix: str) -> None:
    cluster.delete_indices(cluster.indices(include=[prefix + "*"]))


def documents(cluster, index: str) -> dict[str, dict]:
    cluster.client.indices.refresh(index=index)
    hits = cluster.client.search(index=index, size=10000, query={"match_all": {}})["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}


def hashes(root: Path) -> dict[str, str]:
    """Every file and link under root, by relative path, with its content hash or target."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def small(es_cluster, tmp_path_factory):
    """One small demo installation, shared by the tests that only read it."""
    prefix = new_prefix()
    summary = demo.generate(
        tmp_path_factory.mktemp("small") / "a4c-data", prefix=prefix, cluster=es_cluster
    )
    yield prefix, summary
    drop(es_cluster, prefix)


@pytest.fixture
def prefix(es_cluster):
    value = new_prefix()
    yield value
    drop(es_cluster, value)


# --- Elasticsearch -------------------------------------------------------------------------
def test_it_creates_at_least_25_a4c_indices_under_the_prefix(small, es_cluster):
    prefix, summary = small
    found = es_cluster.indices(include=[prefix + "*"])
    assert len(found) >= 25
    assert set(found) == set(summary.indices) == set(demo.index_names(prefix))
    for name in ("application", "csar", "topology", "nodetype", "deployment", "audittrace"):
        assert prefix + name in found
    assert all(row.health == "green" for row in found.values())


def test_small_holds_about_1500_documents(small):
    _, summary = small
    assert 1000 <= summary.documents <= 2500
    assert all(count > 0 for count in summary.indices.values())


def test_every_index_has_explicit_mappings(small, es_cluster):
    prefix, summary = small
    for index in summary.indices:
        mapping = es_cluster.client.indices.get_mapping(index=index)[index]["mappings"]
        assert mapping["dynamic"] in ("strict", "false"), index
        assert mapping["_meta"] == {"generator": "a4c-backup demo_data"}
        assert mapping["properties"], index


def test_topology_node_templates_are_nested_with_nested_relationships(small, es_cluster):
    prefix, _ = small
    index = prefix + "topology"
    props = es_cluster.client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert props["nodeTemplates"]["type"] == "nested"
    assert props["nodeTemplates"]["properties"]["relationships"]["type"] == "nested"
    assert props["nodeTemplates"]["properties"]["properties"]["enabled"] is False
    assert props["creationDate"]["type"] == "date"


def test_document_counts_are_what_the_summary_says(small, es_cluster):
    _, summary = small
    for index, count in summary.indices.items():
        assert es_cluster.count(index) == count, index


def test_documents_refer_to_each_other(small, es_cluster):
    prefix, _ = small
    docs = {name: documents(es_cluster, prefix + name) for name in demo.MAPPINGS}
    apps, csars = docs["application"], docs["csar"]
    for version in docs["applicationversion"].values():
        assert version["applicationId"] in apps
        assert version["id"] in csars  # each application version is a topology archive
    for env in docs["applicationenvironment"].values():
        assert f"{env['applicationId']}:{env['version']}" in docs["applicationversion"]
    for deployment in docs["deployment"].values():
        assert deployment["environmentId"] in docs["applicationenvironment"]
        assert deployment["orchestratorId"] in docs["orchestrator"]
        assert set(deployment["locationIds"]) <= set(docs["location"])
    for topology in docs["topology"].values():
        assert topology["id"] == f"{topology['archiveName']}:{topology['archiveVersion']}"
        assert topology["id"] in csars
        assert {f"{d['name']}:{d['version']}" for d in topology["dependencies"]} <= set(csars)
    for node_type in docs["nodetype"].values():
        assert f"{node_type['archiveName']}:{node_type['archiveVersion']}" in csars
    for location in docs["location"].values():
        assert location["orchestratorId"] in docs["orchestrator"]
    for template in docs["locationresourcetemplate"].values():
        assert template["locationId"] in docs["location"]
    for log in docs["paasdeploymentlog"].values():
        assert log["deploymentId"] in docs["deployment"]
    for topology in docs["deploymenttopology"].values():
        assert topology["environmentId"] in docs["applicationenvironment"]
        assert topology["id"] == f"{topology['versionId']}::{topology['environmentId']}"
    users = docs["user"]
    assert {trace["userName"] for trace in docs["audittrace"].values()} <= set(users)
    assert {g for user in users.values() for g in user["groups"]} <= set(docs["group"])
    assert all(doc["id"] == doc_id for name in docs for doc_id, doc in docs[name].items()
               if "id" in doc)  # fmt: skip


def test_the_aliases_exist_one_of_them_filtered(small, es_cluster):
    prefix, _ = small
    aliases = es_cluster.client.indices.get_alias(index=prefix + "*")
    assert prefix + "audit" in aliases[prefix + "audittrace"]["aliases"]
    active = aliases[prefix + "deployment"]["aliases"][prefix + "active-deployments"]
    assert "filter" in active
    ended = sum(1 for d in documents(es_cluster, prefix + "deployment").values() if d["endDate"])
    running = es_cluster.count(prefix + "active-deployments")
    assert running + ended == es_cluster.count(prefix + "deployment")


# --- files ---------------------------------------------------------------------------------
def test_the_data_dir_has_a4cs_layout(small):
    _, summary = small
    root = summary.data_dir
    for top in ("csar", "artifacts", "plugins", "images", "git", "work", "tmp", "upload"):
        assert (root / top).is_dir(), top
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    files.remove(root / demo.MARKER)  # the generator's mark, not an A4C file
    assert len(files) == summary.files
    assert sum(p.stat().st_size for p in files) == summary.bytes
    assert 200 <= summary.files <= 400
    assert 1_000_000 <= summary.bytes <= 2_500_000


def test_every_csar_has_its_archive_expanded_tree_and_content(small, es_cluster):
    prefix, summary = small
    for csar in documents(es_cluster, prefix + "csar").values():
        folder = summary.data_dir / "csar" / csar["name"] / csar["version"]
        with zipfile.ZipFile(folder / f"{csar['name']}.zip") as archive:
            assert archive.testzip() is None
            definitions = archive.read(f"{csar['name']}.yml").decode()
        assert definitions.startswith("tosca_definitions_version:")
        assert f"template_version: {csar['version']}" in definitions
        assert (folder / "expanded" / f"{csar['name']}.yml").read_text() == definitions
        assert json.loads((folder / "content.json").read_text())["version"] == csar["version"]


def test_scripts_are_executable_in_the_tree_and_in_the_zip(small):
    _, summary = small
    scripts = list(summary.data_dir.glob("csar/*/*/expanded/scripts/*.sh"))
    assert scripts
    for script in scripts:
        assert stat.S_IMODE(script.stat().st_mode) == 0o755
        assert script.read_text().startswith("#!/bin/bash")
    zipped = next(summary.data_dir.glob("csar/tosca-normative-types/*/*.zip"))
    with zipfile.ZipFile(zipped) as archive:
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}
    assert any(name.endswith(".sh") and mode == 0o755 for name, mode in modes.items())


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        tag, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length : at + 12 + length])[0] == zlib.crc32(
            tag + body
        )
        chunks.append((tag, body))
        at += 12 + length
    return chunks


def test_application_images_are_real_pngs(small, es_cluster):
    prefix, summary = small
    for app in documents(es_cluster, prefix + "application").values():
        chunks = png_chunks((summary.data_dir / "images" / f"{app['imageId']}.png").read_bytes())
        assert [tag for tag, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
        width, height = struct.unpack(">II", chunks[0][1][:8])
        assert len(zlib.decompress(chunks[1][1])) == height * (1 + 3 * width)


def test_the_tree_holds_a_symlink_an_empty_dir_and_a_unicode_name(small):
    _, summary = small
    root = summary.data_dir
    latest = root / "csar" / "tosca-normative-types" / "latest"
    assert latest.is_symlink()
    assert os.readlink(latest) == "1.0.0-ALIEN20"
    assert (latest / "content.json").is_file()
    empty = [p for p in root.glob("git/*/refs/tags")]
    assert empty and all(p.is_dir() and not any(p.iterdir()) for p in empty)
    assert list(root.glob("artifacts/*/résumé-übersicht.txt"))


def test_git_repositories_are_bare_with_read_only_loose_objects(small, es_cluster):
    prefix, summary = small
    repos = documents(es_cluster, prefix + "gitrepository").values()
    assert repos
    for repo in repos:
        path = summary.data_dir / repo["localPath"]
        assert (path / "HEAD").read_text() == "ref: refs/heads/master\n"
        head = (path / "refs" / "heads" / "master").read_text().strip()
        commit = path / "objects" / head[:2] / head[2:]
        assert stat.S_IMODE(commit.stat().st_mode) == 0o444
        raw = zlib.decompress(commit.read_bytes())
        assert raw.startswith(b"commit ")
        assert hashlib.sha1(raw).hexdigest() == head


# --- determinism, refusal, reset -----------------------------------------------------------
def test_the_same_seed_gives_the_same_files_and_documents(small, es_cluster, prefix, tmp_path):
    first_prefix, first = small
    second = demo.generate(tmp_path / "again", prefix=prefix, cluster=es_cluster)
    assert hashes(first.data_dir) == hashes(second.data_dir)
    for name in ("csar", "user", "deployment", "audittrace"):
        assert documents(es_cluster, first_prefix + name) == documents(es_cluster, prefix + name)


def test_another_seed_gives_other_data(tmp_path):
    plan = demo.plan("small")
    for seed in (1, 2):
        inst = Installation(random.Random(f"{seed}:elasticsearch"), plan.csars)
        demo.write_files(tmp_path / str(seed), inst, plan, random.Random(f"{seed}:files"))
    assert hashes(tmp_path / "1") != hashes(tmp_path / "2")


def test_it_refuses_existing_indices_without_reset(small, es_cluster, tmp_path):
    prefix, _ = small
    with pytest.raises(InvalidInput, match="already holds 30 of the demo indices"):
        demo.generate(tmp_path / "fresh", prefix=prefix, cluster=es_cluster)
    assert not (tmp_path / "fresh").exists()


def test_it_refuses_a_non_empty_data_dir_without_reset(es_cluster, prefix, tmp_path):
    (tmp_path / "notes.txt").write_text("someone's file")
    with pytest.raises(InvalidInput, match="is not empty"):
        demo.generate(tmp_path, prefix=prefix, cluster=es_cluster)
    assert es_cluster.indices(include=[prefix + "*"]) == {}


def test_reset_replaces_indices_and_files(es_cluster, prefix, tmp_path):
    data_dir = tmp_path / "a4c-data"
    first = demo.generate(data_dir, prefix=prefix, cluster=es_cluster, seed=3)
    (data_dir / "stray.txt").write_text("left over")
    es_cluster.bulk_index(prefix + "user", [("intruder", {"username": "intruder"})])
    second = demo.generate(data_dir, prefix=prefix, cluster=es_cluster, seed=3, reset=True)
    assert not (data_dir / "stray.txt").exists()
    assert "intruder" not in documents(es_cluster, prefix + "user")
    assert second.indices == first.indices
    assert (second.files, second.bytes) == (first.files, first.bytes)


def test_reset_refuses_indices_the_generator_did_not_make(es_cluster, prefix, tmp_path):
    es_cluster.create_index(prefix + "user", {"properties": {"username": {"type": "keyword"}}})
    es_cluster.bulk_index(prefix + "user", [("admin", {"username": "admin"})])

    with pytest.raises(InvalidInput, match=f"{prefix}user were not .* may be a real A4C's"):
        demo.generate(tmp_path / "data", prefix=prefix, cluster=es_cluster, reset=True)

    assert documents(es_cluster, prefix + "user") == {"admin": {"username": "admin"}}
    assert not (tmp_path / "data").exists()


def test_reset_refuses_a_data_dir_the_generator_did_not_make(es_cluster, prefix, tmp_path):
    real = tmp_path / "alien4cloud"
    (real / "csar" / "app" / "1.0").mkdir(parents=True)
    (real / "csar" / "app" / "1.0" / "app.zip").write_bytes(b"PK a real archive")

    with pytest.raises(InvalidInput, match=f"{real} has no {re.escape(demo.MARKER)} file"):
        demo.generate(real, prefix=prefix, cluster=es_cluster, reset=True)

    assert (real / "csar" / "app" / "1.0" / "app.zip").read_bytes() == b"PK a real archive"
    assert es_cluster.indices(include=[prefix + "*"]) == {}


# --- sizes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [("small", "small"), ("Medium", "medium"), ("1048576", 1048576), ("500M", 500 * demo.MiB),
     ("1.5g", int(1.5 * demo.GiB)), ("64k", 65536)],
)  # fmt: skip
def test_it_reads_sizes(text, value):
    assert demo.parse_size(text) == value


@pytest.mark.parametrize("text", ["huge", "-5", "0", "12T", ""])
def test_it_refuses_a_size_it_cannot_read(text):
    with pytest.raises(InvalidInput, match="is not small, medium, large"):
        demo.parse_size(text)


def test_byte_sizes_get_the_file_counts_the_benchmarks_want():
    assert demo.plan(demo.GiB // 10).files == 10_000
    assert demo.plan(demo.GiB).files == 50_000
    assert demo.plan(5 * demo.GiB).files == 200_000
    assert demo.plan(demo.GiB, files=1234).files == 1234
    assert demo.plan("medium").files == 10_000


def test_an_int_size_with_a_file_count_fills_exactly(es_cluster, prefix, tmp_path):
    summary = demo.generate(
        tmp_path, size=3 * demo.MiB, files=500, prefix=prefix, cluster=es_cluster
    )
    assert summary.files == 500
    assert abs(summary.bytes - 3 * demo.MiB) < 0.02 * 3 * demo.MiB


# --- the command ---------------------------------------------------------------------------
def test_the_command_generates_then_leaves_existing_demo_data_alone(prefix, tmp_path):
    data_dir = tmp_path / "a4c-data"
    out = io.StringIO()
    call_command("demo_data", "--size", "small", "--prefix", prefix, "--data-dir", str(data_dir),
                 stdout=out)  # fmt: skip
    assert "demo data: 30 indices" in out.getvalue()
    files = sum(len(names) for _, _, names in os.walk(data_dir))

    out = io.StringIO()
    call_command("demo_data", "--size", "small", "--prefix", prefix, "--data-dir", str(data_dir),
                 stdout=out)  # fmt: skip
    assert out.getvalue().strip() == (
        f"demo data already present (30 indices, {files} files); use --reset to regenerate"
    )


def test_the_command_reports_a_refusal_as_a_command_error(prefix, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(CommandError, match="is not empty: use --reset") as caught:
        call_command("demo_data", "--prefix", prefix, "--data-dir", str(tmp_path))
    assert caught.value.returncode == InvalidInput.exit_code


def test_the_command_uses_the_data_dir_setting(settings, prefix, tmp_path):
    settings.A4C_DATA_DIR = tmp_path / "from-settings"
    out = io.StringIO()
    call_command("demo_data", "--prefix", prefix, "--size", "400k", stdout=out)
    assert f"in {tmp_path / 'from-settings'} (" in out.getvalue()
    assert (tmp_path / "from-settings" / "csar").is_dir()
