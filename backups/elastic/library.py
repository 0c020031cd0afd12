"""The official client library (elasticsearch-py and its transport), imported when first
used: a command that never speaks to Elasticsearch (a files-only restore, the catalog's lists)
does not pay for importing it, about a tenth of a second. Only backups/elastic/ uses these."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def _on_first_use(name: str) -> ModuleType:
    """The module, loaded the first time one of its attributes is read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


elasticsearch = _on_first_use("elasticsearch")
elastic_transport = _on_first_use("elastic_transport")
