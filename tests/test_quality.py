"""Issue 11 end to end: each viewer picks its layer, the camera encodes only what is read,
and the server shows and counts it all. Real server, camera and CLI viewers on loopback."""

from __future__ import annotations

import asyncio
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import peercam
from peercam import IceOptions

from .conftest import wait_until
from .test_layer_adaptation import picture_after_move


def layer_stats(lab, stream: str = "hd") -> dict:
    camera = (lab.api(f"/api/streams/{stream}") or {}).get("camera") or {}
    return {layer["name"]: layer for layer in (camera.get("stats") or {}).get("layers", [])}


def test_three_viewers_get_720p_480p_and_360p_from_one_camera(lab):
    lab.start_server()
    lab.start_camera("hd", "--width", "1280", "--height", "720")
    stream = lab.api("/api/streams/hd")
    assert [(x["name"], x["width"], x["height"]) for x in stream["layers"]] == [
        ("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360)]
    # Nobody watches: no layer encodes.
    wait_until(lambda: layer_stats(lab) and not any(x["active"] for x in layer_stats(lab).values()),
               10, "the camera's first report")
    viewers = {q: lab.start_viewer("hd", "--quality", q, "--duration", "2")
               for q in ("720p", "480p", "360p")}
    summaries = {q: v.summary(timeout=60) for q, v in viewers.items()}
    assert {q: (s["width"], s["height"], s["layer"]) for q, s in summaries.items()} == {
        "720p": (1280, 720, "720p"), "480p": (854, 480, "480p"), "360p": (640, 360, "360p")}
    assert all(s["frames"] > 0 and s["layer_switches"] == 0 for s in summaries.values())
    # They left: every layer encoder stops.
    wait_until(lambda: not any(x["active"] for x in layer_stats(lab).values()), 10,
               "the layer encoders to stop")


def test_a_layer_encoder_runs_only_while_someone_is_on_it(lab):
    lab.start_server()
    lab.start_camera("hd", "--width", "1280", "--height", "720")
    viewer = lab.start_viewer("hd", "--quality", "480p", "--duration", "30")
    viewer.wait_for_log("first frame", timeout=20)
    wait_until(lambda: {k: v["active"] for k, v in layer_stats(lab).items()} ==
               {"720p": False, "480p": True, "360p": False}, 10, "only 480p to encode")
    viewer.kill()
    wait_until(lambda: not layer_stats(lab)["480p"]["active"], 10, "480p to stop")


def test_relay_viewers_pick_a_layer_and_a_format(lab):
    lab.start_server()
    lab.start_camera("hd", "--width", "1280", "--height", "720")
    viewers = [lab.start_viewer("hd", "--mode", "relay", "--relay-format", "jpeg", "--quality", "480p",
                                    "--jpeg-quality", "60", "--duration", "2"),
               lab.start_viewer("hd", "--mode", "relay", "--quality", "360p", "--duration", "2")]
    def renditions() -> list:
        return (lab.api("/api/streams/hd") or {}).get("relay", {}).get("renditions", [])

    wait_until(lambda: len(renditions()) == 2, 20, "two relay renditions")
    assert sorted((r["layer"], r["format"], r.get("jpeg_quality")) for r in renditions()) == [
        ("360p", "encoded", None), ("480p", "jpeg", 60)]
    first, second = (v.summary(timeout=60) for v in viewers)
    assert (first["mode"], first["width"], first["height"], first["layer"]) == ("relay", 854, 480, "480p")
    assert (first["relay_format"], second["relay_format"]) == ("jpeg", "encoded")
    assert (second["width"], second["height"], second["layer"]) == (640, 360, "360p")
    assert "JPEG q60" in viewers[0].log()


def test_the_api_shows_each_viewers_layer_and_metrics_count_switches(lab):
    lab.start_server()
    lab.start_camera("hd", "--width", "1280", "--height", "720")
    viewer = lab.start_viewer("hd", "--quality", "360p", "--duration", "30", "--name", "sam")
    viewer.wait_for_log("first frame", timeout=20)

    def sam():
        viewers = (lab.api("/api/streams/hd") or {}).get("viewers", [])
        return next((v for v in viewers if v["name"] == "sam" and v["layer"]), None)

    entry = wait_until(sam, 10, "sam's layer in the API")
    assert (entry["quality"], entry["layer"]) == ("360p", "360p")
    with urllib.request.urlopen(f"{lab.url}/metrics", timeout=5) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    samples = {tuple(sorted(s.labels.items())): s.value for s in families["peercam_layer_switches"].samples
               if s.name.endswith("_total")}
    assert samples[(("path", "p2p"), ("stream", "hd"))] == 0


def test_layers_that_cannot_be_made_are_refused_by_name(lab):
    lab.start_server()
    camera = lab.start_camera("hd", "--width", "1280", "--height", "720", "--layers", "1080p,480p",
                                  wait=False)
    code, _ = camera.result(timeout=30)
    assert code != 0 and "the largest possible layer is 720p" in camera.log()


async def collect(viewer, frames: list[dict], size: tuple[int, int], count: int) -> None:
    """Note each frame as it arrives until ``count`` of ``size`` came."""
    async for frame in viewer.frames(keep=None):
        frames.append({"t": time.time(), "w": frame.width, "h": frame.height, "n": frame.number})
        if sum((f["w"], f["h"]) == size for f in frames) >= count:
            return


async def test_a_manual_move_brings_pictures_of_the_new_layer_within_a_second_and_they_keep_coming(lab):
    """The library viewer picks 360p and then 720p again, on P2P and on both relay formats:
    a frame of the new size within a second of each request, and from then on only frames
    of that size, never a second apart (by arrival), and none of the camera's lost on the
    way (by the test pattern's numbers, on P2P: a relay rendition numbers its own)."""
    lab.start_server()
    lab.start_camera("hd", "--width", "1280", "--height", "720")
    for mode, relay_format in (("p2p", "auto"), ("relay", "encoded"), ("relay", "jpeg")):
        async with peercam.watch(lab.url, "hd", mode=mode, relay_format=relay_format, quality="720p",
                                 ice=IceOptions(servers=[], hosts=["127.0.0.1"])) as viewer:
            frames: list[dict] = []
            await asyncio.wait_for(collect(viewer, frames, (1280, 720), 10), 20)
            moves = []
            for quality, size in (("360p", (640, 360)), ("720p", (1280, 720))):
                frames.clear()
                moves.append(time.time())
                await viewer.set_quality(quality)
                await asyncio.wait_for(collect(viewer, frames, size, 45), 20)
                picture = picture_after_move(frames, moves[-1], size, frames[-1]["t"], numbered=mode == "p2p")
                print(mode, relay_format, quality, picture)
