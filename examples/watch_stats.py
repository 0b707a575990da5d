"""Watch a stream and print its frame rate and latency once a second.

    python3 examples/watch_stats.py http://127.0.0.1:8080 demo [seconds]
"""

import asyncio
import sys
import time

import peercam


async def main(server: str, stream: str, seconds: float) -> None:
    async with peercam.watch(server, stream) as viewer:
        started = last = time.monotonic()
        count, latencies = 0, []
        async for frame in viewer.frames():
            count += 1
            if frame.capture_time is not None:  # the test pattern carries it
                latencies.append((frame.arrived - frame.capture_time) * 1000)
            now = time.monotonic()
            if now - last >= 1:
                latency = f"{sorted(latencies)[len(latencies) // 2]:.0f} ms" if latencies else "?"
                print(f"{frame.mode} {frame.width}x{frame.height} {count / (now - last):.1f} fps, "
                      f"latency {latency}", flush=True)
                last, count, latencies = now, 0, []
            if now - started >= seconds:
                break


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 10))
