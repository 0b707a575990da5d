"""The package's shape, checked by machine: one installed name (peercam), sub-packages that
each hold one part, and imports that run one way, from the edges down to what is shared.

    peercam (the API in __init__, the command line)
      peercam.signaling: edge > cluster | recording > registry > relay > settings
      peercam.peers:     ingest > camera | viewer > ice, signaling_client, testpattern
    peercam.shared: protocol, relay frames, the adaptation ladder, rate limits, the segment
      writer, retention, errors; imports nothing else of peercam.

Read from the source with ``ast`` (imports inside functions and ``TYPE_CHECKING`` blocks
count too), so it needs no install.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# Python 3.11's standard library reads pyproject (3.10, the oldest supported, skips this file).
tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent

#: Within each part, top to bottom; a module may import its own layer's package and those
#: below, never one above, and parts on one line ("a | b") do not import each other.
LAYERS = {
    "peercam.signaling": [["edge"], ["cluster", "recording"], ["registry"], ["relay"], ["settings"]],
    "peercam.peers": [["ingest"], ["camera", "viewer"], [None]],  # None: the part's own top-level modules
}


def _package_dirs() -> dict[str, Path]:
    """Package name -> folder, as pyproject maps them."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = setuptools.get("package-dir", {})
    dirs = {}
    for package in setuptools["packages"]:
        base = max((name for name in mapped if package == name or package.startswith(name + ".")),
                   key=len, default=None)
        if base is None:
            dirs[package] = ROOT / package.replace(".", "/")
        else:
            dirs[package] = ROOT / mapped[base] / package[len(base) + 1:].replace(".", "/")
    return dirs


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in _package_dirs().items():
        for path in folder.glob("*.py"):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


MODULES = _modules()
PACKAGES = set(_package_dirs())


def _imports(module: str, path: Path) -> set[str]:
    """The peercam modules (or packages) that ``module`` imports."""
    package = module if path.stem == "__init__" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:  # "from package import module" imports the module
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return {name for name in found if name == "peercam" or name.startswith("peercam.")}


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _part(module: str, top: str) -> str | None:
    """Which sub-package of ``top`` holds ``module`` (None: one of ``top``'s own modules)."""
    rest = module[len(top) + 1:].split(".")
    return rest[0] if len(rest) > 1 or module in PACKAGES else None


def test_the_layout_is_found():
    assert {"peercam.shared.protocol", "peercam.signaling.edge.app", "peercam.peers.camera.camera",
            "peercam.peers.viewer.viewer", "peercam.cli"} <= set(MODULES)
    assert all(path.is_file() for path in MODULES.values())


def test_shared_imports_nothing_else_of_peercam():
    wrong = {(m, t) for m, targets in GRAPH.items() if m.startswith("peercam.shared")
             for t in targets if not t.startswith("peercam.shared")}
    assert not wrong


@pytest.mark.parametrize("side,other", [("peercam.peers", "peercam.signaling"),
                                        ("peercam.signaling", "peercam.peers")])
def test_the_server_and_the_peers_never_import_each_other_nor_the_api_above(side, other):
    wrong = {(m, t) for m, targets in GRAPH.items() if m.startswith(side + ".")
             for t in targets if t.startswith(other) or t in ("peercam", "peercam.cli")}
    assert not wrong


@pytest.mark.parametrize("top", sorted(LAYERS))
def test_imports_run_down_the_layers(top):
    rank = {part: depth for depth, parts in enumerate(LAYERS[top]) for part in parts}
    parts = {_part(m, top) for m in MODULES if m.startswith(top + ".")}
    assert parts == set(rank), f"every part of {top} has a layer: {parts ^ set(rank)}"
    wrong = []
    for module, targets in GRAPH.items():
        if not module.startswith(top + "."):
            continue
        here = _part(module, top)
        for target in targets:
            if not target.startswith(top + "."):
                continue
            there = _part(target, top)
            if there != here and rank[there] <= rank[here]:
                wrong.append(f"{module} -> {target}")
    assert not wrong


def test_no_module_imports_itself_back_through_others():
    """No cycle among modules (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in GRAPH.get(module, ()):
            if target not in GRAPH:
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    # The package's own __init__ imports its API from the parts, which import peercam.shared
    # (whose parent is peercam): that is the one way round, not a cycle of modules.
    assert not cycles


def test_the_wheel_installs_one_top_level_name(tmp_path):
    """Built from a copy of the tree (the build writes beside the sources) without
    network: setuptools as installed here."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.egg-info", "build", "results", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path / "dist"), str(source)], check=True, timeout=300)
    [wheel] = (tmp_path / "dist").glob("peercam-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"peercam"}
    for expected in ("peercam/signaling/edge/app.py", "peercam/peers/camera/camera.py",
                     "peercam/shared/protocol.py", "peercam/web/player.html", "peercam/web/js/player.js",
                     "peercam/py.typed"):
        assert expected in names
