"""The Opus identification header that Matroska, WebM and MP4 need as codec private
data (RFC 7845 §5.1). WebRTC sends no such header: Opus over RTP is always 48 kHz,
and stereo-capable ("opus/48000/2"), with no pre-skip.
"""

import struct

OPUS_RATE = 48000


def opus_head(channels: int = 2, input_rate: int = OPUS_RATE, pre_skip: int = 0) -> bytes:
    """An `OpusHead` for channel mapping family 0 (mono or stereo)."""
    if channels not in (1, 2):
        raise ValueError("channel mapping family 0 carries one or two channels")
    # version 1, channels, pre-skip, input sample rate, output gain 0, mapping family 0
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, input_rate, 0, 0)
