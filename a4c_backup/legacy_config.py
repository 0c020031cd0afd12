"""Reads the original backup-restore tool's config/config.yml.

The original file mixes nested keys (``elasticsearch.cluster_name``) with dotted flat keys
(``backup.files_dir: ...``); both spellings are accepted. This module only turns the file into
plain values; settings.py decides what wins (the environment always does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class LegacyConfigError(ValueError):
    """The config.yml file cannot be read; the message names the file and the key."""


@dataclass
class LegacyConfig:
    path: Path
    cluster_name: str | None = None
    addresses: list[str] = field(default_factory=list)
    files_dir: str | None = None
    alien4cloud_dir: str | None = None


def _lookup(data: dict, dotted: str):
    if dotted in data:
        return data[dotted]
    head, _, rest = dotted.partition(".")
    node = data.get(head)
    if isinstance(node, dict) and rest:
        return _lookup(node, rest)
    return None


def addresses_to_urls(addresses: list[str] | str) -> list[str]:
    """Turns ``host:port`` entries into HTTP URLs; entries that are URLs already stay so."""
    if isinstance(addresses, str):
        addresses = addresses.split(",")
    urls = []
    for raw in addresses:
        entry = str(raw).strip()
        if not entry:
            continue
        if "://" not in entry:
            entry = "http://" + entry
        if entry.count(":") == 1:  # no port given: Elasticsearch's REST default
            entry += ":9200"
        urls.append(entry)
    return urls


def read_legacy_config(path: Path) -> LegacyConfig:
    import yaml  # only where the original tool's config file exists: most starts lack it

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise LegacyConfigError(f"{path} is not valid YAML: {exc}") from exc
    except OSError as exc:
        raise LegacyConfigError(f"{path} cannot be read: {exc.strerror}") from exc
    if not isinstance(data, dict):
        raise LegacyConfigError(f"{path} must hold a mapping of keys, like the original config.yml")
    addresses = _lookup(data, "elasticsearch.addresses")
    if addresses is not None and not isinstance(addresses, (str, list)):
        raise LegacyConfigError(
            f"{path}: elasticsearch.addresses must be a comma list of host:port, got {addresses!r}"
        )
    cluster = _lookup(data, "elasticsearch.cluster_name")
    files_dir = _lookup(data, "backup.files_dir")
    a4c_dir = _lookup(data, "alien4cloud.dir")
    return LegacyConfig(
        path=path,
        cluster_name=str(cluster) if cluster is not None else None,
        addresses=addresses_to_urls(addresses) if addresses else [],
        files_dir=str(files_dir) if files_dir is not None else None,
        alien4cloud_dir=str(a4c_dir) if a4c_dir is not None else None,
    )
