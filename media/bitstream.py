"""Facts read from encoded frames without decoding them."""

VP8 = "vp8"
H264 = "h264"
OPUS = "opus"


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether an encoded VP8 frame or H.264 access unit (Annex B) starts a picture
    that decodes on its own."""
    if codec == VP8:
        # RFC 6386 §9.1: bit 0 of the frame tag is 0 for a key frame.
        return len(data) >= 3 and data[0] & 0x01 == 0
    if codec == H264:
        return any(nal_type == 5 for nal_type in h264_nal_types(data))
    return True


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a VP8 keyframe, or None for a delta frame."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height


def h264_nal_types(data: bytes) -> list[int]:
    """NAL unit types of an Annex B access unit."""
    types: list[int] = []
    start = 0
    length = len(data)
    while True:
        index = data.find(b"\x00\x00\x01", start)
        if index < 0 or index + 3 >= length:
            return types
        types.append(data[index + 3] & 0x1F)
        start = index + 3
