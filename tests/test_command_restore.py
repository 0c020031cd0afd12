"""manage.py restore: the plan, the confirmation, the run and every way it can be refused."""

from __future__ import annotations

import io
import json
import os
import stat

import pytest
from commands import manage
from fault_support import tree

from backups import operations
from backups.demo import generator as demo
from backups.management import arguments
from backups.models import AuditEvent, Backup, RestoreRun
from backups.storage import WorkingTree

pytestmark = pytest.mark.django_db(transaction=True)


class Terminal(io.StringIO):
    """A stdin with a person behind it."""

    def isatty(self) -> bool:
        return True


def test_a_restore_brings_back_indices_and_files_and_names_its_safety_backup(
    a4c, capsys, cli_actor
):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    before_docs = {
        i: a4c.documents(i[len(a4c.prefix) :]) for i in a4c.cluster.indices([a4c.prefix + "*"])
    }
    before_files = tree(a4c.data_dir)
    operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="before"), cli_actor).pk
    )
    a4c.cluster.client.indices.delete(index=a4c.index("plugin"))
    a4c.cluster.client.index(
        index=a4c.index("user"), id="intruder", document={"username": "intruder"}, refresh=True
    )
    (a4c.data_dir / "artifacts" / "added-later.bin").write_bytes(b"later")
    next(p for p in (a4c.data_dir / "images").iterdir()).unlink()

    ran = manage(capsys, "restore", "before", "--yes")

    assert ran.code == 0, ran.err
    after_docs = {
        i: a4c.documents(i[len(a4c.prefix) :]) for i in a4c.cluster.indices([a4c.prefix + "*"])
    }
    assert after_docs == before_docs
    assert tree(a4c.data_dir) == before_files
    run = RestoreRun.objects.get()
    assert run.status == RestoreRun.Status.SUCCEEDED and run.source == "cli"
    assert f"replace  {a4c.index('user')}" in ran.out  # the plan came first
    assert f"create   {a4c.index('plugin')}" in ran.out
    last = ran.out.strip().splitlines()[-1]
    assert last.startswith(f"restore #{run.pk} of before succeeded in ")
    assert run.safety_backup.name in last and f"manage.py rollback {run.pk}" in last


def test_a_dry_run_prints_the_plan_as_json_and_changes_nothing(files_backup, files, capsys):
    (files.data_dir / "csar" / "extra.yml").write_text("added after the backup")

    ran = manage(capsys, "restore", "files-1", "--scope", "files", "--dry-run", "--json")

    assert ran.code == 0, ran.err
    plan = json.loads(ran.out)["plan"]
    assert plan["backup"] == "files-1" and plan["scope"] == "files"
    assert plan["files"]["removed"] == 1 and plan["files"]["mode"] == "mirror"
    assert (files.data_dir / "csar" / "extra.yml").exists()
    assert not RestoreRun.objects.exists()


def test_merge_keeps_files_the_backup_does_not_hold(files_backup, files, capsys):
    (files.data_dir / "csar" / "extra.yml").write_text("added after the backup")
    (files.data_dir / "csar" / "types.yml").write_text("changed")

    ran = manage(capsys, "restore", "files-1", "--scope", "files", "--merge", "--yes")

    assert ran.code == 0, ran.err
    assert (files.data_dir / "csar" / "types.yml").read_text() == "tosca: 1.3\n"
    assert (files.data_dir / "csar" / "extra.yml").exists()
    assert RestoreRun.objects.get().file_mode == "merge"


def test_without_a_terminal_and_without_yes_the_restore_is_refused_before_anything(
    files_backup, capsys
):
    ran = manage(capsys, "restore", "files-1")

    assert ran.code == arguments.USAGE
    assert ran.err == (
        "error: restoring files-1 needs confirmation and there is no terminal to ask on: "
        "pass --yes to go ahead without a prompt\n"
    )
    assert ran.out == "" and not RestoreRun.objects.exists()


def test_on_a_terminal_a_wrong_answer_changes_nothing(files_backup, files, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal("yes\n"))
    (files.data_dir / "csar" / "extra.yml").write_text("kept")

    ran = manage(capsys, "restore", "files-1", "--scope", "files")

    assert ran.code == arguments.FAILED
    assert "Type its name to go on" in ran.err and "not confirmed (yes)" in ran.err
    assert "removed   1 file and 0 folders" in ran.out  # the plan was shown before the question
    assert (files.data_dir / "csar" / "extra.yml").exists()
    assert not RestoreRun.objects.exists()


