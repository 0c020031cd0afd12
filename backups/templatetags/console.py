"""Filters every console template may use without loading them (settings.TEMPLATES builtins)."""

from __future__ import annotations

import json
import re

from django import template
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from backups import formatting
from backups.sizes import format_size

register = template.Library()

_TICKED = re.compile(r"`([^`]+)`")


@register.filter
def size(count) -> str:
    """A byte count in the unit a person reads (see backups/sizes.py)."""
    return format_size(count)


@register.filter
def counted(count, nouns: str) -> str:
    """A count with its noun in the count's form and thousands separators:
    ``{{ n|counted:"backup" }}``, ``{{ n|counted:"index,indices" }}`` (formatting.count_of)."""
    singular, _, plural = nouns.partition(",")
    return formatting.count_of(count, singular, plural)


@register.filter
def ago(moment) -> str:
    """How long ago a moment was, in the words console.js keeps up to date (formatting.time_ago)."""
    return formatting.time_ago(timezone.now() - moment) if moment else ""


@register.filter
def printable(text) -> str:
    """Text from outside (a record's description, an imported audit event) with its control
    characters and bidi overrides shown as escapes (backups/formatting.py); autoescape then
    escapes its HTML as for any text."""
    return formatting.printable("" if text is None else text)


@register.filter
def ticks(text) -> SafeString:
    """Messages written for the terminal quote commands in backticks; a page shows them as code."""
    return mark_safe(_TICKED.sub(r"<code>\1</code>", escape(text or "")))


@register.filter
def parameters(value) -> list[tuple[str, str]]:
    """An audit event's parameters as (name, value) lines: text as is, lists joined, else JSON."""
    if not isinstance(value, dict):
        return [("", json.dumps(value, default=str))] if value not in (None, "") else []
    lines = []
    for key in sorted(value):
        item = value[key]
        if isinstance(item, str):
            text = item
        elif isinstance(item, list | tuple) and all(isinstance(i, str | int) for i in item):
            text = ", ".join(str(i) for i in item) or "—"
        elif item is None:
            text = "—"
        elif isinstance(item, bool):
            text = "yes" if item else "no"
        else:
            text = json.dumps(item, sort_keys=True, default=str)
        lines.append((key.replace("_", " "), text))
    return lines
