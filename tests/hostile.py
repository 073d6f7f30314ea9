"""Hypothesis strategies for hostile signalling: malformed, near-valid and absurd
messages (tests/test_fuzz_functional.py). Every address they hold is a loopback one,
and no host name is generated where one could be resolved."""

import json
from typing import Any

from hypothesis import strategies as st

ODD = [
    "العربية",
    "ཀྲུང་",
    "𓀀𓂀",
    "\u202etxt.exe",
    "\u0000\u0001\u001f",
    "Z\u0351\u0352\u0353a\u0354l\u0355g\u0356o",
    "👩‍👩‍👧‍👦",
    "\ufeff",
    "\ud800",
    "\udfff\ud800",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "'; DROP TABLE lessons; --",
    "../../../../etc/passwd",
    "%s%n%x",
]
ANY_CHARACTER = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
odd_text = st.one_of(
    st.sampled_from(ODD),
    st.text(ANY_CHARACTER, max_size=40),
    # lone surrogates: JSON can carry them (as escapes), UTF-8 cannot
    st.builds(
        lambda a, surrogate, b: a + surrogate + b,
        st.text(max_size=8),
        st.sampled_from(["\ud800", "\udfff", "\udbff\udbff", "\udc80"]),
        st.text(max_size=8),
    ),
    st.integers(1000, 60_000).map(lambda n: "汉" * (n // 3)),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
LOOPBACK = ["127.0.0.1", "127.0.0.2", "::1", "0.0.0.0", "127.255.255.254"]
candidate_text = st.one_of(
    st.builds(
        lambda f, c, t, p, a, port, kind, extra: (
            f"candidate:{f} {c} {t} {p} {a} {port} typ {kind}{extra}"
        ),
        st.text("abcdef0123456789", min_size=1, max_size=10),
        st.sampled_from(["1", "2", "0", "99", "-1", "x"]),
        st.sampled_from(["udp", "tcp", "UDP", "sctp", ""]),
        st.integers(-1, 2**32),
        st.sampled_from([*LOOPBACK, "", "::::", "127.0.0.1.1"]),
        st.integers(-5, 70000),
        st.sampled_from(["host", "srflx", "prflx", "relay", "bogus"]),
        st.sampled_from(["", " generation 0", " raddr 127.0.0.1 rport 9", " tcptype passive"]),
    ),
    st.text(st.characters(codec="ascii", exclude_characters="."), max_size=60),
    st.just(""),
    st.just("candidate:"),
)
candidates = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "candidate": candidate_text | json_values,
            "sdpMid": st.sampled_from(["0", "1", "", "x" * 40]) | json_values,
            "sdpMLineIndex": st.integers(-3, 70) | json_values,
        },
    ),
    json_values,
)
SDP_LINES = [
    "v=0",
    "o=- 1 1 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "c=IN IP4 127.0.0.1",
    "a=group:BUNDLE 0 1 2",
    "a=msid-semantic: WMS",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "m=video 0 RTP/AVP 0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=rtpmap:111 opus/48000/2",
    "a=rtpmap:96 VP8/90000",
    "a=rtpmap:97 H264/90000",
    "a=fmtp:97 packetization-mode=1;profile-level-id=42e01f",
    "a=rtcp-fb:96 nack pli",
    "a=mid:0",
    "a=mid:1",
    "a=mid:",
    "a=sendonly",
    "a=recvonly",
    "a=sendrecv",
    "a=inactive",
    "a=rtcp-mux",
    "a=setup:actpass",
    "a=setup:active",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
    "a=fingerprint:sha-1 00",
    "a=ice-ufrag:abcd",
    "a=ice-pwd:" + "p" * 24,
    "a=ssrc:1 cname:x",
    "a=ssrc-group:FID 1 2",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host",
    "a=end-of-candidates",
]
sdp_junk = st.lists(
    st.sampled_from(SDP_LINES)
    | st.text(st.characters(codec="ascii", exclude_characters="."), max_size=40).filter(
        lambda line: "candidate" not in line
    ),
    max_size=40,
).map(lambda lines: "\r\n".join(lines) + "\r\n")
LAYOUT = [
    "send:microphone",
    "send:camera",
    "send:courseware",
    "receive:teacher-audio",
    "receive:teacher-camera",
    "receive:courseware",
    "receive:stage-audio",
    "receive:stage-camera",
    "receive:classroom-mix",
    "receive:grid",
]
FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "join": {"token": odd_text, "lesson": odd_text, "role": odd_text},
    "offer": {
        "sdp": sdp_junk,
        "media": st.lists(st.sampled_from(LAYOUT) | odd_text, max_size=20),
    },
    "candidate": {"candidate": candidates},
    "stop": {},
    "quality": {"cap": st.sampled_from(["auto", "high", "low", "audio", "AUTO", ""])},
    "record": {"on": st.booleans()},
    "hand": {"up": st.booleans()},
    "stage": {"peer": st.none() | st.sampled_from(["teacher", "c-x", ""]) | odd_text},
    "mute": {"peer": st.sampled_from(["teacher", "c-x", ""]) | odd_text, "on": st.booleans()},
    "mute_all": {"on": st.booleans()},
    "chat": {"text": odd_text},
    "ping": {},
}


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A message of a real type whose fields are right, wrong, missing or extra."""
    kind = draw(st.sampled_from(sorted(FIELDS)))
    message: dict[str, Any] = {"type": kind}
    for name, right in FIELDS[kind].items():
        choice = draw(st.integers(0, 3))
        if choice == 0:
            message[name] = draw(right)
        elif choice == 1:
            message[name] = draw(json_values)
        elif choice == 2:
            message[name] = draw(right | json_values)
    message.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    message["type"] = kind if draw(st.integers(0, 9)) else draw(json_values)
    return message


def encode(value: Any) -> str:
    return json.dumps(value)  # NaN and Infinity as Python writes them, which it also reads


raw_text = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["{", "}", "[]", "null", '{"type":', '{"type": "ping"', "\u0000", "{}" * 9]),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 3000).map(lambda depth: '{"type": ' * depth + "1" + "}" * depth),
    st.binary(max_size=100).map(lambda data: data.decode("latin-1")),
)
messages = st.one_of(
    near_valid(),  # more often than the rest: the messages that get furthest in
    near_valid(),
    near_valid(),
    json_values.map(encode),
    st.dictionaries(st.sampled_from(["type", "sdp", "on", "peer"]), json_values).map(encode),
    raw_text,
)


def frame_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def as_text(message: Any) -> str:
    return message if isinstance(message, str) else encode(message)
