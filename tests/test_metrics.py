"""signaling/metrics.py: /metrics in Prometheus text format, with plausible values."""

from __future__ import annotations

import urllib.request

import aiohttp
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from signaling.app import create_app

from .conftest import get_json, wait_until


def scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples: list, sample: str | None = None, **labels) -> float:
    """The one sample with these labels (and this sample name, e.g. ``..._total``)."""
    (match,) = [s.value for s in samples if (sample is None or s.name == sample)
                and all(s.labels.get(k) == v for k, v in labels.items())]
    return match


def test_metrics_parse_and_show_streams_viewers_relay_and_errors(cluster):
    cluster.start_server()
    cluster.start_camera("lab")
    cluster.start_viewer("lab", "--duration", "30")
    cluster.start_viewer("lab", "--mode", "relay", "--duration", "30")

    def both_reported() -> bool:
        viewers = (get_json(f"{cluster.url}/api/streams/lab") or {}).get("viewers", [])
        return len(viewers) == 2 and all((v["stats"] or {}).get("frames", 0) > 60 for v in viewers)

    wait_until(both_reported, 20, "stats from both viewers")
    metrics = scrape(cluster.url)

    assert value(metrics["peercam_live_streams"]) == 1
    assert value(metrics["peercam_viewers"], stream="lab", mode="p2p") == 1
    assert value(metrics["peercam_viewers"], stream="lab", mode="relay") == 1
    assert value(metrics["peercam_websockets_open"]) == 3
    assert 25 <= value(metrics["peercam_viewer_fps"], stream="lab") <= 31
    assert 0 < value(metrics["peercam_viewer_latency_seconds"], stream="lab") < 0.2
    assert value(metrics["peercam_relay_frames_sent"], sample="peercam_relay_frames_sent_total") > 30
    assert value(metrics["peercam_relay_sent_bytes"], sample="peercam_relay_sent_bytes_total") > 100_000
    assert value(metrics["peercam_signaling_messages"], type="watch",
                 sample="peercam_signaling_messages_total") == 2
    assert value(metrics["peercam_signaling_messages"], type="stats",
                 sample="peercam_signaling_messages_total") >= 2
    assert all(name.startswith("peercam_") for name in metrics)


async def test_errors_are_counted_by_code():
    async with TestServer(create_app(), host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        async with session.ws_connect(server.make_url("/ws")) as ws:
            await ws.receive_json()
            await ws.send_str("{not json")
            assert (await ws.receive_json())["code"] == "bad-json"
            await ws.send_str('{"type": "nope"}')
            assert (await ws.receive_json())["code"] == "unknown-type"
        async with session.get(server.make_url("/metrics")) as response:
            text = await response.text()
    errors = {f.name: f.samples for f in text_string_to_metric_families(text)}["peercam_errors"]
    assert value(errors, code="bad-json", sample="peercam_errors_total") == 1
    assert value(errors, code="unknown-type", sample="peercam_errors_total") == 1
