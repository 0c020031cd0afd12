"""Elasticsearch's addresses as the settings give them, checked without the client: every
command's settings check reads them at its start, before anything connects (issue 28, item 3).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from backups.errors import ConfigError

TRANSPORT_PORT = 9300


def check_urls(urls: Iterable[str], source: str = "A4C_ES_URLS") -> list[str]:
    """Refuses addresses that cannot be Elasticsearch's REST API, before anything connects."""
    checked = []
    for url in urls:
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{source}: {url!r} is not an http(s)://host:port address.")
        if parts.port == TRANSPORT_PORT:
            raise ConfigError(
                f"{source}: {url} names port 9300, Elasticsearch's old transport port, which this "
                "tool cannot use; point it at the REST port instead (usually 9200)."
            )
        checked.append(parts.geturl())
    if not checked:
        raise ConfigError(f"{source} is empty: give at least one Elasticsearch address.")
    return checked
