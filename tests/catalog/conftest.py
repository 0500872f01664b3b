"""Fixtures for the catalog tests: the shipped catalogs, and editable copies of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from credo.catalog.errors import CatalogError
from credo.catalog.registry import Registry, load_catalogs

CATALOGS = Path(__file__).resolve().parents[2] / "catalogs"


class CatalogCopy:
    """A temporary copy of the shipped catalogs that a test edits like a policy maker would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for path in CATALOGS.glob("*.toml"):
            shutil.copy(path, root / path.name)

    def path(self, name: str) -> Path:
        return self.root / name

    def text(self, name: str) -> str:
        return self.path(name).read_text(encoding="utf-8")

    def write(self, name: str, text: str) -> Path:
        self.path(name).write_text(text, encoding="utf-8")
        return self.path(name)

    def edit(self, name: str, old: str, new: str, count: int = 1) -> None:
        """Replace ``old`` (which must occur) by ``new`` in file ``name``."""
        text = self.text(name)
        assert old in text, f"{old!r} not in {name}"
        self.write(name, text.replace(old, new, count))

    def append(self, name: str, text: str) -> None:
        self.write(name, self.text(name) + "\n" + text)

    def remove(self, name: str) -> None:
        self.path(name).unlink()

    def load(self) -> tuple[Registry | None, list[CatalogError]]:
        return load_catalogs([self.root])

    def errors(self) -> list[CatalogError]:
        registry, errors = self.load()
        assert registry is None, "expected the catalogs to be refused"
        assert errors
        return errors


@pytest.fixture(scope="session")
def catalogs_dir() -> Path:
    return CATALOGS


@pytest.fixture(scope="session")
def shipped() -> Registry:
    registry, errors = load_catalogs([CATALOGS])
    assert errors == []
    assert registry is not None
    return registry


@pytest.fixture
def copy(tmp_path: Path) -> CatalogCopy:
    return CatalogCopy(tmp_path)
