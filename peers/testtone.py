"""The built-in test tone: sound that carries its own capture time, like the test pattern.

Every half second of Unix time (``PERIOD``), the tone beeps: ``BEEP_HZ`` for ``BEEP_SECONDS``,
starting on the exact sample of that instant. The test pattern lights its beep mark on the
frames captured during the beep (``beeping``), so eye and ear can judge sync, and a reader
of both measures it. After each beep comes a time code: the beep's number (Unix time in
half seconds, modulo 2**32) as 32 bits and an 8-bit check (the XOR of its four bytes), most
significant bit first, one bit every ``BIT_SECONDS``, in frequency-shift keying (``ZERO_HZ``
for 0, ``ONE_HZ`` for 1), from ``CODE_START`` after the beep. Both survive Opus at any
bitrate peercam uses, so any viewer (Python here, web/js/testtone.js in the page) can tell,
from the sound alone, when the beep it hears was captured: mouth-to-ear latency and the
A/V offset are measured exactly on one machine's clock. tests/testtone_cases.json runs
against both readers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BEEP_HZ", "BEEP_SECONDS", "BIT_SECONDS", "CODE_BITS", "CODE_START", "ONE_HZ", "PERIOD", "SAMPLE_RATE",
    "ZERO_HZ", "Beep", "ToneReader", "beeping", "code_bits", "tone",
]

SAMPLE_RATE = 48000
PERIOD = 0.5
BEEP_HZ = 1000.0
BEEP_SECONDS = 0.04
CODE_START = 0.06
BIT_SECONDS = 0.008
ZERO_HZ, ONE_HZ = 2000.0, 3000.0
CODE_BITS = 40
#: Peak amplitudes (of int16 full scale): the beep is the loud part, the code quieter.
BEEP_LEVEL, CODE_LEVEL = 0.5, 0.25
#: A code bit heard quieter than this (int16 amplitude) is no bit.
MIN_CODE_AMPLITUDE = 0.1 * CODE_LEVEL * 32767


def code_bits(number: int) -> list[int]:
    """The 40 bits sent after beep ``number``: the number (32 bits) and the XOR of its bytes."""
    number &= 0xFFFFFFFF
    check = (number >> 24) ^ (number >> 16) ^ (number >> 8) ^ number
    value = (number << 8) | (check & 0xFF)
    return [(value >> (CODE_BITS - 1 - i)) & 1 for i in range(CODE_BITS)]


def beeping(capture_time: float) -> bool:
    """Whether the tone beeps at ``capture_time`` (Unix seconds): the pattern's beep mark."""
    return (capture_time % PERIOD) < BEEP_SECONDS


def tone(first_sample: int, count: int) -> np.ndarray:
    """``count`` samples of the tone (int16, mono) from sample number ``first_sample``
    (samples since the Unix epoch at ``SAMPLE_RATE``)."""
    n = np.arange(first_sample, first_sample + count, dtype=np.int64)
    period = int(PERIOD * SAMPLE_RATE)
    beep_number = n // period
    at = (n % period).astype(np.float64) / SAMPLE_RATE  # seconds since this period's beep
    out = np.zeros(count, np.float64)
    # Phases from the sample number itself: a chunk boundary never clicks.
    seconds = (n % SAMPLE_RATE).astype(np.float64) / SAMPLE_RATE
    beep = at < BEEP_SECONDS
    out[beep] = BEEP_LEVEL * np.sin(2 * math.pi * BEEP_HZ * seconds[beep])
    bit_index = np.floor((at - CODE_START) / BIT_SECONDS).astype(np.int64)
    coded = (bit_index >= 0) & (bit_index < CODE_BITS)
    if coded.any():
        ones = np.zeros(count, bool)
        for number in np.unique(beep_number[coded]):
            bits = np.array(code_bits(int(number)), bool)
            rows = coded & (beep_number == number)
            ones[rows] = bits[bit_index[rows]]
        frequency = np.where(ones, ONE_HZ, ZERO_HZ)
        out[coded] = CODE_LEVEL * np.sin(2 * math.pi * frequency[coded] * seconds[coded])
    return np.round(out * 32767).astype(np.int16)


@dataclass(frozen=True)
class Beep:
    """A beep the reader heard: when it was captured, and when its first sample was there."""

    capture_time: float  # Unix seconds, the camera's clock
    heard_time: float  # Unix seconds, this machine's clock

    @property
    def latency(self) -> float:
        return self.heard_time - self.capture_time


def _tone_power(samples: np.ndarray, frequency: float) -> float:
    """The power of ``frequency`` in ``samples`` (a 1-D array, or each row of a 2-D one), normalised
    by their length: the magnitude Goertzel's algorithm gives (web/js/testtone.js), as a projection."""
    n = samples.shape[-1]
    t = np.arange(n) / SAMPLE_RATE
    c = samples @ np.cos(2 * math.pi * frequency * t)
    s = samples @ np.sin(2 * math.pi * frequency * t)
    return (c * c + s * s) / (n * n)


