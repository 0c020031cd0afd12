"""{% catalog_last_synced %}: when the catalog was last brought in line with the storage."""

from django import template
from django.utils.dateparse import parse_datetime

from backups import operations

register = template.Library()


@register.inclusion_tag("backups/_catalog_sync.html")
def catalog_last_synced() -> dict:
    state = operations.last_sync() or {}
    return {
        "at": parse_datetime(state["at"]) if state.get("at") else None,
        "problems": state.get("problems") or [],
        "refused": state.get("refused") or 0,
    }
