"""signaling/edge/auth.py and --auth: signed tokens for publishing and viewing; the admin API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from peercam.signaling.edge.auth import TokenError, check_token, make_token

from peercam.shared.durations import parse_duration

from .conftest import get_json, wait_until
from .support.chromium import goto_player

SECRET = "s3cret"


def test_a_token_grants_its_stream_and_role_until_it_expires():
    token = make_token(SECRET, "lab", "publish", ttl=60)
    check_token(SECRET, token, "lab", "publish")
    for stream, role, words in (("lab", "view", "grants 'publish'"), ("other", "publish", "for stream")):
        with pytest.raises(TokenError, match=words):
            check_token(SECRET, token, stream, role)
    with pytest.raises(TokenError, match="bad signature"):
        check_token("another secret", token, "lab", "publish")
    with pytest.raises(TokenError, match="expired"):
        check_token(SECRET, make_token(SECRET, "lab", "publish", ttl=-5), "lab", "publish")
    with pytest.raises(TokenError, match="required"):
        check_token(SECRET, "", "lab", "view")
    admin = make_token(SECRET, "*", "admin", ttl=60)
    check_token(SECRET, admin, "anything", "view")


@pytest.mark.parametrize("text, seconds",
                         [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def token_from_cli(lab, *args: str) -> str:
    code, stdout = lab.start("token", "token", "--secret", SECRET, *args).result(timeout=20)
    assert code == 0
    return stdout.strip().splitlines()[-1]


def test_auth_publish_needs_a_publish_token(lab):
    lab.start_server("--secret", SECRET, "--auth", "publish")
    refused = lab.start_camera("lab", wait=False)
    code, _ = refused.result(timeout=20)
    assert code != 0 and "token" in refused.log()
    wrong_role = lab.start_camera("lab", "--token", token_from_cli(lab, "--stream", "lab",
                                                                        "--role", "view"), wait=False)
    assert wrong_role.result(timeout=20)[0] != 0 and "token" in wrong_role.log()
    lab.start_camera("lab", "--token", token_from_cli(lab, "--stream", "lab", "--role", "publish",
                                                           "--ttl", "10m"))
    assert lab.start_viewer("lab", "--duration", "1").summary(timeout=30)["frames"] > 0


def test_auth_all_needs_a_view_token_too(lab):
    lab.start_server("--secret", SECRET, "--auth", "all")
    lab.token = make_token(SECRET, "lab", "view", ttl=600)
    lab.start_camera("lab", "--token", token_from_cli(lab, "--stream", "lab", "--role", "publish"))
    refused = lab.start_viewer("lab", "--duration", "1")
    code, _ = refused.result(timeout=20)
    assert code != 0 and "token" in refused.log()
    expired = make_token(SECRET, "lab", "view", ttl=-1)
    late = lab.start_viewer("lab", "--duration", "1", "--token", expired)
    assert late.result(timeout=20)[0] != 0 and "token expired" in late.log()
    viewer = lab.start_viewer("lab", "--duration", "1", "--token",
                                  token_from_cli(lab, "--stream", "lab", "--role", "view"))
    assert viewer.summary(timeout=30)["frames"] > 0


def admin_request(url: str, method: str, token: str | None, body: dict | None = None):
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_admin_reserves_and_ends_a_stream(lab):
    lab.start_server("--secret", SECRET)  # open: anyone may publish, but not a reserved name
    admin = token_from_cli(lab, "--stream", "*", "--role", "admin")
    assert admin_request(f"{lab.url}/api/streams", "POST", None, {"name": "lab"})[0] == 401
    status, reply = admin_request(f"{lab.url}/api/streams", "POST", admin, {"name": "lab", "ttl": "5m"})
    assert status == 201 and reply["name"] == "lab"

    squatter = lab.start_camera("lab", wait=False)
    assert squatter.result(timeout=20)[0] != 0 and "token" in squatter.log()
    camera = lab.start_camera("lab", "--token", reply["publish_token"])
    viewer = lab.start_viewer("lab", "--duration", "60", "--mode", "relay")
    viewer.wait_for_log("first frame", timeout=15)

    assert admin_request(f"{lab.url}/api/streams/lab", "DELETE", admin)[0] == 200
    viewer.wait_for_log("ended by an administrator", timeout=5)
    code, _ = camera.result(timeout=15)
    assert code != 0 and "ended" in camera.log()
    wait_until(lambda: not (get_json(f"{lab.url}/api/streams/lab") or {}).get("live"), 5,
               "the stream to end")
    assert admin_request(f"{lab.url}/api/streams/nope", "DELETE", admin)[0] == 404


def test_page_shows_a_token_when_the_server_asks(lab, page):
    lab.start_server("--secret", SECRET, "--auth", "all")
    lab.token = make_token(SECRET, "lab", "view", ttl=600)
    lab.start_camera("lab", "--token", token_from_cli(lab, "--stream", "lab", "--role", "publish"))
    goto_player(page, f"{lab.url}/view/lab")
    page.wait_for_function("peercam.state() === 'error'", timeout=10_000)
    assert "token" in page.inner_text("#status")
    view = token_from_cli(lab, "--stream", "lab", "--role", "view")
    goto_player(page, f"{lab.url}/view/lab?token={view}")
    page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
