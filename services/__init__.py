"""Service plugins. Each subpackage exposes SERVICE, a subclass of appliance.service.Service.

Discovery is automatic: adding services/<name>/ with SERVICE is all it takes to add a service.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache


@cache
def discover() -> dict:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        service = getattr(module, "SERVICE", None)
        if service is not None:
            found[service.name] = service
    return found
