"""peercam/shared/retention.py: what --record-keep keeps, on real files: by size, from the stream
that uses the most."""

from __future__ import annotations

import os
import time

import pytest

from peercam.shared.retention import Retention


def test_rules_are_an_age_a_size_or_both():
    assert Retention.parse(["7d"]) == Retention(max_age=7 * 86400)
    assert Retention.parse(["10GB"]) == Retention(max_bytes=10 << 30)
    assert Retention.parse(["500MB", "12h"]) == Retention(max_age=12 * 3600, max_bytes=500 << 20)
    assert Retention.parse(["1.5GiB"]) == Retention(max_bytes=int(1.5 * (1 << 30)))
    for bad in ("0GB", "soon", "-1d", "inf", "7 parsecs"):
        with pytest.raises(ValueError, match="--record-keep"):
            Retention.parse([bad])


def make_segments(directory, names_and_sizes, stream="cam"):
    folder = directory / stream
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, size in names_and_sizes:
        path = folder / name
        path.write_bytes(b"\0" * size)
        paths.append(path)
    return paths


def test_by_size_the_oldest_go_first_across_streams(tmp_path):
    a = make_segments(tmp_path, [("2026-01-01T00-00-00.webm", 100), ("2026-01-01T00-00-10.webm", 100)], "a")
    b = make_segments(tmp_path, [("2026-01-01T00-00-05.webm", 100), ("2026-01-01T00-00-05-1.webm", 100)], "b")
    (tmp_path / "a" / "notes.txt").write_text("not a segment: never touched " * 20)
    deleted = Retention(max_bytes=250).sweep(tmp_path, current=set())
    assert deleted == [a[0], b[0]]
    assert sorted(p.name for p in tmp_path.glob("*/*")) == [
        "2026-01-01T00-00-05-1.webm", "2026-01-01T00-00-10.webm", "notes.txt"]


def test_a_segment_being_written_counts_but_never_goes(tmp_path):
    old, current = make_segments(tmp_path, [("2026-01-01T00-00-00.mp4", 100),
                                            ("2026-01-01T00-01-00.mp4", 300)])
    assert Retention(max_bytes=350).sweep(tmp_path, current={current}) == [old]
    assert current.exists()


def test_by_age_after_the_last_write(tmp_path):
    old, new = make_segments(tmp_path, [("2026-01-01T00-00-00.webm", 10), ("2026-01-01T00-01-00.webm", 10)])
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert Retention(max_age=1800).sweep(tmp_path, current=set()) == [old]
    assert new.exists()


def test_by_size_the_stream_that_uses_the_most_gives_and_its_segment_being_written_counts(tmp_path):
    small = make_segments(tmp_path, [("2026-01-01T00-00-00.webm", 100), ("2026-01-01T00-01-00.webm", 100)],
                          "victim")
    large = make_segments(tmp_path, [("2026-01-01T00-05-00.webm", 100), ("2026-01-01T00-06-00.webm", 100),
                                     ("2026-01-01T00-07-00.webm", 100)], "mallory")
    writing = large[-1]
    # mallory uses 300 (its segment being written among them), victim 200: over 400, the
    # newer mallory gives its oldest, though victim's are older.
    assert Retention(max_bytes=400).sweep(tmp_path, current={writing}) == [large[0]]
    assert all(p.exists() for p in small)


def test_by_size_a_segment_being_written_is_never_taken_nor_anyone_elses_for_it(tmp_path):
    victim = make_segments(tmp_path, [("2026-01-01T00-00-00.webm", 100)], "victim")
    (writing,) = make_segments(tmp_path, [("2026-01-01T00-05-00.webm", 300)], "mallory")
    assert Retention(max_bytes=350).sweep(tmp_path, current={writing}) == []
    assert victim[0].exists() and writing.exists()


def test_a_segment_is_at_most_a_quarter_of_the_size_limit():
    assert Retention(max_bytes=20 << 20).max_segment_bytes == 5 << 20
    assert Retention(max_bytes=1 << 40).max_segment_bytes == 1 << 30
    assert Retention(max_age=60).max_segment_bytes == 1 << 30
