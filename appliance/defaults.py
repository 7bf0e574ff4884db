"""The embedded factory configuration: what a freshly flashed box (or `make run`) starts with."""
from __future__ import annotations

from appliance import schema
from services import discover


def default_document(lab: bool) -> dict:
    document = schema.to_document(schema.parse({}))
    if lab:
        for name, service_cls in discover().items():
            document[name] = service_cls.lab_defaults(document[name])
    return document
