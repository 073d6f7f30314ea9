// @ts-check
/**
 * The browser's side of a media connection to the SFU: how it is configured, which
 * codec goes first, and the offer/answer exchange over the signalling socket.
 */

/**
 * @typedef {import("./protocol.js").Signalling} Signalling
 */

/**
 * MAX_BUNDLE like the server, so that audio and video share one transport.
 * @param {RTCIceServer[]} iceServers  from the server's `joined`
 * @returns {RTCPeerConnection}
 */
export function createPeerConnection(iceServers) {
  return new RTCPeerConnection({ iceServers: iceServers ?? [], bundlePolicy: "max-bundle" });
}

/** A connection "disconnected" this long is given up and offered again. ICE often
 * recovers from a moment's loss by itself; Chrome reports "failed" only after 30 s. */
export const DISCONNECTED_GRACE_MS = 5000;

/**
 * Follow a connection's state: `connected` when it is up, `lost` when it failed
 * or stayed disconnected past the grace period, `changed` after every change.
 * @param {RTCPeerConnection} pc
 * @param {{connected: () => void, lost: () => void, changed: () => void}} on
 */
export function watchConnection(pc, on) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let grace;
  pc.addEventListener("connectionstatechange", () => {
    clearTimeout(grace);
    const state = pc.connectionState;
    if (state === "connected") {
      on.connected();
    } else if (state === "failed") {
      on.lost();
    } else if (state === "disconnected") {
      grace = setTimeout(() => {
        if (pc.connectionState === "disconnected") {
          on.lost();
        }
      }, DISCONNECTED_GRACE_MS);
    }
    on.changed();
  });
}

/**
 * The codecs reordered so that `name` (e.g. "VP8") comes first, with packetization
 * mode 1 and the constrained-baseline profile first among H.264's variants. RTX and
 * the other codecs stay, after them, in the browser's order.
 * @param {RTCRtpCodec[]} codecs
 * @param {string} name
 * @returns {RTCRtpCodec[]}
 */
export function orderCodecs(codecs, name) {
  const wanted = name.toLowerCase();
  /** @param {RTCRtpCodec} codec */
  const rank = (codec) => {
    const mime = codec.mimeType.toLowerCase();
    if (!mime.endsWith(`/${wanted}`)) {
      return 10;
    }
    const fmtp = codec.sdpFmtpLine ?? "";
    let score = 0;
    if (fmtp.includes("packetization-mode=0")) score += 2;
    if (wanted === "h264" && !fmtp.includes("profile-level-id=42")) score += 1;
    return score;
  };
  return codecs
    .map((codec, index) => ({ codec, index, rank: rank(codec) }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .map((entry) => entry.codec);
}

/**
 * Put the lesson's video codec first on a transceiver. The server forwards video
 * as it was encoded, so a teacher sending another codec would reach no one.
 * @param {RTCRtpTransceiver} transceiver
 * @param {string} name
 */
export function preferCodec(transceiver, name) {
  if (typeof transceiver.setCodecPreferences !== "function") {
    return; // old browsers: the server answers codec_unsupported if it must
  }
  const kind = transceiver.receiver.track.kind;
  for (const source of [RTCRtpReceiver, RTCRtpSender]) {
    const capabilities = source.getCapabilities(kind);
    if (!capabilities) {
      continue;
    }
    try {
      transceiver.setCodecPreferences(orderCodecs(capabilities.codecs, name));
      return;
    } catch (error) {
      // Browsers disagree on whether send or receive capabilities are accepted.
      console.warn("setCodecPreferences refused", source.name, error);
    }
  }
}

/**
 * Offers from this page and the server's answers, which come back in order. Each
 * answer belongs to the oldest offer not yet answered; a connection replaced in
 * the meantime simply drops its answer.
 */
export class Negotiator {
  /** @param {Signalling} signalling */
  constructor(signalling) {
    this.signalling = signalling;
    /** @type {RTCPeerConnection[]} */
    this.waiting = [];
  }

  /**
   * Create and send an offer for `pc`, then trickle its ICE candidates; the
   * candidates found before the offer left are held back until it has.
   * @param {RTCPeerConnection} pc
   */
  async offer(pc) {
    /** @type {({candidate: string, sdpMid: string | null, sdpMLineIndex: number | null} | null)[]} */
    const held = [];
    let sent = false;
    pc.addEventListener("icecandidate", (event) => {
      if (pc.signalingState === "closed") {
        return;
      }
      const found = event.candidate;
      const candidate = found
        ? { candidate: found.candidate, sdpMid: found.sdpMid, sdpMLineIndex: found.sdpMLineIndex }
        : null;
      if (sent) {
        this.signalling.candidate(candidate);
      } else {
        held.push(candidate);
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.signalingState === "closed" || !pc.localDescription) {
      return;
    }
    this.waiting.push(pc);
    this.signalling.offer(pc.localDescription.sdp);
    sent = true;
    for (const candidate of held) {
      this.signalling.candidate(candidate);
    }
  }

  /** @param {string} sdp */
  async answer(sdp) {
    const pc = this.waiting.shift();
    if (!pc || pc.signalingState !== "have-local-offer") {
      return;
    }
    await pc.setRemoteDescription({ type: "answer", sdp });
  }

  /** The server refused the oldest offer (bad_sdp, codec_unsupported, internal). */
  refused() {
    this.waiting.shift();
  }
}

/** Server error codes that answer an offer instead of an `answer`. */
export const OFFER_ERRORS = new Set(["bad_sdp", "codec_unsupported", "internal"]);
