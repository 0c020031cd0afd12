"""This installation's signing key, the keys it trusts, and the one rule for sets from outside.

Every record this installation writes and every archive it exports is signed with its key
(A4C_SIGNING_KEY_FILE, made on first use). What a signature says is read where the bytes come
in: a record's by operations/record_schema.parse_signed_record (before its fields), an
archive's SHA256SUMS by import; ``judge`` is the one place that decides from it what a set
read back from backup storage (sync) or from an archive (import) is:

- signed by this installation or a key in A4C_TRUSTED_KEYS: trusted, unless the signer itself
  says the set is foreign (it took it in as foreign: it stays so);
- signed by a key it trusts but changed since: refused, always (ForgedSignature);
- unsigned, or signed by a key it does not trust: refused, or, when the person asked for it
  (``import --foreign``, ``sync --foreign``, A4C_SYNC_FOREIGN), taken in as foreign.

A foreign set never joins a policy, never counts as the newest good backup, is never chosen by
a series lookup or by retention, never lends its manifest to the next backup, and is restored
only with an explicit confirmation (selectors.py, retention.py, plan.py and restore.py ask
``Backup.foreign``).
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from backups.errors import InvalidInput
from backups.signing import Keyring, SigningKey, Verdict, load_or_create_key, parse_trusted_keys

if TYPE_CHECKING:  # every command's settings check loads the key: not the storage with it
    from backups.storage import BackupRecord


class Untrusted(InvalidInput):
    """Not signed by a key trusted here, and not asked to be taken in as foreign."""


@dataclass(frozen=True)
class Trust:
    """What a set from outside is here: ``signed_by`` is the key that vouched for it (checked),
    or for a foreign set the key it claimed ("" if none); ``why`` says why it is foreign."""

    foreign: bool
    signed_by: str
    why: str = ""


@functools.cache
def _key(path: Path, comment: str) -> SigningKey:
    return load_or_create_key(path, comment)


def installation_key() -> SigningKey:
    """This installation's signing key (made on first use)."""
    return _key(Path(settings.A4C_SIGNING_KEY_FILE), f"a4c-backup@{socket.gethostname()}")


def keyring() -> Keyring:
    return Keyring(installation_key(), parse_trusted_keys(settings.A4C_TRUSTED_KEYS))


def judge(verdict: Verdict, record: BackupRecord, *, allow_foreign: bool, option: str) -> Trust:
    """The trust a set gets here from what its signature says (``verdict``: Keyring.check,
    which already refused a trusted key's signature that does not match); see the module's
    docstring. A record's own ``foreign`` counts only under a trusted signature.

    Raises Untrusted.
    """
    if verdict.trusted and not record.foreign:
        return Trust(False, verdict.key_id)
    if verdict.trusted:
        return Trust(
            True,
            record.signed_by,
            f"the installation that signed it ({verdict.key_id}) holds it as a foreign set",
        )
    if not allow_foreign:
        raise Untrusted(
            f"{verdict.why}: it was not imported. If you trust where it comes from, add that "
            "installation's public key (`manage.py keys` there prints it) to A4C_TRUSTED_KEYS; "
            f"or take it in as a foreign set with {option} (it then joins no policy and is "
            "restored only when confirmed)."
        )
    return Trust(True, verdict.key_id, verdict.why)


def foreign_reason(backup) -> str:
    """Why restoring ``backup`` needs a confirmation, or "" when it is trusted here."""
    if not backup.foreign:
        return ""
    by = f" (it claims the key {backup.signed_by})" if backup.signed_by else ""
    return (
        f"Backup {backup.name} is a foreign set: no key trusted here vouches for it{by}; "
        "it came from outside and may hold anything."
    )