class ToneReader:
    """Hears the test tone in decoded sound: each beep, its capture time and when it came.

    Feed it the samples as they are decoded (``feed``: int16 or float, mono or
    ``(n, channels)``, with the time the chunk's first sample was there on this machine);
    it yields a Beep for each beep whose time code it could read. A beep whose code does
    not check out (lost or concealed sound) is skipped, never guessed.
    """

    #: Onsets are looked for in steps of this many samples (1 ms), over windows twice as long.
    HOP = 48

    def __init__(self) -> None:
        self._buffer = np.zeros(0, np.float64)
        #: (index of a chunk's first sample in the buffer, when the chunk was there)
        self._arrivals: list[tuple[int, float]] = []
        self._quiet = False  # the beep tone was absent just before: an onset may follow
        self.beeps_unread = 0  # onsets whose code did not check out

    def feed(self, samples: np.ndarray, arrived: float) -> Iterator[Beep]:
        mono = np.asarray(samples, np.float64)
        if mono.ndim == 2:
            mono = mono.mean(axis=1)
        if np.issubdtype(np.asarray(samples).dtype, np.floating):
            mono = mono * 32767
        # A chunk's samples are all there when it arrives: each sample has its chunk's time.
        self._arrivals.append((len(self._buffer), arrived))
        self._buffer = np.concatenate([self._buffer, mono])
        yield from self._scan()

    def _arrival(self, index: int) -> float:
        """When sample ``index`` of the buffer was there: its chunk's arrival time."""
        when = self._arrivals[0][1]
        for start, arrived in self._arrivals:
            if start > index:
                break
            when = arrived
        return when

    def _scan(self) -> Iterator[Beep]:
        need = int((CODE_START + CODE_BITS * BIT_SECONDS) * SAMPLE_RATE) + 2 * self.HOP
        position = 0
        window = 2 * self.HOP
        while position + need <= len(self._buffer):
            frames = np.lib.stride_tricks.sliding_window_view(
                self._buffer[position:position + need], window)[::self.HOP]
            levels = np.sqrt(_tone_power(frames, BEEP_HZ)) * 2  # amplitude of the beep tone
            threshold = BEEP_LEVEL * 32767 * 0.3
            loud = levels > threshold
            onset = None
            for i, is_loud in enumerate(loud):
                if not is_loud:
                    self._quiet = True
                elif self._quiet:
                    onset = i
                    break
            if onset is None:
                position += len(loud) * self.HOP
                continue
            # The window that first crossed the threshold holds the onset: place it within the
            # window by the share of the window's energy that is beep.
            start = position + onset * self.HOP
            share = min(1.0, levels[onset] / (BEEP_LEVEL * 32767))
            onset_sample = start + int(round(window * (1 - share)))
            if onset_sample + need > len(self._buffer):
                position = start  # its code is not all here yet
                break
            self._quiet = False
            number = self._read_code(onset_sample)
            if number is None:
                self.beeps_unread += 1
            else:
                yield Beep(self._capture_time(number), self._arrival(onset_sample))
            position = onset_sample + int(BEEP_SECONDS * SAMPLE_RATE)
        self._drop(position)

    def _read_code(self, onset: int) -> int | None:
        bit_length = int(BIT_SECONDS * SAMPLE_RATE)
        first = onset + int(CODE_START * SAMPLE_RATE)
        # The middle half of each bit: its edges blur in the codec.
        margin = bit_length // 4
        bits = []
        for i in range(CODE_BITS):
            chunk = self._buffer[first + i * bit_length + margin:first + (i + 1) * bit_length - margin]
            one, zero = _tone_power(chunk, ONE_HZ), _tone_power(chunk, ZERO_HZ)
            if 2 * math.sqrt(max(one, zero)) < MIN_CODE_AMPLITUDE:
                return None  # no tone at all (sound lost): silence would read as number 0
            bits.append(1 if one > zero else 0)
        value = int("".join(map(str, bits)), 2)
        number, check = value >> 8, value & 0xFF
        if check != ((number >> 24) ^ (number >> 16) ^ (number >> 8) ^ number) & 0xFF:
            return None
        return number

    @staticmethod
    def _capture_time(number: int) -> float:
        """The beep's capture time: ``number`` half seconds, the wrap of 2**32 resolved by the
        clock (the one within 2**31 half seconds of now)."""
        now = int(time.time() / PERIOD)
        wraps = round((now - number) / 2**32)
        return (number + wraps * 2**32) * PERIOD

    def _drop(self, count: int) -> None:
        count = max(0, min(count, len(self._buffer)))
        if not count:
            return
        self._buffer = self._buffer[count:]
        kept = [(start - count, arrived) for start, arrived in self._arrivals if start - count > 0]
        before = [arrived for start, arrived in self._arrivals if start - count <= 0]
        self._arrivals = ([(0, before[-1])] if before else []) + kept