def test_on_a_terminal_typing_the_name_restores(files_backup, files, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal("files-1\n"))
    (files.data_dir / "csar" / "extra.yml").write_text("goes")

    ran = manage(capsys, "restore", "files-1", "--scope", "files", "--no-safety-backup")

    assert ran.code == 0, ran.err
    assert not (files.data_dir / "csar" / "extra.yml").exists()
    run = RestoreRun.objects.get()
    assert run.safety_backup is None and run.take_safety_backup is False
    assert "warning: no safety backup" in ran.err


def test_an_unknown_backup_exits_4(files, capsys):
    ran = manage(capsys, "restore", "never-taken", "--yes")

    assert ran.code == arguments.NOT_FOUND
    assert ran.err.startswith("error: No backup 'never-taken'") and ran.err.count("\n") == 1


def test_a_restore_while_another_runs_exits_3_and_names_it(files_backup, capsys, cli_actor):
    pending = operations.request_restore(
        operations.RestoreRequest(files_backup.pk, scope="files"), cli_actor
    )

    ran = manage(capsys, "restore", "files-1", "--scope", "files", "--yes")

    assert ran.code == arguments.BUSY
    assert f"restore of files-1 started by {cli_actor.name}" in ran.err
    assert RestoreRun.objects.count() == 1
    assert AuditEvent.objects.filter(action="restore.request", outcome="refused").exists()
    operations.cancel("restore", pending.pk, cli_actor)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scope", "files", "--index", "x"], "--index restores chosen indices"),
        (["--rename-replacement", "new-$1"], "--rename-replacement needs --rename-pattern"),
        (["--scope", "everything"], "argument --scope: invalid choice: 'everything'"),
        (["--scope", "elasticsearch"], "holds no Elasticsearch snapshot"),
        (["--rename-pattern", "(unclosed", "--scope", "files"], "not a valid regular expression"),
    ],
)
def test_conflicting_or_impossible_options_are_one_usage_error(files_backup, capsys, argv, message):
    ran = manage(capsys, "restore", "files-1", "--yes", *argv)

    assert ran.code == arguments.USAGE
    assert ran.err.startswith("error: ") and ran.err.count("\n") == 1
    assert message in ran.err
    assert not RestoreRun.objects.exists()


def test_newest_restores_the_newest_backup_of_a_series(files, capsys):
    for _ in range(2):
        assert manage(capsys, "backup", "--name", "nightly", "--unique", "--files-only").code == 0
    newest = Backup.objects.order_by("-created_at", "-id").first()
    assert newest.name.startswith("nightly-")
    Backup.objects.create(name="nightly-other", status="succeeded", include_elasticsearch=False)

    ran = manage(capsys, "restore", "nightly", "--newest", "--dry-run", "--json")

    assert json.loads(ran.out)["plan"]["backup"] == newest.name


def test_a_json_restore_ends_with_the_restore_summary(files_backup, capsys):
    ran = manage(capsys, "restore", "files-1", "--scope", "files", "--yes", "--json")

    assert ran.code == 0, ran.err
    lines = [json.loads(line) for line in ran.out.splitlines()]
    assert all(line["event"] == "progress" for line in lines[:-1])
    result = lines[-1]
    assert result["kind"] == "restore" and result["status"] == "succeeded"
    assert result["backup"] == "files-1" and result["safety_backup"].startswith("safety-before")
    assert [p["name"] for p in result["phases"]][:4] == [
        "plan",
        "checking the backup",
        "files",
        "safety backup",
    ]


def test_the_command_plans_once_and_starts_the_plan_it_showed(
    files_backup, capsys, queued, monkeypatch
):
    walks = []
    real = WorkingTree.plan_restore
    monkeypatch.setattr(
        WorkingTree,
        "plan_restore",
        lambda self, *a, **k: walks.append(a) or real(self, *a, **k),
    )

    ran = manage(capsys, "restore", "files-1", "--scope", "files", "--yes", "--queue")

    assert ran.code == 0, ran.err
    assert len(walks) == 1, "one walk of the data dir, for the plan shown"
    assert [kind for kind, _ in queued] == ["restore"]


@pytest.fixture
def planted_owners(files, cli_actor) -> Backup:
    """A files-only set whose manifest records what a planted one would: a set-uid root
    program, a file anyone may write owned by uid 1234, and a data dir 0777 1234:1234."""
    data_dir = files.data_dir
    tool = data_dir / "plugins" / "tool"
    tool.write_text("#!/bin/sh\n")
    os.chown(tool, 0, 0)
    os.chmod(tool, 0o4755)
    shared = data_dir / "csar" / "shared.yml"
    shared.write_text("anyone: writes\n")
    os.chown(shared, 1234, 1234)
    os.chmod(shared, 0o666)
    os.chown(data_dir, 1234, 1234)
    os.chmod(data_dir, 0o777)
    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="elsewhere-1", include_elasticsearch=False), cli_actor
        ).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    # Back to a data dir of this machine: root's, 0755, nothing special in it.
    os.chown(data_dir, 0, 0)
    os.chmod(data_dir, 0o755)
    for path in (tool, shared):
        path.unlink()
    return backup


