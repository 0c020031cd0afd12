"""Backup names and index names: what Elasticsearch and the file system accept, said once; and
how long a description (of a backup, of a policy) may be."""

from __future__ import annotations

import re

from django.utils import timezone

from backups.errors import (
    InvalidInput,
)
from backups.models import (
    Backup,
)

NAME_MAX = 200
# A note a person reads beside the name on every page: a few sentences, not a document.
DESCRIPTION_MAX = 500


_FORBIDDEN = set(' \\/*?"<>|,#:')


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._+\-]*$")


def validate_description(text: str, of: str = "backup") -> str:
    """A description of at most DESCRIPTION_MAX characters; returns it stripped."""
    text = (text or "").strip()
    if len(text) > DESCRIPTION_MAX:
        raise InvalidInput(
            f"The {of}'s description is {len(text):,} characters long; at most "
            f"{DESCRIPTION_MAX} are allowed: shorten it (the details belong elsewhere)."
        )
    return text


def validate_backup_name(name: str) -> str:
    """Elasticsearch's snapshot naming rules, and safe as a file name; returns the name."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("A backup name is required.")
    if len(name) > NAME_MAX:
        raise InvalidInput(
            f"The backup name is {len(name)} characters long; the limit is {NAME_MAX}."
        )
    if "\0" in name or any(ord(c) < 32 for c in name):
        raise InvalidInput(
            "The backup name contains a control character; use letters, digits and - _ ."
        )
    bad = sorted({c for c in name if c in _FORBIDDEN})
    if bad:
        shown = " ".join("space" if c == " " else c for c in bad)
        raise InvalidInput(
            f"The backup name may not contain {shown}; use letters, digits and - _ ."
        )
    if name != name.lower():
        raise InvalidInput(
            f"Backup names are lowercase (Elasticsearch requires it): try {name.lower()!r}."
        )
    if name[0] in "_-.+":
        raise InvalidInput("A backup name may not start with _ - . or +.")
    if name in (".", "..") or not _NAME_RE.match(name):
        raise InvalidInput(
            "A backup name uses lowercase ASCII letters, digits and - _ . + only, "
            f"and starts with a letter or digit; {name!r} does not."
        )
    return name


def index_name_problem(text: str, *, pattern: bool = False) -> str:
    """Why text cannot be an index name (or, with pattern, a pattern of them); "" if it can.

    Elasticsearch's rules, plus ":" (a remote cluster) and "," (a second name smuggled in).
    """
    if not text:
        return "it is empty"
    if len(text.encode("utf-8", "surrogatepass")) > 255:
        return "it is longer than 255 bytes"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "it holds a control character"
    if text.startswith((".", "-", "_", "+")):
        return "it starts with . - _ or + (hidden, system or excluded indices)"
    bad = sorted(set(text) & set(' \\/"<>|,#:?' + ("" if pattern else "*")))
    if bad:
        return "it holds " + " ".join("space" if c == " " else c for c in bad)
    if text != text.lower():
        return "index names are lowercase"
    return ""


def default_backup_name(prefix: str = "backup", now=None) -> str:
    now = timezone.localtime(now or timezone.now())
    base = f"{prefix}-{now:%Y%m%d-%H%M%S}"
    name, n = base, 1
    while Backup.objects.filter(name=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name
