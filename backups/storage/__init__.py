"""The only door to backup storage: what the rest of the app may use of it.

``Store`` is the repository under A4C_BACKUP_DIR (blobs, manifests, records, and collecting
what no manifest names); ``WorkingTree`` is the data dir a restore changes (stage, swap, undo,
discard staging); leases (``Store.leases``) keep a run's blobs from the collectors of
every console sharing the storage; archives carry a set off-site and back; the values they
answer with are listed here too. Modules outside backups/storage/ import from this package
only, never from a module inside it (tests/test_layout.py holds them to it), so that the
rooms inside can move.
"""

from backups.storage.archive import (
    ArchiveHeader,
    ArchiveProgress,
    RepositoryFile,
    parse_recipients,
    read_identities,
    write_archive,
)
from backups.storage.archive_import import (
    CommittedImport,
    Unpacked,
    commit_import,
    read_archive,
    read_archive_stream,
)
from backups.storage.catalog import (
    RECORD_FORMAT,
    RECORD_MAX_BYTES,
    RECORD_VERSION,
    BackupRecord,
    Catalog,
    HistoryEvent,
    IndexCount,
    NewerFormat,
    PolicyRecord,
)
from backups.storage.fileio import check_name
from backups.storage.import_staging import (
    ImportStaging,
    discard_import_leftovers,
    locked_staging,
    terminated_as_interrupt,
)
from backups.storage.in_place import InPlaceStaged
from backups.storage.leases import HeldLease, Lease, LeaseReading
from backups.storage.manifest import Entry, Manifests
from backups.storage.ownership import DATA_DIR, OWNERS, RECORDED
from backups.storage.pipeline import parse_bandwidth
from backups.storage.restore import StagedRestore
from backups.storage.results import (
    BlobCheckReport,
    FilePlan,
    FileProgress,
    GcSummary,
    ManifestSummary,
    RestoreResult,
    TreeSummary,
)
from backups.storage.store import DEFAULT_EXCLUDES, CopyOptions, Store
from backups.storage.working_tree import WorkingTree, compare_tree_to_manifest

__all__ = [
    "DATA_DIR",
    "DEFAULT_EXCLUDES",
    "OWNERS",
    "RECORDED",
    "RECORD_FORMAT",
    "RECORD_MAX_BYTES",
    "RECORD_VERSION",
    "ArchiveHeader",
    "ArchiveProgress",
    "BackupRecord",
    "BlobCheckReport",
    "Catalog",
    "CommittedImport",
    "CopyOptions",
    "Entry",
    "FilePlan",
    "FileProgress",
    "GcSummary",
    "HeldLease",
    "HistoryEvent",
    "ImportStaging",
    "InPlaceStaged",
    "IndexCount",
    "Lease",
    "LeaseReading",
    "ManifestSummary",
    "Manifests",
    "NewerFormat",
    "PolicyRecord",
    "RepositoryFile",
    "RestoreResult",
    "StagedRestore",
    "Store",
    "TreeSummary",
    "Unpacked",
    "WorkingTree",
    "check_name",
    "commit_import",
    "compare_tree_to_manifest",
    "discard_import_leftovers",
    "locked_staging",
    "parse_bandwidth",
    "parse_recipients",
    "read_archive",
    "read_archive_stream",
    "read_identities",
    "terminated_as_interrupt",
    "write_archive",
]
