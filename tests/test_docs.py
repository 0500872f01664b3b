"""Documentation that must stay true: every setting and every folder is described."""

from __future__ import annotations

import re

from credo.settings import PROJECT_ROOT, SETTINGS, load_settings

DOCS = PROJECT_ROOT / "docs"


def test_every_setting_is_documented_with_its_variable() -> None:
    text = (DOCS / "settings.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| `(CREDO_\w+)` \|", text, re.M)}
    for setting in SETTINGS:
        assert rows.get(setting.name) == setting.env, f"{setting.name} is missing from docs/settings.md"
    assert set(rows) == {s.name for s in SETTINGS}, "docs/settings.md lists a setting that does not exist"


def test_every_setting_has_help_and_a_default_of_its_type() -> None:
    for setting in SETTINGS:
        assert setting.help.strip()
        assert isinstance(setting.default, setting.type)


def test_settings_come_from_the_environment_and_bad_values_name_the_variable() -> None:
    import pytest

    from credo.settings import SettingsError

    assert load_settings({"CREDO_PORT": "9001"}).port == 9001
    assert load_settings({}).database_url == "sqlite:///credo.db"
    with pytest.raises(SettingsError, match="CREDO_PORT: expected int"):
        load_settings({"CREDO_PORT": "eighty"})
    with pytest.raises(SettingsError, match="CREDO_TIMEZONE: unknown IANA timezone"):
        load_settings({"CREDO_TIMEZONE": "Mars/Olympus"})


def test_every_source_folder_has_a_line_in_the_architecture_doc() -> None:
    text = (DOCS / "architecture.md").read_text()
    src = PROJECT_ROOT / "src" / "credo"
    folders = [p.name for p in src.iterdir() if p.is_dir() and not p.name.startswith("__")]
    for name in folders:
        assert f"`src/credo/{name}/`" in text, f"docs/architecture.md has no line for src/credo/{name}/"


def test_every_test_the_security_model_names_exists() -> None:
    text = (DOCS / "security.md").read_text()
    named = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text))
    assert len(named) > 50
    for path, name in sorted(named):
        source = PROJECT_ROOT / path
        assert source.is_file(), f"docs/security.md names {path}, which does not exist"
        assert re.search(rf"^(async )?def {name}\(", source.read_text(), re.M), (
            f"{path}::{name} does not exist"
        )
