"""A service never imports or reads another service: they meet on the event bus (appliance.bus) and
through typed contributions (appliance.contributions). Checked on the source of every service."""
from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
NAMES = sorted(p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists())


def violations(service: str) -> list[str]:
    found = []
    for path in sorted((SERVICES / service).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            for module in modules:
                parts = module.split(".")
                if parts[0] == "services" and len(parts) > 1 and parts[1] != service:
                    found.append(f"{path.relative_to(SERVICES)}:{node.lineno} imports {module}")
            if isinstance(node, ast.Attribute) and node.attr in NAMES and node.attr != service and \
                    isinstance(node.value, ast.Name) and node.value.id == "config":
                found.append(f"{path.relative_to(SERVICES)}:{node.lineno} reads config.{node.attr}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr" and len(node.args) >= 2 \
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value in NAMES \
                    and node.args[1].value != service:
                found.append(f"{path.relative_to(SERVICES)}:{node.lineno} reads the {node.args[1].value} section")
    return found


def test_no_service_imports_or_reads_another():
    found = [v for name in NAMES for v in violations(name)]
    assert not found, "\n".join(found)
