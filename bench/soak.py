"""Usage: python3 -m bench.soak [--joins 500] [--sample-every 50] [--port PORT] [--json FILE]

Soak: memory stays flat across many joins and leaves. Starts a signaling server and a
640x480@30 test-pattern camera on 127.0.0.1, then runs --joins viewer cycles, one at a
time, rotating three kinds of viewer (light clients in this process, not the CLI):

- p2p: an aiortc peer connection (recvonly video + a "chat" data channel) offers over
  the real signaling WebSocket, waits for its first video frame (track.recv()), then
  hangs up, closes the peer connection and closes the WebSocket;
- relay: watches, asks for the relay, reads one binary relay frame, closes;
- vanish: like p2p up to the first frame, then leaves without a word: its ICE goes
  silent (no DTLS close alert), no hangup, and its TCP connection is reset (no
  WebSocket close frame).

Every --sample-every cycles it samples the server's and the camera's RSS (VmRSS in
/proc/PID/status) and open files and sockets (/proc/PID/fd), the camera's P2P viewer
count (camera.stats.viewers in /api/streams/NAME, which the camera reports every 2 s),
the relay readers and the server's viewers, and prints a table row. At the end it
says how long the camera took to let go of every viewer: until its viewer list is
empty, and until it holds no more sockets than before the first viewer (a peer
connection nobody closed keeps its UDP sockets until ICE consent expires, ~30 s). It
reports RSS growth per 100 joins: overall, and after the warm-up (the first
--warmup-joins, while allocator arenas, codecs and caches fill up) as a least-squares
slope. --json writes it all. Exits 1 if a join failed or the camera did not let go.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from peercam.peers.ice import restrict_host_addresses, rtc_configuration

from bench.harness import ROOT, free_port, least_squares_slope, rss_mb, start_peercam, stop

STREAM = "soak"
KINDS = ("p2p", "relay", "vanish")
#: Seconds for the server and the stream to come up, and for any one join.
STARTUP_TIMEOUT = 30.0
JOIN_TIMEOUT = 10.0
#: Default seconds to wait at the end for the camera to let go of every viewer: longer
#: than its 15 s connect timeout and aioice's ~30 s consent expiry, which free a peer
#: connection nobody closed.
DRAIN_TIMEOUT = 45.0


# Server and camera subprocesses ---------------------------------------------------


def open_fds(pid: int) -> int:
    """Sockets and files a process holds: every live peer connection holds UDP sockets."""
    return len(os.listdir(f"/proc/{pid}/fd"))


# The viewers -----------------------------------------------------------------------


class Api:
    """GET /api/streams/NAME and /healthz on the server under test."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def _get(self, path: str) -> dict | None:
        try:
            timeout = aiohttp.ClientTimeout(total=2)
            async with self.session.get(f"{self.base}{path}", timeout=timeout) as response:
                return await response.json() if response.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return None

    async def stream(self) -> dict | None:
        return await self._get(f"/api/streams/{STREAM}")

    async def connections(self) -> int | None:
        """Signaling WebSockets the server holds open (/healthz)."""
        return (await self._get("/healthz") or {}).get("connections")

    async def camera_viewers(self) -> list[str] | None:
        """Ids in the camera's latest report (None until it has reported)."""
        stream = await self.stream()
        stats = ((stream or {}).get("camera") or {}).get("stats")
        return None if stats is None else [v["id"] for v in stats.get("viewers", [])]

    async def wait_live(self, processes: dict[str, subprocess.Popen]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not (await self.stream() or {}).get("live"):
            for name, proc in processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"the {name} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"stream {STREAM!r} not live within {STARTUP_TIMEOUT:g} s")
            await asyncio.sleep(0.2)


async def next_message(ws: aiohttp.ClientWebSocketResponse, wanted: str) -> dict:
    """Skip text messages until one of type ``wanted``; fail on an error or a closed socket."""
    while True:
        msg = await ws.receive()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            if msg.type is aiohttp.WSMsgType.BINARY:
                continue
            raise RuntimeError(f"socket closed while waiting for {wanted!r} ({msg.type.name})")
        message = json.loads(msg.data)
        if message["type"] == wanted:
            return message
        if message["type"] in ("error", "hangup"):
            raise RuntimeError(f"waiting for {wanted!r}, got {message}")


async def watch(session: aiohttp.ClientSession, ws_url: str, name: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(ws_url, max_msg_size=0)
    await next_message(ws, "welcome")
    await ws.send_json({"type": "watch", "stream": STREAM, "name": name})
    return ws


def reset_tcp(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Vanish: an RST instead of a close frame (SO_LINGER 0, then close the socket)."""
    sock = ws.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws._conn.transport.abort()  # aiohttp has no public abort for a client WebSocket


async def join_p2p(session: aiohttp.ClientSession, ws_url: str, cycle: int, vanish: bool) -> None:
    """One P2P viewer: offer, first video frame, then leave politely or vanish."""
    ws = await watch(session, ws_url, f"soak-{cycle}")
    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        await next_message(ws, "stream-live")
        pc.addTransceiver("video", direction="recvonly")
        pc.createDataChannel("chat")
        track = asyncio.get_running_loop().create_future()
        pc.on("track", track.set_result)
        await pc.setLocalDescription(await pc.createOffer())
        await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
        answer = await next_message(ws, "answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        receiver = await track
        await receiver.recv()  # the camera's first frame, decoded
        if vanish:
            # Silence first (ICE stops: no DTLS close alert will reach the camera), then the reset.
            await pc.getTransceivers()[0].receiver.transport.transport.stop()
            reset_tcp(ws)
        else:
            await ws.send_json({"type": "hangup", "reason": "soak: done"})
    finally:
        await pc.close()
        await ws.close()


async def join_relay(session: aiohttp.ClientSession, ws_url: str, cycle: int) -> None:
    """One relay viewer: ask for the relay, read one binary frame, close."""
    ws = await watch(session, ws_url, f"soak-{cycle}")
    try:
        await ws.send_json({"type": "relay", "enabled": True})
        while (msg := await ws.receive()).type is not aiohttp.WSMsgType.BINARY:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"relay socket closed before a frame ({msg.type.name})")
    finally:
        await ws.close()


# The soak ------------------------------------------------------------------------------


async def seconds_until(condition, timeout: float) -> float | None:
    """Seconds until the async ``condition`` holds (polled), or None if not within ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await condition():
            return round(time.monotonic() - started, 1)
        await asyncio.sleep(0.25)
    return None


def growth(samples: list[dict], key: str, warmup_joins: int) -> dict:
    """RSS growth overall and after the warm-up (absolute, and as a slope), in MB."""
    settled = [(s["cycles"], s[key]) for s in samples if s["cycles"] >= warmup_joins]
    first, last = samples[0], samples[-1]
    return {
        "total_mb": round(last[key] - first[key], 2),
        "per_100_joins_mb": round(100 * (last[key] - first[key]) / max(1, last["cycles"]), 2),
        "after_warmup_mb": round(settled[-1][1] - settled[0][1], 2) if settled else None,
        "slope_after_warmup_per_100_joins_mb": None if (s := least_squares_slope(settled)) is None
        else round(100 * s, 2),
    }


async def soak(opts: argparse.Namespace, server: subprocess.Popen, camera: subprocess.Popen,
               base: str) -> dict:
    restrict_host_addresses(["127.0.0.1"])  # loopback only, like the camera's --ice-host
    ws_url = base.replace("http://", "ws://") + "/ws"
    samples, failures = [], []
    async with aiohttp.ClientSession() as session:
        api = Api(session, base)
        await api.wait_live({"server": server, "camera": camera})
        started = time.monotonic()

        async def sample(cycles: int) -> None:
            stream = await api.stream() or {}
            row = {
                "cycles": cycles,
                "seconds": round(time.monotonic() - started, 1),
                "server_rss_mb": round(rss_mb(server.pid), 1),
                "camera_rss_mb": round(rss_mb(camera.pid), 1),
                "server_fds": open_fds(server.pid),
                "camera_fds": open_fds(camera.pid),
                "camera_p2p_viewers": len(await api.camera_viewers() or []),
                "relay_readers": stream.get("relay", {}).get("readers"),
                "server_viewers": stream.get("viewer_count"),
            }
            samples.append(row)
            print("| " + " | ".join(str(row[k]) for k in COLUMNS) + " |", flush=True)

        print("| " + " | ".join(COLUMNS) + " |\n|" + "---:|" * len(COLUMNS), flush=True)
        await sample(0)
        for cycle in range(1, opts.joins + 1):
            kind = KINDS[(cycle - 1) % len(KINDS)]
            join = (join_relay(session, ws_url, cycle) if kind == "relay"
                    else join_p2p(session, ws_url, cycle, vanish=kind == "vanish"))
            try:
                await asyncio.wait_for(join, JOIN_TIMEOUT)
            except (RuntimeError, aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
                failures.append(f"cycle {cycle} ({kind}): {type(exc).__name__}: {exc}")
                print(f"  {failures[-1]}", file=sys.stderr, flush=True)
            if cycle % opts.sample_every == 0 or cycle == opts.joins:
                await sample(cycle)
            for name, proc in (("server", server), ("camera", camera)):
                if proc.poll() is not None:
                    raise RuntimeError(f"the {name} exited with {proc.returncode} at cycle {cycle}")
        joins_seconds = time.monotonic() - started

        # Every viewer is gone: the camera's report (every 2 s) lists none, and it holds no
        # more sockets than before the first viewer (a peer connection left open keeps its
        # UDP sockets until ICE consent expires).
        async def no_viewers() -> bool:
            return await api.camera_viewers() == []

        async def sockets_back() -> bool:
            return open_fds(camera.pid) <= samples[0]["camera_fds"]

        drained, sockets_drained = await asyncio.gather(seconds_until(no_viewers, opts.drain_timeout),
                                                        seconds_until(sockets_back, opts.drain_timeout))
        final = await api.stream() or {}
        left = await api.camera_viewers()
        connections = await api.connections()
    return {
        "joins": opts.joins,
        "kinds": KINDS,
        "joins_seconds": round(joins_seconds, 1),
        "failures": failures,
        "samples": samples,
        "growth": {key: growth(samples, key, opts.warmup_joins)
                   for key in ("server_rss_mb", "camera_rss_mb")},
        "drain_seconds": drained,
        "camera_sockets_drain_seconds": sockets_drained,
        "camera_viewers_left": left,
        "server_viewers_at_end": final.get("viewer_count"),
        "relay_readers_at_end": final.get("relay", {}).get("readers"),
        "server_connections_at_end": connections,  # the camera's own
        "final_server_rss_mb": round(rss_mb(server.pid), 1),
        "final_camera_rss_mb": round(rss_mb(camera.pid), 1),
        "final_server_fds": open_fds(server.pid),
        "final_camera_fds": open_fds(camera.pid),
    }


COLUMNS = ("cycles", "seconds", "server_rss_mb", "camera_rss_mb", "server_fds", "camera_fds",
           "camera_p2p_viewers", "relay_readers", "server_viewers")


def report(result: dict) -> None:
    print(f"\n{result['joins']} joins ({'/'.join(KINDS)} in turn) in {result['joins_seconds']} s; "
          f"{len(result['failures'])} failed")
    for key, g in result["growth"].items():
        print(f"{key}: {g['total_mb']:+.1f} MB overall ({g['per_100_joins_mb']:+.2f} MB per 100 joins); "
              f"after warm-up {g['after_warmup_mb']} MB, slope "
              f"{g['slope_after_warmup_per_100_joins_mb']} MB per 100 joins")
    drain, sockets = result["drain_seconds"], result["camera_sockets_drain_seconds"]
    print(f"after the last join, the camera's viewer list was empty after {drain} s" if drain is not None
          else f"the camera's viewer list did NOT drain: {result['camera_viewers_left']}")
    print(f"and its sockets were back to their number before the first viewer after {sockets} s"
          if sockets is not None else
          f"and its sockets did NOT come back to their number before the first viewer: "
          f"{result['final_camera_fds']} open files and sockets, {result['samples'][0]['camera_fds']} before")
    print(f"server at the end: {result['server_viewers_at_end']} viewers, "
          f"{result['relay_readers_at_end']} relay readers, "
          f"{result['server_connections_at_end']} WebSocket connections (the camera's)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joins", type=int, default=500, help="viewer cycles (join, first frame, leave)")
    parser.add_argument("--sample-every", type=int, default=50, help="cycles between RSS samples")
    parser.add_argument("--warmup-joins", type=int, default=100,
                        help="cycles left out of the growth slope (allocator and cache warm-up)")
    parser.add_argument("--drain-timeout", type=float, default=DRAIN_TIMEOUT,
                        help="seconds to wait at the end for the camera to let go of every viewer")
    parser.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--log-dir", type=Path, default=ROOT / "bench" / "results",
                        help="where the server's and the camera's logs go")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def main() -> None:
    opts = parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    opts.log_dir.mkdir(parents=True, exist_ok=True)
    port = opts.port or free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port)],
                           opts.log_dir / "soak-server.log")
    camera = start_peercam(["camera", "--server", base, "--stream", STREAM, "--ice-host", "127.0.0.1"],
                           opts.log_dir / "soak-camera.log")
    try:
        result = asyncio.run(soak(opts, server, camera, base))
    except KeyboardInterrupt:
        sys.exit("interrupted")
    except RuntimeError as exc:  # the server or the camera died, or never came up
        sys.exit(f"soak: {exc}; see the logs in {opts.log_dir}")
    finally:
        stop(camera)
        stop(server)
    report(result)
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {opts.json}")
    if result["failures"] or None in (result["drain_seconds"], result["camera_sockets_drain_seconds"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
