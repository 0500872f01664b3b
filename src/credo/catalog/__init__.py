"""Catalogs: jurisdictions, policies, rules, lists and measures, loaded from TOML.

The public API lives in :mod:`credo.catalog.registry` (loading, the
:class:`Registry`), :mod:`credo.catalog.models` (the schema) and
:mod:`credo.catalog.guard` (protected grounds). See docs/catalogs.md.
"""
