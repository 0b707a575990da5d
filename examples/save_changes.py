"""Save a JPEG whenever the picture changes (a simple motion trigger), without asyncio.

    python3 examples/save_changes.py http://127.0.0.1:8080 demo OUT_DIR [max_files]
"""

import sys
from pathlib import Path

import cv2
import numpy as np

import peercam

#: Mean absolute difference (0-255) between two small grey thumbnails that counts as a change.
THRESHOLD = 8.0


def main(server: str, stream: str, out: str, limit: int) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    previous, saved = None, 0
    for frame in peercam.watch_sync(server, stream):
        thumbnail = cv2.resize(cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY), (64, 48)).astype(np.int16)
        if previous is None or np.abs(thumbnail - previous).mean() > THRESHOLD:
            path = folder / f"change-{saved:04d}.jpg"
            cv2.imwrite(str(path), frame.image)
            print(path, flush=True)
            previous, saved = thumbnail, saved + 1
            if saved >= limit:
                break


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 100)
