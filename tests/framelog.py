"""Watch a stream with the library and print every decoded frame and event as a JSON line.

Tests run it where a viewer must live (inside a network namespace: ``ip netns exec NS
python tests/framelog.py ...``) and read what it prints as it comes: each frame's arrival
(Unix s), size, the test pattern's frame number and the layer it belongs to, so that they
can check pictures, not log lines, around a change in delivery.

    {"t": 1765060000.123, "w": 640, "h": 360, "n": 812, "layer": "360p"}
    {"t": 1765060000.101, "event": "layer", "text": "layer 720p -> 360p (640x360): 54% loss"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

import peercam


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("server")
    parser.add_argument("stream")
    parser.add_argument("--quality", default="auto")
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--relay-format", default="auto")
    parser.add_argument("--ice-host", action="append")
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    ice = peercam.IceOptions(hosts=args.ice_host)

    def say(record: dict) -> None:
        sys.stdout.write(json.dumps({"t": round(time.time(), 4), **record}) + "\n")
        sys.stdout.flush()

    async with peercam.watch(args.server, args.stream, quality=args.quality, mode=args.mode,
                             relay_format=args.relay_format, ice=ice) as stream:
        async def frames() -> None:
            async for frame in stream.frames(keep=None):
                say({"w": frame.width, "h": frame.height, "n": frame.number, "layer": frame.layer})

        async def events() -> None:
            async for event in stream.events():
                if event.kind != "stats":
                    say({"event": event.kind, "text": event.text})

        tasks = [asyncio.create_task(frames()), asyncio.create_task(events())]
        stopped = asyncio.Event()  # SIGTERM: the test has seen enough, stop now
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        try:
            await asyncio.wait_for(stopped.wait(), args.seconds)
        except TimeoutError:
            pass
        for task in tasks:
            task.cancel()
    say({"event": "done"})


if __name__ == "__main__":
    asyncio.run(main())
