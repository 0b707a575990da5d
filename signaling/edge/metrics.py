"""``GET /metrics``: the server's state and counters in Prometheus text format.

Counts of things that happen (messages, errors) are counters updated as they
happen; everything else (streams, viewers, relay totals, what viewers report) is
read from the stream registry when Prometheus scrapes.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator

from aiohttp import web
from peercam.signaling.cluster.cluster import Cluster
from peercam.signaling.recording.recordings import Recordings
from peercam.signaling.registry.streams import StreamRegistry
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from peercam.shared.protocol import ViewerStats

from .appkeys import METRICS
from .gate import Access, requires

routes = web.RouteTableDef()

#: Viewers report every 2 s: an older report describes a viewer that stopped getting video.
_STALE_AFTER = 6.0


class Metrics:
    def __init__(self, streams: StreamRegistry, sockets: weakref.WeakSet,
                 recordings: Recordings | None = None, cluster: Cluster | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter("peercam_signaling_messages", "Signaling messages received, by type",
                                ["type"], registry=self.registry)
        self.errors = Counter("peercam_errors", "Error replies sent to clients, by code",
                              ["code"], registry=self.registry)
        self.registry.register(_StateCollector(streams, sockets))
        if recordings is not None:
            self.registry.register(_RecordingCollector(recordings))
        if cluster is not None:
            self.registry.register(_ClusterCollector(cluster))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, streams: StreamRegistry, sockets: weakref.WeakSet) -> None:
        self._streams = streams
        self._sockets = sockets

    def collect(self) -> Iterator[Metric]:
        live = self._streams.live_streams()
        yield GaugeMetricFamily("peercam_live_streams", "Streams with a camera publishing", value=len(live))
        yield GaugeMetricFamily("peercam_websockets_open", "Open signaling WebSockets",
                                value=len(self._sockets))
        viewers = GaugeMetricFamily("peercam_viewers", "Viewers by stream and mode",
                                    labels=["stream", "mode"])
        fps = GaugeMetricFamily("peercam_viewer_fps", "Mean frame rate viewers report", labels=["stream"])
        latency = GaugeMetricFamily("peercam_viewer_latency_seconds",
                                    "Mean glass-to-glass latency viewers report", labels=["stream"])
        encode = GaugeMetricFamily("peercam_camera_encode_seconds",
                                   "Camera's mean encode time per frame", labels=["stream"])
        switches = CounterMetricFamily("peercam_layer_switches",
                                       "Changes of the layer (or relay JPEG quality) a viewer gets, by path",
                                       labels=["stream", "path"])
        for stream in live:
            for mode, count in stream.viewers_by_mode().items():
                viewers.add_metric([stream.name, mode], count)
            fresh = time.time() - _STALE_AFTER
            reports = [v.stats for v in stream.viewers.values()
                       if isinstance(v.stats, ViewerStats) and v.stats_at > fresh]
            if reports:
                fps.add_metric([stream.name], sum(r.fps for r in reports) / len(reports))
            latencies = [r.latency_ms for r in reports if r.latency_ms is not None]
            if latencies:
                latency.add_metric([stream.name], sum(latencies) / len(latencies) / 1000)
            camera_stats = stream.camera.stats if stream.camera else None
            if camera_stats is not None:
                encode.add_metric([stream.name], camera_stats.encode_ms / 1000)
            for path in ("p2p", "relay"):
                switches.add_metric([stream.name, path], stream.layer_switches[path])
        yield from (viewers, fps, latency, encode, switches)
        totals = self._streams.relay_totals
        yield CounterMetricFamily("peercam_relay_frames_sent", "Relay frames sent to readers",
                                  value=totals.frames_sent)
        yield CounterMetricFamily("peercam_relay_sent_bytes", "Relay bytes sent to readers",
                                  value=totals.bytes_sent)
        yield CounterMetricFamily("peercam_relay_frames_dropped",
                                  "Relay frames a slow reader skipped (a newer one replaced them)",
                                  value=totals.frames_skipped)
        yield CounterMetricFamily("peercam_relay_audio_packets_sent", "Opus packets sent to relay readers",
                                  value=totals.audio_packets_sent)
        yield CounterMetricFamily("peercam_relay_audio_packets_dropped",
                                  "Opus packets a relay reader too far behind dropped (its oldest)",
                                  value=totals.audio_packets_dropped)
        yield CounterMetricFamily("peercam_relay_talk_frames_sent",
                                  "Talk frames (a viewer's voice on the relay) sent to cameras here",
                                  value=totals.talk_frames_sent)
        yield CounterMetricFamily("peercam_relay_talk_frames_dropped",
                                  "Talk frames for cameras here dropped: the camera's socket was backed "
                                  "up, or the floor moved on while they came from another instance",
                                  value=totals.talk_frames_dropped)


class _RecordingCollector(Collector):
    def __init__(self, recordings: Recordings) -> None:
        self._recordings = recordings

    def collect(self) -> Iterator[Metric]:
        written = CounterMetricFamily("peercam_recording_bytes", "Bytes of video recorded, by stream",
                                      labels=["stream"])
        segments = CounterMetricFamily("peercam_recording_segments", "Segment files started, by stream",
                                       labels=["stream"])
        errors = CounterMetricFamily("peercam_recording_errors",
                                     "Recordings stopped by an error (a full disk, an unwritable directory)",
                                     labels=["stream"])
        active = GaugeMetricFamily("peercam_recording_active", "1 while a stream is being recorded",
                                   labels=["stream"])
        for name in self._recordings.names():
            state = self._recordings.state(name)
            written.add_metric([name], state["bytes_written"])
            segments.add_metric([name], state["segments"])
            errors.add_metric([name], state["errors"])
            active.add_metric([name], int(state["active"]))
        yield from (written, segments, errors, active)


class _ClusterCollector(Collector):
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("peercam_redis_connected", "1 while this instance shares state through Redis",
                                value=int(self._cluster.connected))
        yield CounterMetricFamily("peercam_redis_dropped_messages",
                                  "Messages for Redis dropped because it did not keep up",
                                  value=self._cluster.dropped)
        yield CounterMetricFamily("peercam_redis_relay_frames_too_large",
                                  "Relay frames too large to go to other instances (MAX_CLUSTER_FRAME_BYTES)",
                                  value=self._cluster.frames_too_large)
        yield CounterMetricFamily("peercam_redis_relay_reconnects",
                                  "Times the relay frames' own Redis connections failed and were made again",
                                  value=self._cluster.relay_reconnects)
        yield CounterMetricFamily("peercam_redis_talk_frames_dropped",
                                  "Talk frames for cameras on other instances that Redis did not "
                                  "take in time",
                                  value=self._cluster.talk_frames_dropped)
        pending = GaugeMetricFamily("peercam_redis_pending_bytes", "Bytes waiting to go to Redis",
                                    labels=["queue"])
        pending.add_metric(["signaling"], self._cluster.pending_bytes)
        pending.add_metric(["relay"], self._cluster.pending_frame_bytes)
        pending.add_metric(["talk"], self._cluster.pending_talk_bytes)
        yield pending


@routes.get("/metrics")
@requires(Access.MONITOR)
async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=request.app[METRICS].render())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
