"""Hostile names, options and backups, through the operations every door uses.

tests/test_names.py covers validate_backup_name itself; here the same kind of input goes
through request_backup and request_restore (what the web and the commands call), plus a
manifest crafted to write outside the data dir and symlinks that point out of it. Each is
refused with a message saying why, or contained, and leaves no row, no lock and no change.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from fault_support import leftovers, tree

from backups import operations
from backups.errors import DamagedBackup, InvalidInput, NotFound
from backups.models import Backup, RestoreRun
from backups.operations import locking
from backups.storage import Store

pytestmark = pytest.mark.django_db(transaction=True)

BAD_NAMES = {
    "..": "start with",
    ".": "start with",
    "a/../../etc": "/",
    "//server/share": "/",
    "backup\u200b": "ASCII",  # zero-width space
    "\u202ebackup": "ASCII",  # right-to-left override
    "b\u0430ckup": "ASCII",  # Cyrillic a
    "backup\u0301": "ASCII",  # combining accent
    "ＢＡＣＫＵＰ": "lowercase",  # fullwidth capitals
    "a\tb": "control",
    "a\rb": "control",
    "a\x7fb": "ASCII",
    "--help": "start with",
    "-rf": "start with",
    "$HOME": "lowercase",
    "$home": "ASCII",
    "a'b": "ASCII",
    "a%2f..%2fetc": "ASCII",
    "x" * 10_000: "limit",
    "nightly\x00": "control",
}

BAD_PATTERNS = {
    "../etc": "/",
    ".security": "starts with",
    "_all": "starts with",
    "-*": "starts with",
    "+a": "starts with",
    "a,b": ",",
    "a b": "space",
    "remote:a4c-*": ":",
    "A4C-*": "lowercase",
    "a\x00b": "control",
    "a\nb": "control",
    "x" * 300: "255 bytes",
}


def nothing_made(before_backups: int) -> bool:
    return (
        Backup.objects.count() == before_backups
        and not RestoreRun.objects.exists()
        and locking.lock_holder() is None
    )


@pytest.mark.parametrize("name,why", BAD_NAMES.items(), ids=lambda v: repr(v)[:20])
def test_request_backup_refuses_a_hostile_name(name, why, cli_actor):
    with pytest.raises(InvalidInput) as refused:
        operations.request_backup(operations.BackupRequest(name=name), cli_actor)
    assert why.lower() in str(refused.value).lower()
    assert nothing_made(0)


@pytest.mark.parametrize("pattern,why", BAD_PATTERNS.items(), ids=lambda v: repr(v)[:20])
def test_request_backup_refuses_a_hostile_index_pattern(pattern, why, cli_actor):
    with pytest.raises(InvalidInput) as refused:
        operations.request_backup(
            operations.BackupRequest(name="patterned", indices=[pattern]), cli_actor
        )
    assert "is not an index name or pattern" in str(refused.value)
    assert why in str(refused.value)
    assert nothing_made(0)


@pytest.fixture
def base(installed, cli_actor) -> Backup:
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    return backup


RESTORE_OPTIONS = [
    ({"scope": "everything"}, InvalidInput, "Unknown restore scope"),
    ({"scope": "../files"}, InvalidInput, "Unknown restore scope"),
    ({"file_mode": "rsync"}, InvalidInput, "Unknown file mode"),
    ({"file_mode": "MIRROR"}, InvalidInput, "Unknown file mode"),
    ({"scope": "indices", "indices": ["../../etc/passwd"]}, InvalidInput, "does not hold"),
    ({"scope": "indices"}, InvalidInput, "at least one index"),
    ({"indices": ["x"]}, InvalidInput, "only be chosen with the 'indices' scope"),
    ({"rename_pattern": "(unclosed"}, InvalidInput, "not a valid regular expression"),
    ({"rename_pattern": "(.+)", "rename_replacement": "$7"}, InvalidInput, "cannot be used"),
    ({"rename_pattern": "(.+)", "rename_replacement": "../$1"}, InvalidInput, "cannot be an"),
    ({"rename_pattern": "(.+)", "rename_replacement": ".sec-$1"}, InvalidInput, "starts with"),
    ({"rename_pattern": "(.+)", "rename_replacement": "X-$1"}, InvalidInput, "lowercase"),
    ({"rename_pattern": "(.+)", "rename_replacement": "r:$1"}, InvalidInput, ":"),
    ({"rename_pattern": ".+", "rename_replacement": "one"}, InvalidInput, "same name"),
    ({"confirm": "not-the-name"}, InvalidInput, "Type the backup's name"),
]


def test_request_restore_refuses_hostile_options_and_changes_nothing(base, installed, cli_actor):
    es_before, files_before = installed.state(), tree(installed.data_dir)
    backups_before = Backup.objects.count()

    for options, error, why in RESTORE_OPTIONS:
        with pytest.raises(error) as refused:
            asked = {k: v for k, v in options.items() if k != "confirm"}
            operations.request_restore(
                operations.RestoreRequest(base.pk, **asked),
                cli_actor,
                confirm=options.get("confirm"),
            )
        assert why in str(refused.value), (options, str(refused.value))
        assert nothing_made(backups_before), options
    for ident in ("../../etc/passwd", "1 OR 1=1", "base'; --", "-1", "\x00", "9" * 30):
        with pytest.raises(NotFound):
            operations.request_restore(operations.RestoreRequest(ident), cli_actor)
        with pytest.raises(NotFound):
            operations.verify_backup(ident, cli_actor)

    assert installed.state() == es_before
    assert tree(installed.data_dir) == files_before


def test_cancelling_something_that_is_not_a_run_is_refused(base, cli_actor):
    with pytest.raises(
        InvalidInput,
        match="Only a backup, a restore, a verification, a drill or an off-site copy can be",
    ):
        operations.cancel("shell", base.pk, cli_actor)


def rewrite_manifest(store: Store, name: str, extra: dict) -> None:
    """Adds an entry to a manifest and seals it again, as someone with write access could."""
    path = store.manifests.path(name)
    lines = path.read_bytes().splitlines(keepends=True)
    header, entries, trailer = lines[0], lines[1:-1], json.loads(lines[-1])
    entries.append((json.dumps(extra, separators=(",", ":")) + "\n").encode())
    digest = hashlib.sha256(header + b"".join(entries)).hexdigest()
    trailer.update(entries=len(entries), sha256=digest)
    path.write_bytes(header + b"".join(entries) + (json.dumps(trailer) + "\n").encode())


@pytest.mark.parametrize("target", ["../escaped.txt", "/tmp/a4c-escaped.txt", "a/../../x"])
def test_a_manifest_entry_pointing_outside_the_data_dir_is_refused_before_any_change(
    base, installed, cli_actor, settings, target
):
    store = Store(settings.A4C_BACKUP_DIR)
    blob = next(e for e in store.manifests.entries("base") if e.type == "file")
    rewrite_manifest(
        store, "base", {"path": target, "type": "file", "size": blob.size, "mode": 420,
                        "sha256": blob.sha256}
    )  # fmt: skip
    es_before, files_before = installed.state(), tree(installed.data_dir)
    outside = (installed.data_dir / target).resolve() if not target.startswith("/") else None

    report = operations.verify_backup(base.pk, cli_actor)
    with pytest.raises(DamagedBackup) as refused:
        operations.run_restore(
            operations.request_restore(operations.RestoreRequest(base.pk), cli_actor).pk
        )

    assert not report.ok and any("points outside the data dir" in p for p in report.problems)
    assert "points outside the data dir" in str(refused.value)
    assert not Path("/tmp/a4c-escaped.txt").exists()
    assert outside is None or not outside.exists()
    assert installed.state() == es_before
    assert tree(installed.data_dir) == files_before
    assert not RestoreRun.objects.exists() and locking.lock_holder() is None


def test_a_symlink_to_etc_in_the_data_dir_is_kept_as_a_link_and_never_followed(
    installed, cli_actor, settings
):
    link = installed.data_dir / "plugins" / "etc-link"
    os.symlink("/etc", link)
    etc_before = {p: os.lstat(os.path.join("/etc", p)).st_mtime_ns for p in os.listdir("/etc")}
    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="with-link", include_elasticsearch=False), cli_actor
        ).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    entries = {e.path: e for e in Store(settings.A4C_BACKUP_DIR).manifests.entries("with-link")}
    assert entries["plugins/etc-link"].type == "symlink"
    assert entries["plugins/etc-link"].target == "/etc"
    assert not any(path.startswith("plugins/etc-link/") for path in entries)

    link.unlink()
    run = operations.run_restore(
        operations.request_restore(
            operations.RestoreRequest(backup.pk, scope="files"), cli_actor
        ).pk
    )

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert os.readlink(link) == "/etc"
    files_at_backup = tree(installed.data_dir)
    assert files_at_backup["plugins/etc-link"] == ("link", "/etc")
    etc_after = {p: os.lstat(os.path.join("/etc", p)).st_mtime_ns for p in os.listdir("/etc")}
    assert etc_after == etc_before


@pytest.mark.parametrize("mode", ["merge", "mirror"])
def test_a_restore_never_writes_through_a_symlink_that_replaced_a_directory(
    installed, cli_actor, tmp_path, mode
):
    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="plain", include_elasticsearch=False), cli_actor
        ).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    expected = tree(installed.data_dir)
    victim = tmp_path / "victim"
    victim.mkdir()
    artifacts = installed.data_dir / "artifacts"
    artifacts.rename(tmp_path / "moved-artifacts")
    os.symlink(victim, artifacts)  # someone swapped a directory for a link out of the data dir

    run = operations.run_restore(
        operations.request_restore(
            operations.RestoreRequest(backup.pk, scope="files", file_mode=mode), cli_actor
        ).pk
    )

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert list(victim.iterdir()) == [], "nothing was written through the link"
    assert not artifacts.is_symlink()
    assert tree(installed.data_dir) == expected
    assert leftovers(installed.data_dir) == []
