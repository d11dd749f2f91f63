"""What an installed aha-explain holds: every subpackage, the card templates, one version."""

import importlib.resources
from pathlib import Path

import pytest

import aha


ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_and_the_card_templates_are_packaged():
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    source = ROOT / "src"
    packages = {".".join(p.parent.relative_to(source).parts) for p in source.glob("aha/**/__init__.py")}
    # metrics_hub holds the evaluate module's script: package data, loaded by evaluate, never imported (listed so that
    # setuptools does not warn about an importable folder shipped only as data)
    script_folders = {"aha.metrics_hub", "aha.metrics_hub.deletion_insertion"}
    assert packages | script_folders | {"aha.hub_cards"} == set(setuptools["packages"])
    assert "metrics_hub/**/*" in setuptools["package-data"]["aha"]
    assert setuptools["package-dir"]["aha.hub_cards"] == "hub_cards"
    shipped = {p.name for p in (ROOT / "hub_cards").glob("*.md")}
    installed = {p.name for p in importlib.resources.files("aha.hub_cards").iterdir() if p.name.endswith(".md")}
    assert (
        shipped
        == installed
        == {"model_card.md", "shapes_dataset_card.md", "letters_dataset_card.md", "parts_dataset_card.md"}
    )


def test_the_version_has_one_source():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "aha.__version__"}
    from importlib.metadata import version

    assert version("aha-explain") == aha.__version__
