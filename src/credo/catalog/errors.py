"""Catalog errors are data: the loader returns them all instead of raising the first."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogError:
    """One problem in one catalog file.

    ``location`` names the rule, list, measure or agency code when there is
    one, otherwise a TOML path (``policy``, ``rules[3]``) or ``line N``;
    ``message`` starts with the field and says which rule was broken;
    ``ground`` is set only by the guard (a protected ground's id).

    >>> str(CatalogError("cn-sd-rc.toml", "rules[3]", "rules[3].legal_basis: must not be empty"))
    'cn-sd-rc.toml: rules[3]: rules[3].legal_basis: must not be empty'
    """

    file: str
    location: str
    message: str
    ground: str | None = None

    def __str__(self) -> str:
        suffix = f" [ground: {self.ground}]" if self.ground else ""
        return f"{self.file}: {self.location}: {self.message}{suffix}"
