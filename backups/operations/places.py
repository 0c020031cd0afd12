"""Where the work happens, from the settings: the backup storage, the data dir, A4C's indices,
and how files are copied between the data dir and the storage (copy_options)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from django.conf import settings

from backups.elastic import client as elastic
from backups.operations import signing
from backups.storage import CopyOptions, Store, WorkingTree, parse_bandwidth


def store() -> Store:
    return Store(Path(settings.A4C_BACKUP_DIR), signer=signing.installation_key())


def working_tree() -> WorkingTree:
    """The data dir, as a restore from the backup storage changes it."""
    return WorkingTree(store(), data_dir())


def file_bandwidth() -> int:
    """A4C_FILE_BANDWIDTH in bytes per second (0: no limit); ConfigError if it is not one."""
    return parse_bandwidth(settings.A4C_FILE_BANDWIDTH)


def copy_options() -> CopyOptions:
    """A4C_EXCLUDE_DIRS, A4C_FILE_WORKERS and A4C_FILE_BANDWIDTH, read in one place, as the
    storage's CopyOptions; ConfigError when the bandwidth is not one."""
    return CopyOptions(
        exclude_dirs=tuple(settings.A4C_EXCLUDE_DIRS),
        workers=settings.A4C_FILE_WORKERS,
        bandwidth=file_bandwidth(),
    )


def data_dir() -> Path:
    return Path(settings.A4C_DATA_DIR)


def a4c_indices(
    cluster: elastic.Cluster, patterns: Iterable[str] | None = None
) -> dict[str, elastic.IndexInfo]:
    include = list(patterns or settings.A4C_INDEX_INCLUDE)
    return cluster.indices(include=include, exclude=settings.A4C_INDEX_EXCLUDE)
