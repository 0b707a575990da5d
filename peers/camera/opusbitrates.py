"""The Opus bitrates a camera's sound may take: the default, and libopus's bound a channel.
Apart from the audio pipeline (peers/camera/audiopipeline.py), so that the command line's
flags need no PyAV to describe them."""

__all__ = ["DEFAULT_AUDIO_BITRATE", "MAX_OPUS_KBPS_PER_CHANNEL"]

#: Opus bitrate (bits per second) unless ``--audio-bitrate`` says otherwise: clear speech
#: and room sound in mono; stereo gets half as much again.
DEFAULT_AUDIO_BITRATE = 48000
#: libopus refuses more than this a channel (it failed to open at 300 kbit/s mono).
MAX_OPUS_KBPS_PER_CHANNEL = 256
