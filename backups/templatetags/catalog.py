"""{% catalog_last_synced %}: when the catalog was last brought in line with the storage."""

from datetime import timedelta

from django import template
from django.conf import settings
from django.utils.dateparse import parse_datetime

from backups import operations
from backups.formatting import human_duration

register = template.Library()


@register.inclusion_tag("backups/_catalog_sync.html")
def catalog_last_synced() -> dict:
    state = operations.last_sync() or {}
    return {
        "at": parse_datetime(state["at"]) if state.get("at") else None,
        "problems": state.get("problems") or [],
        "refused": state.get("refused") or 0,
        "every": human_duration(timedelta(seconds=settings.A4C_SYNC_SECONDS)),
    }
