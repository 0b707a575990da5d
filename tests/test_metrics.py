"""signaling/edge/metrics.py: /metrics in Prometheus text format, with plausible values."""

from __future__ import annotations

import urllib.request

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from peercam.signaling.edge.app import create_app
from prometheus_client.parser import text_string_to_metric_families

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


def test_metrics_parse_and_show_streams_viewers_relay_and_errors(lab):
    lab.start_server()
    lab.start_camera("lab")
    lab.start_viewer("lab", "--duration", "60")
    lab.start_viewer("lab", "--mode", "relay", "--duration", "60")

    def reports() -> list[dict] | None:
        """Both viewers' latest stats, once each has had video for a while and has it still."""
        viewers = (get_json(f"{lab.url}/api/streams/lab") or {}).get("viewers", [])
        stats = [v["stats"] or {} for v in sorted(viewers, key=lambda v: v["id"])]
        steady = len(stats) == 2 and all(s.get("frames", 0) > 60 and s["fps"] > 0 and "latency_ms" in s
                                         for s in stats)
        return stats if steady else None

    def scrape_with_its_reports() -> tuple[list[dict], dict] | None:
        """A scrape, and the reports it was made from (no new report came in between)."""
        before = reports()
        metrics = scrape(lab.url)
        return (before, metrics) if before and reports() == before else None

    reported, metrics = wait_until(scrape_with_its_reports, 60, "steady stats from both viewers")

    assert value(metrics["peercam_live_streams"]) == 1
    assert value(metrics["peercam_viewers"], stream="lab", mode="p2p") == 1
    assert value(metrics["peercam_viewers"], stream="lab", mode="relay") == 1
    assert value(metrics["peercam_websockets_open"]) == 3
    # What the viewers report, averaged (and in seconds): rates and delays are the benchmarks' business.
    fps = [s["fps"] for s in reported]
    assert value(metrics["peercam_viewer_fps"], stream="lab") == pytest.approx(sum(fps) / len(fps)), reported
    latency_s = [s["latency_ms"] / 1000 for s in reported]
    assert value(metrics["peercam_viewer_latency_seconds"], stream="lab") == \
        pytest.approx(sum(latency_s) / len(latency_s)), reported
    assert value(metrics["peercam_relay_frames_sent"], sample="peercam_relay_frames_sent_total") > 30
    assert value(metrics["peercam_relay_sent_bytes"], sample="peercam_relay_sent_bytes_total") > 100_000
    # The relay viewer listens to the camera's test tone too: 50 packets a second.
    assert value(metrics["peercam_relay_audio_packets_sent"],
                 sample="peercam_relay_audio_packets_sent_total") > 50
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
