"""Read a stream, draw the time on each frame, and publish the result as a new stream.

    python3 examples/timestamp_restream.py http://127.0.0.1:8080 demo demo-timed [seconds]
"""

import asyncio
import sys
import time

import cv2

import peercam


async def main(server: str, source: str, target: str, seconds: float) -> None:
    async with peercam.watch(server, source) as viewer, \
            peercam.Camera(server, target, width=640, height=480) as camera:
        print(f"publishing {target!r}", flush=True)
        started = time.monotonic()
        async for frame in viewer.frames():
            image = frame.image.copy()
            text = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
            cv2.putText(image, text, (10, image.shape[0] - 20), cv2.FONT_HERSHEY_SIMPLEX, 1.0,
                        (255, 255, 255), 2, cv2.LINE_AA)
            camera.send(image)
            if time.monotonic() - started >= seconds:
                break


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4], float(sys.argv[4]) if len(sys.argv) > 4 else 30))
