"""RTCPeerConnections configured the way the SFU needs them."""

from collections.abc import Sequence

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
)
from aiortc.rtcconfiguration import RTCBundlePolicy


def create_peer_connection(ice_servers: Sequence[RTCIceServer] = ()) -> RTCPeerConnection:
    """MAX_BUNDLE, because a second video m-line is mis-routed under aiortc's default
    BALANCED policy; and no default STUN server, which would need the Internet."""
    return RTCPeerConnection(
        RTCConfiguration(iceServers=list(ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


def prefer_codec(transceiver: RTCRtpTransceiver, codec_name: str) -> None:
    """Negotiate only `codec_name` (plus its RTX) on this transceiver.

    Must be called before setRemoteDescription: aiortc fixes a transceiver's codecs
    there. A forwarded stream can only be packetized as the codec it was encoded in.
    """
    capabilities = RTCRtpReceiver.getCapabilities(transceiver.kind)
    assert capabilities is not None
    wanted = f"{transceiver.kind}/{codec_name}".lower()
    codecs = [
        c
        for c in capabilities.codecs
        if c.mimeType.lower() == wanted or c.mimeType.lower().endswith("/rtx")
    ]
    transceiver.setCodecPreferences(codecs)
