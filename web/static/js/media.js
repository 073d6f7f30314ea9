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
  return codecs
    .map((codec, index) => ({ codec, index, rank: rankCodec(codec, name) }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .map((entry) => entry.codec);
}

/** Codecs that are not `name` rank this far down. */
const OTHER_CODEC = 10;

/**
 * How well `codec` fits the lesson codec `name`: 0 is best, OTHER_CODEC is another codec.
 * @param {RTCRtpCodec} codec
 * @param {string} name
 * @returns {number}
 */
function rankCodec(codec, name) {
  const wanted = name.toLowerCase();
  const mime = codec.mimeType.toLowerCase();
  if (!mime.endsWith(`/${wanted}`)) {
    return OTHER_CODEC;
  }
  const fmtp = codec.sdpFmtpLine ?? "";
  let score = 0;
  if (fmtp.includes("packetization-mode=0")) score += 2;
  if (wanted === "h264" && !fmtp.includes("profile-level-id=42")) score += 1;
  return score;
}

/**
 * Only the best variants of `name`, and RTX to repair them. The server forwards
 * video as it was encoded, so other codecs are of no use, and each would add to
 * every video line of an offer that has many (the teacher's grid): Chrome's full
 * list makes such an offer larger than the server accepts.
 * @param {RTCRtpCodec[]} codecs
 * @param {string} name
 * @returns {RTCRtpCodec[]}  empty when the browser lacks the codec
 */
export function onlyCodec(codecs, name) {
  const best = Math.min(...codecs.map((codec) => rankCodec(codec, name)));
  if (best >= OTHER_CODEC) {
    return [];
  }
  return codecs.filter(
    (codec) => rankCodec(codec, name) === best || codec.mimeType.toLowerCase() === "video/rtx",
  );
}

/**
 * Put the lesson's video codec first on a transceiver (with `only`, keep nothing
 * else but RTX). The server forwards video as it was encoded, so a teacher
 * sending another codec would reach no one.
 * @param {RTCRtpTransceiver} transceiver
 * @param {string} name
 * @param {{only?: boolean}} [options]
 */
export function preferCodec(transceiver, name, options = {}) {
  if (typeof transceiver.setCodecPreferences !== "function") {
    return; // old browsers: the server answers codec_unsupported if it must
  }
  const kind = transceiver.receiver.track.kind;
  for (const source of [RTCRtpReceiver, RTCRtpSender]) {
    const capabilities = source.getCapabilities(kind);
    if (!capabilities) {
      continue;
    }
    const only = options.only ? onlyCodec(capabilities.codecs, name) : [];
    try {
      transceiver.setCodecPreferences(
        only.length > 0 ? only : orderCodecs(capabilities.codecs, name),
      );
      return;
    } catch (error) {
      // Browsers disagree on whether send or receive capabilities are accepted.
      console.warn("setCodecPreferences refused", source.name, error);
    }
  }
}

/** The kind of each named m-line (docs/protocol.md, "Media layout"). */
const LINE_KINDS = new Map([
  ["microphone", "audio"],
  ["camera", "video"],
  ["courseware", "video"],
  ["teacher-audio", "audio"],
  ["teacher-camera", "video"],
  ["stage-audio", "audio"],
  ["stage-camera", "video"],
  ["classroom-mix", "audio"],
  ["grid", "video"],
]);

/**
 * @typedef {{entry: string, track?: MediaStreamTrack, stream?: MediaStream}} Line
 *   `entry` is "send:NAME" (with the `track` to send) or "receive:NAME"
 * @typedef {{media: string[], received: Map<string, MediaStreamTrack[]>}} Layout
 *   `media` goes with the offer; `received` holds each receive line's track, by
 *   name, in order (a remote track is muted until its first packet arrives)
 */

/**
 * Add one transceiver per line, in order, with the lesson's codec first on video.
 * Several video lines share one transport: `createPeerConnection` bundles them.
 * @param {RTCPeerConnection} pc
 * @param {Line[]} lines
 * @param {string} codec
 * @returns {Layout}
 */
export function addLines(pc, lines, codec) {
  /** @type {string[]} */
  const media = [];
  /** @type {Map<string, MediaStreamTrack[]>} */
  const received = new Map();
  for (const line of lines) {
    const [direction, name] = line.entry.split(":");
    /** @type {RTCRtpTransceiver} */
    let transceiver;
    if (direction === "send") {
      if (!line.track) {
        throw new Error(`${line.entry} needs a track`);
      }
      transceiver = pc.addTransceiver(line.track, {
        direction: "sendonly",
        streams: line.stream ? [line.stream] : [],
      });
    } else {
      const kind = LINE_KINDS.get(name);
      if (!kind) {
        throw new Error(`unknown media line ${line.entry}`);
      }
      transceiver = pc.addTransceiver(kind, { direction: "recvonly" });
      received.set(name, [...(received.get(name) ?? []), transceiver.receiver.track]);
    }
    if (transceiver.receiver.track.kind === "video") {
      preferCodec(transceiver, codec, { only: true });
    }
    media.push(line.entry);
  }
  return { media, received };
}

/**
 * Show `track` on `element` once it carries media, so that a connection being
 * replaced keeps its last picture on screen instead of going black. Returns a
 * function that cancels the wait.
 * @param {HTMLMediaElement} element
 * @param {MediaStreamTrack[]} tracks
 * @param {() => void} [shown]  called when the element got the new tracks
 * @returns {() => void}
 */
export function showWhenFlowing(element, tracks, shown) {
  const current = element.srcObject instanceof MediaStream ? element.srcObject.getTracks() : [];
  if (tracks.length === current.length && tracks.every((track) => current.includes(track))) {
    return () => {};
  }
  const swap = () => {
    element.srcObject = tracks.length ? new MediaStream(tracks) : null;
    shown?.();
  };
  const live = current.some((track) => track.readyState === "live");
  const waiting = tracks.filter((track) => track.muted);
  if (!live || waiting.length === 0) {
    swap();
    return () => {};
  }
  const onUnmute = () => cancel() && swap();
  let pending = true;
  const cancel = () => {
    const was = pending;
    pending = false;
    for (const track of waiting) {
      track.removeEventListener("unmute", onUnmute);
    }
    return was;
  };
  for (const track of waiting) {
    track.addEventListener("unmute", onUnmute);
  }
  return cancel;
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
   * @param {string[]} [media]  what each m-line carries (see `addLines`)
   */
  async offer(pc, media) {
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
    this.signalling.offer(pc.localDescription.sdp, media);
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
