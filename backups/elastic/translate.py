"""Turning Elasticsearch's answers and failures into errors a person can act on.

Every message names what to fix: the setting (A4C_ES_URLS, A4C_ES_PASSWORD, A4C_ES_API_KEY,
A4C_ES_CA_CERT) or the server's own reason. Used by backups/elastic/client.py only; it sends
nothing itself.
"""

from __future__ import annotations

import functools
import warnings

from django.conf import settings

from backups.elastic.addresses import TRANSPORT_PORT, check_urls  # noqa: F401  (re-exported)
from backups.elastic.library import elastic_transport, elasticsearch
from backups.errors import ElasticError, ElasticUnreachable

# 6.x warns on every typed request that mapping types go away in 7.0 (an ElasticsearchWarning).
# Alien4Cloud 3.x's indices have their one type; there is nothing for an operator to act on.
warnings.filterwarnings("ignore", message=r"\[types removal\]")


def as_elastic_error(exc: Exception, doing: str, urls_setting: str = "A4C_ES_URLS") -> ElasticError:
    """The client's or the transport's error, said so that a person knows what to fix;
    ``urls_setting`` names the setting that points at the cluster (a drill's scratch cluster
    has its own)."""
    if isinstance(exc, elasticsearch.ApiError):
        info = exc.info if isinstance(exc.info, dict) else {}
        error = info.get("error", {})
        reason = error.get("reason") if isinstance(error, dict) else str(error)
        root = error.get("root_cause") if isinstance(error, dict) else None
        if (
            root
            and isinstance(root, list)
            and root[0].get("reason")
            and root[0]["reason"] != reason
        ):
            reason = f"{reason} ({root[0]['reason']})"
        status = exc.meta.status if exc.meta else "?"
        if status == 401:
            return ElasticError(
                f"Elasticsearch refused the credentials while trying to {doing} (HTTP 401: "
                f"{reason or exc.message}): check A4C_ES_USERNAME and A4C_ES_PASSWORD, or "
                "A4C_ES_API_KEY (an API key may have expired or been revoked).",
                detail=str(info)[:4000],
            )
        if status == 403:
            return ElasticError(
                f"Elasticsearch denied the user of A4C_ES_USERNAME / A4C_ES_API_KEY the right to "
                f"{doing}: {reason or exc.message} (HTTP 403). Grant it the cluster privileges "
                "manage, monitor and create_snapshot, and all on the Alien4Cloud indices.",
                detail=str(info)[:4000],
            )
        return ElasticError(
            f"Elasticsearch refused to {doing}: {reason or exc.message} (HTTP {status}).",
            detail=str(info)[:4000],
            retryable=status in (429, 502, 503, 504),
        )
    urls = ", ".join(getattr(settings, urls_setting))
    if isinstance(exc, elastic_transport.TlsError):  # it answers, but is not trusted
        return ElasticError(
            f"The TLS handshake with Elasticsearch at {urls} ({urls_setting}) failed "
            f"(while trying to {doing}): {exc.message}. Point A4C_ES_CA_CERT at the CA that "
            "signed the server's certificate (now "
            f"{settings.A4C_ES_CA_CERT or 'unset: the system CAs'}).",
        )
    if isinstance(exc, elastic_transport.ConnectionTimeout):
        return ElasticUnreachable(
            f"Elasticsearch did not answer in time while trying to {doing}; "
            "check that it is up and not overloaded.",
            retryable=True,
        )
    if isinstance(exc, elastic_transport.TransportError):
        if urls_setting != "A4C_ES_URLS":
            fix = f"Start it, or fix {urls_setting}"
        else:
            fix = f"Start it, or fix A4C_ES_URLS (now from {settings.A4C_ES_URLS_SOURCE})"
        return ElasticUnreachable(
            f"Elasticsearch at {urls} cannot be reached "
            f"(while trying to {doing}): {exc.message}. {fix}.",
            retryable=True,
        )
    raise exc


def translated(doing: str):
    """Decorates a Cluster method: its client errors become ElasticError about ``doing``."""

    def wrap(func):
        @functools.wraps(func)
        def inner(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except (elasticsearch.ApiError, elastic_transport.TransportError) as exc:
                # the cluster is the first argument of every decorated method and function
                where = getattr(args[0], "urls_setting", "A4C_ES_URLS") if args else "A4C_ES_URLS"
                raise as_elastic_error(exc, doing, where) from exc

        return inner

    return wrap
