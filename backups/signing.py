"""Who wrote a record or an archive: Ed25519 signatures, the installation's key, trusted keys.

Each installation signs what it writes into backup storage (every record) and every archive
it exports, with a key of its own (made once, like the audit key, and kept beside it); a set
read back from storage or from an archive is trusted only when its signature checks under this
installation's key or a public key it was told to trust (A4C_TRUSTED_KEYS). This module holds
the keys and the arithmetic, and decides nothing about rows: operations/signing.py does that.
It reads no settings and imports no Django, so that backups/storage/ may use it.

Keys are written as OpenSSH writes them, so operators recognise them: the public key is one
line, ``ssh-ed25519 AAAA... a4c-backup@HOST``, and its id is its ``SHA256:...`` fingerprint. A
signature names the id of the key that made it; what is signed is the canonical JSON of the
document without its signature (keys sorted, no spaces, ASCII), or an archive's SHA256SUMS.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from a4c_backup.keyfile import private_file
from backups.errors import ConfigError, DamagedBackup

ALGORITHM = "ed25519"
SIGNATURE_FIELD = "signature"


class ForgedSignature(DamagedBackup):
    """Signed by a key this installation knows, and changed since: never imported."""


@dataclass(frozen=True)
class PublicKey:
    key: Ed25519PublicKey
    comment: str = ""

    @property
    def line(self) -> str:
        """The public key as one OpenSSH line (what an operator copies to another machine)."""
        text = self.key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).decode()
        return f"{text} {self.comment}".strip()

    @property
    def key_id(self) -> str:
        """The key's fingerprint, as `ssh-keygen -lf` shows it."""
        blob = base64.b64decode(self.line.split()[1])
        return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class SigningKey:
    """This installation's private key: it signs; its public half goes to other installations."""

    private: Ed25519PrivateKey
    public: PublicKey

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, payload: bytes) -> dict:
        signature = self.private.sign(payload)
        return {
            "algorithm": ALGORITHM,
            "key": self.key_id,
            "value": base64.b64encode(signature).decode(),
        }


@dataclass(frozen=True)
class Verdict:
    """What a signature says: ``key_id`` is the key that checked, or the one it claims to be
    by (unchecked, when ``trusted`` is False), or "" when there is no signature at all."""

    trusted: bool
    key_id: str
    why: str = ""


def canonical(document: dict) -> bytes:
    """The bytes a document's signature is made over: the document without its signature."""
    body = {k: v for k, v in document.items() if k != SIGNATURE_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def parse_public_key(line: str, where: str) -> PublicKey:
    text = line.strip()
    try:
        key = serialization.load_ssh_public_key(text.encode())
    except (ValueError, TypeError, IndexError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(
            f"{where}: {text[:60]!r} is not an Ed25519 public key (ssh-ed25519 AAAA...): "
            "`manage.py keys` on the installation to trust prints its key"
        )
    parts = text.split(None, 2)
    return PublicKey(key, parts[2] if len(parts) > 2 else "")


def parse_trusted_keys(items: list[str]) -> list[PublicKey]:
    """A4C_TRUSTED_KEYS: public key lines, or files holding one per line (# comments)."""
    found = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item.startswith("ssh-"):
            found.append(parse_public_key(item, "A4C_TRUSTED_KEYS"))
            continue
        try:
            lines = Path(item).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(
                f"A4C_TRUSTED_KEYS names {item}, which cannot be read ({exc.strerror}): give "
                "public key lines (ssh-ed25519 AAAA...) or files that hold them"
            ) from None
        found.extend(
            parse_public_key(line, f"A4C_TRUSTED_KEYS, in {item}")
            for line in lines
            if line.strip() and not line.lstrip().startswith("#")
        )
    return found


def load_or_create_key(path: Path, comment: str) -> SigningKey:
    """The installation's signing key in ``path`` (PKCS#8 PEM, mode 0600), made if missing."""
    try:
        data = private_file(
            path,
            lambda: Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    except OSError as exc:
        raise ConfigError(
            f"Cannot keep the signing key in {path} ({exc.strerror}): make that directory "
            "writable (A4C_VAR_DIR), or set A4C_SIGNING_KEY_FILE."
        ) from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        private = None
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError(
            f"{path} does not hold an unencrypted Ed25519 private key (PEM): put back the key "
            "file this installation signed with, or move it away to have a new one made "
            "(records it signed will then need that old public key in A4C_TRUSTED_KEYS)."
        )
    return SigningKey(private, PublicKey(private.public_key(), comment))


class Keyring:
    """The keys whose signatures this installation believes: its own, then the trusted ones."""

    def __init__(self, own: SigningKey, trusted: list[PublicKey]):
        self.own = own
        self.keys = {own.key_id: own.public}
        for key in trusted:
            self.keys.setdefault(key.key_id, key)

    def check(self, payload: bytes, signature, what: str) -> Verdict:
        """Whether ``signature`` (a document's ``signature`` field) is good for ``payload``.

        Unsigned, or signed by a key not trusted here: not trusted (a foreign set at best).
        Signed by a trusted key but not matching: ForgedSignature, whatever else is allowed.
        """
        if signature is None:
            return Verdict(False, "", f"{what} is not signed")
        if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
            return Verdict(False, "", f"{what} carries a signature this version cannot read")
        key_id = str(signature.get("key") or "")[:100]
        key = self.keys.get(key_id)
        if key is None:
            return Verdict(
                False,
                key_id,
                f"{what} is signed by the key {key_id or '(none named)'}, which this "
                "installation does not trust (A4C_TRUSTED_KEYS)",
            )
        try:
            key.key.verify(base64.b64decode(str(signature.get("value")), validate=True), payload)
        except (InvalidSignature, ValueError):
            raise ForgedSignature(
                f"{what} does not match its signature by {key_id}: it was changed after it was "
                "signed; it is refused"
            ) from None
        return Verdict(True, key_id)
