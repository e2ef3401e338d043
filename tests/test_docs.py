"""The docs say true things about the code: the names docs/actor-model.md says each module
exports are exported there, and every import in the docs' Python examples works."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import tinyagents

DOCS = Path(__file__).parent.parent / "docs"
GUIDES = [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def claims(text: str) -> dict[str, set[str]]:
    """``module -> names`` from the bullets "* `module` exports/has ... `Name` ..."."""
    found: dict[str, set[str]] = {}
    for bullet in re.findall(
        r"^\* (`tinyagents[\w.]*` (?:exports|has) .*?)(?=^\S|^\* |\Z)", text, flags=re.S | re.M
    ):
        parts = re.split(r";\s*(?=`tinyagents)", bullet)
        for part in parts:
            module = re.match(r"`(tinyagents[\w.]*)`", part)
            assert module is not None, part
            names = set(re.findall(r"`([A-Z]\w*|errors|events)`", part))
            found.setdefault(module.group(1), set()).update(names)
    return found


def test_the_actor_guide_names_exactly_what_tinyagents_exports() -> None:
    said = claims((DOCS / "actor-model.md").read_text())
    exported = set(tinyagents.__all__) - {"__version__"}
    assert said["tinyagents"] == exported


def test_the_clustering_guide_names_exactly_what_the_transport_exports() -> None:
    import tinyagents.transport

    said = claims((DOCS / "clustering.md").read_text())
    exported = {name for name in tinyagents.transport.__all__ if name[0].isupper()}
    assert said["tinyagents.transport"] == exported


def test_the_actor_guide_names_only_what_each_module_has() -> None:
    said = claims((DOCS / "actor-model.md").read_text())
    assert set(said) >= {"tinyagents.errors", "tinyagents.events", "tinyagents.router"}
    for module_name, names in said.items():
        module = importlib.import_module(module_name)
        missing = {name for name in names if name not in module.__all__}
        assert not missing, f"{module_name} does not export {missing}"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda path: path.name)
def test_every_import_in_the_examples_works(guide: Path) -> None:
    for block in python_blocks(guide):
        try:
            tree = ast.parse(block)
        except SyntaxError:
            continue  # a fragment (a signature, a table of members): no imports to check
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinyagents"):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    assert hasattr(module, alias.name), (
                        f"{guide.name}: {node.module} has no {alias.name}"
                    )
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("tinyagents"):
                        importlib.import_module(alias.name)