def owners_of(path) -> tuple[int, int, str]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))


def test_a_set_from_elsewhere_restores_with_the_data_dirs_owner_and_no_set_id_bits(
    planted_owners, files, capsys
):
    Backup.objects.filter(pk=planted_owners.pk).update(imported_from="archive elsewhere.a4c")
    data_dir = files.data_dir

    planned = manage(capsys, "restore", "elsewhere-1", "--dry-run", "--json")
    ran = manage(capsys, "restore", "elsewhere-1", "--yes", "--no-safety-backup")

    assert json.loads(planned.out)["plan"]["file_owners"] == "data dir"
    assert ran.code == 0, ran.err
    assert "owners: the data dir's" in ran.out
    assert owners_of(data_dir / "plugins" / "tool") == (0, 0, "0o755")
    assert owners_of(data_dir / "csar" / "shared.yml") == (0, 0, "0o664")
    assert owners_of(data_dir) == (0, 0, "0o755")
    assert (data_dir / "csar" / "shared.yml").read_text() == "anyone: writes\n"
    run = RestoreRun.objects.get()
    assert run.status == RestoreRun.Status.SUCCEEDED and run.plan["file_owners"] == "data dir"
    asked = AuditEvent.objects.get(action="restore.request")
    assert asked.parameters["file_owners"] == "data dir"


def test_keep_owners_restores_what_the_set_from_elsewhere_records(planted_owners, files, capsys):
    Backup.objects.filter(pk=planted_owners.pk).update(imported_from="archive elsewhere.a4c")

    ran = manage(capsys, "restore", "elsewhere-1", "--yes", "--no-safety-backup", "--keep-owners")

    assert ran.code == 0, ran.err
    assert "owners: as the backup records them" in ran.out
    assert "came from elsewhere" in ran.out  # said, as a warning, before the person says yes
    assert owners_of(files.data_dir / "plugins" / "tool") == (0, 0, "0o4755")
    assert owners_of(files.data_dir / "csar" / "shared.yml") == (1234, 1234, "0o666")
    assert owners_of(files.data_dir) == (1234, 1234, "0o777")


def test_a_set_taken_here_restores_its_recorded_owners_as_before(planted_owners, files, capsys):
    ran = manage(capsys, "restore", "elsewhere-1", "--yes", "--no-safety-backup")

    assert ran.code == 0, ran.err
    assert RestoreRun.objects.get().plan["file_owners"] == "recorded"
    assert owners_of(files.data_dir / "plugins" / "tool") == (0, 0, "0o4755")
    assert owners_of(files.data_dir / "csar" / "shared.yml") == (1234, 1234, "0o666")
    assert owners_of(files.data_dir) == (1234, 1234, "0o777")


def _live_reads(monkeypatch, data_dir) -> list[str]:
    """The files of the data dir that the plan and the restore hash."""
    import backups.storage.in_place
    import backups.storage.restore

    read: list[str] = []
    real = backups.storage.in_place.hash_file

    def counted(path, *args, **kwargs):
        if str(path).startswith(str(data_dir)):
            read.append(os.path.relpath(path, data_dir))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(backups.storage.in_place, "hash_file", counted)
    monkeypatch.setattr(backups.storage.restore, "hash_file", counted)
    return read


def test_over_unchanged_data_a_backup_made_here_is_restored_without_reading_a_live_file(
    files_backup, files, capsys, monkeypatch
):
    read = _live_reads(monkeypatch, files.data_dir)

    ran = manage(
        capsys, "restore", files_backup.name, "--scope", "files", "--yes", "--no-safety-backup"
    )

    assert ran.code == 0, ran.err
    assert read == []  # each file is the one the backup read: its inode and change time say so


def test_over_unchanged_data_a_set_from_elsewhere_is_read_whole(
    files_backup, files, capsys, monkeypatch
):
    Backup.objects.filter(pk=files_backup.pk).update(imported_from="archive elsewhere.a4c")
    read = _live_reads(monkeypatch, files.data_dir)

    ran = manage(
        capsys, "restore", files_backup.name, "--scope", "files", "--yes", "--no-safety-backup"
    )

    assert ran.code == 0, ran.err
    live = {
        os.path.relpath(os.path.join(top, name), files.data_dir)
        for top, _, names in os.walk(files.data_dir)
        for name in names
    }
    live = {rel for rel in live if rel.split("/")[0] not in ("work", "tmp", "upload")}
    assert len(live) == 3 and set(read) == live
