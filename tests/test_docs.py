"""The documentation names what exists, and only that: every flag of every command in
docs/commands.md, every HTTP route in docs/http.md, every query parameter the pages read in
docs/player.md and docs/publish.md. (The messages are in docs/protocol.md, generated: see
tests/test_protocoldoc.py.)"""

import argparse
import re
from pathlib import Path

from peercam.signaling.edge.app import create_app

from peercam.cli import _build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    flags = {option for action in parser._actions for option in action.option_strings
             if option.startswith("--")}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                flags |= _flags(command)
    return flags


def test_every_flag_of_every_command_is_on_the_commands_page_and_no_other():
    page = (DOCS / "commands.md").read_text()
    named = set(re.findall(r"`(--[a-z][a-z0-9-]*)", page))
    flags = _flags(_build_parser())
    assert flags - named == set(), "flags docs/commands.md does not describe"
    assert named - flags == set(), "flags docs/commands.md names that no command has"


def test_every_command_has_its_section():
    page = (DOCS / "commands.md").read_text()
    [commands] = [a for a in _build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(re.findall(r"^## (\w+)$", page, re.M)) - {"Every"} >= set(commands.choices)
    assert {name for name in re.findall(r"^## (\w+)$", page, re.M)} - {"Every"} <= set(commands.choices)


def _table_rows(page: str, heading: str) -> list[str]:
    """The first column of the first table after ``heading``."""
    section = page[page.index(heading):]
    table = re.search(r"^\|.*?\n\|[-|]+\|\n((?:\|.*\n)+)", section, re.M).group(1)
    return [row.split("|")[1].strip() for row in table.splitlines()]


async def test_every_route_is_in_the_route_table_and_no_other():
    app = create_app()
    routes = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("formatter") or info.get("path") or info.get("prefix")
        for route in resource:
            if route.method != "HEAD":
                routes.add(f"{route.method} {path}")
    documented = set()
    for cell in _table_rows((DOCS / "http.md").read_text(), "| route |"):
        method, path = cell.strip("`").split(" ", 1)
        documented.add(f"{method} {path.removesuffix('/...')}")
    assert routes == documented


def _page_params(*scripts: str) -> set[str]:
    found = set()
    for script in scripts:
        text = (ROOT / "web" / "js" / script).read_text()
        found |= set(re.findall(r"params\.(?:get|has)\('(\w+)'\)", text))
        found |= set(re.findall(r"secondsParam\(params, '(\w+)'", text))
        found |= set(re.findall(r"URLSearchParams\(query\)\.get\('(\w+)'\)", text))
    return found


def test_the_players_query_parameters_are_its_pages():
    documented = {cell.strip("`") for cell in _table_rows((DOCS / "player.md").read_text(), "| parameter |")}
    assert documented == _page_params("player.js", "page-request.js", "display-name.js")


def test_the_publish_pages_query_parameters_are_its_pages():
    documented = {cell.strip("`") for cell in _table_rows((DOCS / "publish.md").read_text(), "| parameter |")}
    assert documented == _page_params("publish.js", "display-name.js")
