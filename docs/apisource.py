"""MkDocs hook (mkdocs.yml `hooks`): the API reference's source tree, and its completeness.

mkdocstrings reads peercam's source with griffe, which finds a package's modules in its
folder. pyproject maps peercam.signaling, peercam.peers and peercam.web to folders of their
own at the top of the repository: an editable install finds them when Python imports them,
griffe does not. So before each build this lays out build/apisource/peercam/, links to
peercam/'s own files and to each mapped folder under its package name, as pyproject maps
them; mkdocs.yml points the python handler there.

Then it checks what the reference shows, each gap a warning, which `mkdocs build --strict`
turns into a failure: docs/api.md shows every name in peercam.__all__ and no other, and each
has a docstring, as do the public methods and properties of the classes among them.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import griffe
from mkdocs.plugins import event_priority

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "build" / "apisource"
API_PAGE = "api.md"

log = logging.getLogger("mkdocs.hooks.apisource")


def lay_out_source() -> None:
    """build/apisource/peercam/: peercam/'s files, and each mapped package's folder by its name."""
    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    package = SOURCE / "peercam"
    shutil.rmtree(SOURCE, ignore_errors=True)
    package.mkdir(parents=True)
    for path in (ROOT / "peercam").iterdir():
        if path.name != "__pycache__":
            (package / path.name).symlink_to(path)
    for name, folder in mapped.items():
        parent, _, leaf = name.rpartition(".")
        if parent != "peercam":
            raise ValueError(f"docs/apisource.py lays out peercam's own sub-packages only, not {name}")
        (package / leaf).symlink_to(ROOT / folder)


def _public_callables(cls: griffe.Class) -> list[griffe.Object]:
    return [member for name, member in cls.members.items()
            if not name.startswith("_") and not member.is_alias
            and (member.is_function or "property" in member.labels)]


def check_reference(api_page: str) -> None:
    """Warn about every public name the reference leaves out or leaves undescribed."""
    loader = griffe.GriffeLoader(search_paths=[SOURCE], extensions=griffe.load_extensions("griffe_sphinx"))
    module = loader.load("peercam", try_relative_path=False)
    loader.resolve_aliases(implicit=False, external=None)
    exported = set(module.exports or ())
    shown = set(re.findall(r"^::: peercam\.(\w+)\s*$", api_page, re.M))
    for name in sorted(exported - shown):
        log.warning("docs/%s does not show peercam.%s (in peercam.__all__)", API_PAGE, name)
    for name in sorted(shown - exported):
        log.warning("docs/%s shows peercam.%s, which is not in peercam.__all__", API_PAGE, name)
    for name in sorted(exported):
        target = module[name].final_target if module[name].is_alias else module[name]
        if not target.docstring:
            log.warning("peercam.%s (%s) has no docstring", name, target.path)
        if target.is_class:
            for member in _public_callables(target):
                if not member.docstring:
                    log.warning("peercam.%s.%s (%s) has no docstring", name, member.name, member.path)


@event_priority(100)  # before mkdocstrings' own: it drops search paths that do not exist yet
def on_config(config):
    lay_out_source()
    return config


def on_pre_build(config) -> None:
    check_reference((Path(config.docs_dir) / API_PAGE).read_text())
