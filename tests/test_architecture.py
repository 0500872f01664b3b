"""The domain is pure: it never reaches up into the API, web pages or CLI."""

from __future__ import annotations

import ast

import pytest

from credo.settings import PROJECT_ROOT

SRC = PROJECT_ROOT / "src" / "credo"
DOMAIN = ["catalog", "ledger", "scoring", "lists", "process"]
OUTER = ("credo.api", "credo.web", "credo.cli")


def _imports(path: str) -> set[str]:
    tree = ast.parse((SRC / path).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("domain", DOMAIN)
def test_domain_never_imports_api_web_or_cli(domain: str) -> None:
    for path in (SRC / domain).rglob("*.py"):
        bad = [m for m in _imports(str(path.relative_to(SRC))) if m.startswith(OUTER)]
        assert not bad, f"{path.relative_to(PROJECT_ROOT)} imports {bad}"
