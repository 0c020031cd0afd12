"""The official client's transport, taught to learn the server's version first.

elasticsearch-py 8 speaks 8.x: it sends compatibility media types and refuses an answer
without ``X-Elastic-Product``, which 6.x never sends. Rather than a second HTTP stack, the
client gets this subclass of elastic-transport's ``Transport`` (its ``transport_class``
hook): before the first request it asks the nodes their versions, refuses an unsupported
cluster before anything is sent that could change it, and from then on shapes each request
as that version wants (backups/elastic/versions.py says how).
"""

from __future__ import annotations

import threading

import elastic_transport
from django.conf import settings

from backups.elastic.versions import Dialect, dialect_for, plain_media_types

# The one request sent before the version is known: every version answers it the same way.
_DISCOVERY = "/_nodes?filter_path=nodes.*.version"
_PLAIN_JSON = "application/json"


class VersionedTransport(elastic_transport.Transport):
    """A Transport that knows, and adapts to, the version of the cluster behind it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._dialect: Dialect | None = None
        self._learning = threading.Lock()

    @property
    def dialect(self) -> Dialect | None:
        """None until the first request has been answered."""
        return self._dialect

    def perform_request(self, method: str, target: str, *, headers=None, **kwargs):
        headers = dict(headers or {})
        if self._dialect is None:
            with self._learning:
                if self._dialect is None:
                    self._dialect = self._learn(headers, kwargs)
        if self._dialect is None:
            # The server would not list its nodes (wrong credentials, say): send the request
            # as every version reads it, and let the client raise the server's own reason.
            return super().perform_request(
                method, target, headers=plain_media_types(headers), **kwargs
            )
        dialect = self._dialect
        meta, body = super().perform_request(
            method, target, headers=dialect.request_headers(headers), **kwargs
        )
        if not dialect.sends_product_header and 200 <= meta.status < 300:
            # The version was checked on a node list only Elasticsearch answers; vouch for it
            # the way 7.14 and later do themselves.
            meta.headers = meta.headers.copy()
            meta.headers["x-elastic-product"] = "Elasticsearch"
        return meta, body

    def _learn(self, headers: dict, kwargs: dict) -> Dialect | None:
        """Asks the nodes their versions with the caller's credentials and timeouts."""
        asked = {k: v for k, v in headers.items() if k.lower() not in ("accept", "content-type")}
        asked["accept"] = _PLAIN_JSON
        options = {k: v for k, v in kwargs.items() if k != "body"}
        meta, body = super().perform_request("GET", _DISCOVERY, headers=asked, **options)
        if meta.status != 200 or not isinstance(body, dict):
            return None  # the caller's own request will fail with the server's reason
        versions = [node.get("version", "") for node in body.get("nodes", {}).values()]
        return dialect_for(versions)


def client_options() -> dict:
    """How the client reaches a cluster: this transport, the timeout, the credentials and CA
    of the A4C_ES_* settings (a drill's scratch cluster is reached with the same)."""
    kwargs: dict = {
        "transport_class": VersionedTransport,
        "request_timeout": settings.A4C_ES_TIMEOUT,
        "max_retries": 2,
        "retry_on_timeout": False,
    }
    if settings.A4C_ES_API_KEY:
        kwargs["api_key"] = settings.A4C_ES_API_KEY
    elif settings.A4C_ES_USERNAME:
        kwargs["basic_auth"] = (settings.A4C_ES_USERNAME, settings.A4C_ES_PASSWORD)
    if settings.A4C_ES_CA_CERT:
        kwargs["ca_certs"] = settings.A4C_ES_CA_CERT
    if not settings.A4C_ES_VERIFY_CERTS:
        kwargs["verify_certs"] = False
        kwargs["ssl_show_warn"] = False
    return kwargs
