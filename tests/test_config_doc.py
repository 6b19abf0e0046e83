"""docs/configuration.md's key table is generated from config/default.toml and kept fresh."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from config import load_settings, settings_as_dict
from config.loader import env_name

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "gen-config-doc.py"
    spec = importlib.util.spec_from_file_location("gen_config_doc", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen = _generator()
DEFAULTS_TEXT = (ROOT / "config" / "default.toml").read_text(encoding="utf-8")


def test_the_configuration_doc_is_up_to_date_with_the_defaults() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    fresh = gen.with_table(doc, gen.render_table(DEFAULTS_TEXT))
    assert fresh == doc, "docs/configuration.md is out of date: run scripts/gen-config-doc.py"


def test_the_table_has_one_row_per_key_the_service_reads() -> None:
    table = gen.render_table(DEFAULTS_TEXT)
    settings = settings_as_dict(load_settings(environ={}))
    keys = {f"{section}.{key}" for section, values in settings.items() for key in values}
    rows = {line.split("`")[1] for line in table.splitlines()[2:]}
    assert rows == keys


def test_each_row_names_the_environment_variable_the_loader_reads() -> None:
    for key in gen.read_keys(DEFAULTS_TEXT):
        assert gen.env_name(key) == env_name(key.dotted)


def test_a_new_key_in_the_defaults_gets_a_row_with_its_comment_and_limit() -> None:
    text = "[mail]\n# Seconds to wait before giving up (> 0).\ngive_up_seconds = 2.5\n"
    assert gen.render_table(text).splitlines()[2] == (
        "| `mail.give_up_seconds` | number > 0 | `2.5` | `EMAIL_SERVICE_MAIL_GIVE_UP_SECONDS`"
        " | Seconds to wait before giving up. |"
    )


def test_a_key_without_a_comment_is_refused() -> None:
    with pytest.raises(gen.DocError, match=r"mail\.silent has no comment"):
        gen.render_table("[mail]\nsilent = 1\n")


def test_text_outside_the_markers_is_kept_as_it_is() -> None:
    doc = f"# Title\n\nProse.\n\n{gen.BEGIN}\nold table\n{gen.END}\n\nMore prose.\n"
    assert (
        gen.with_table(doc, "NEW")
        == f"# Title\n\nProse.\n\n{gen.BEGIN}\nNEW\n{gen.END}\n\nMore prose.\n"
    )


def test_a_doc_without_the_markers_is_refused() -> None:
    with pytest.raises(gen.DocError, match="needs the lines"):
        gen.with_table("# no markers\n", "NEW")
