// @ts-check
/**
 * The pre-class line check (server/linecheck.py says what each figure means):
 * round-trip time and loss over a WebRTC data channel that neither orders nor
 * retransmits, then a timed download and a timed upload over HTTP. The result
 * goes to the server, which keeps it and answers with the starting layer.
 */

const ECHOES = 100;
const ECHO_EVERY_MS = 20;
const ECHO_WAIT_MS = 1000;
const OPEN_TIMEOUT_MS = 6000;
const TARGET_SECONDS = 1.5;
const MIN_BYTES = 128 * 1024;
const MAX_DOWN = 8 * 1024 * 1024;
const MAX_UP = 4 * 1024 * 1024;

/**
 * @typedef {{down_bps: number, up_bps: number, rtt_ms: number | null, loss: number | null}} Figures
 * @typedef {{at: number, down_bps: number, up_bps: number, rtt_ms: number | null,
 *   loss: number | null, layer: string, verdict: string}} CheckResult
 */

/**
 * Measure the line to the server and store the result for this classroom.
 * @param {string} base  /api/room/{classroom}
 * @param {string} device  the classroom's device token
 * @param {(step: string) => void} progress  told "echo", "download", "upload"
 * @returns {Promise<CheckResult>}
 */
export async function checkLine(base, device, progress) {
  const auth = { Authorization: `Bearer ${device}` };
  progress("echo");
  const echo = await echoes(`${base}/check/echo`, auth).catch((error) => {
    console.warn("line check: no data channel", error);
    return { rtt_ms: null, loss: null };
  });
  progress("download");
  const down_bps = await timed((bytes) => download(`${base}/check/download?bytes=${bytes}`, auth), MAX_DOWN);
  progress("upload");
  const up_bps = await timed((bytes) => upload(`${base}/check/upload`, auth, bytes), MAX_UP);
  /** @type {Figures} */
  const figures = { down_bps, up_bps, ...echo };
  const response = await fetch(`${base}/check`, {
    method: "POST",
    headers: { ...auth, "Content-Type": "application/json" },
    body: JSON.stringify(figures),
  });
  if (!response.ok) {
    throw new Error(`the server refused the result: ${response.status}`);
  }
  return response.json();
}

/**
 * Bits per second: a small transfer, then one sized to take about TARGET_SECONDS.
 * @param {(bytes: number) => Promise<number>} transfer  resolves to the seconds taken
 * @param {number} most
 */
async function timed(transfer, most) {
  let seconds = await transfer(MIN_BYTES);
  let rate = (MIN_BYTES * 8) / Math.max(seconds, 0.001);
  const bytes = Math.round(Math.min(most, Math.max(MIN_BYTES, (rate / 8) * TARGET_SECONDS)));
  if (bytes > MIN_BYTES) {
    seconds = await transfer(bytes);
    rate = (bytes * 8) / Math.max(seconds, 0.001);
  }
  return Math.round(rate);
}

/**
 * @param {string} url
 * @param {Record<string, string>} headers
 */
async function download(url, headers) {
  const started = performance.now();
  const response = await fetch(url, { headers, cache: "no-store" });
  if (!response.ok) {
    throw new Error(`download refused: ${response.status}`);
  }
  await response.arrayBuffer();
  return (performance.now() - started) / 1000;
}

/**
 * @param {string} url
 * @param {Record<string, string>} headers
 * @param {number} bytes
 */
async function upload(url, headers, bytes) {
  const body = new Uint8Array(bytes);
  for (let offset = 0; offset < bytes; offset += 65536) {
    crypto.getRandomValues(body.subarray(offset, Math.min(bytes, offset + 65536)));
  }
  const started = performance.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/octet-stream" },
    body,
    cache: "no-store",
  });
  if (!response.ok) {
    throw new Error(`upload refused: ${response.status}`);
  }
  await response.json();
  return (performance.now() - started) / 1000;
}

/**
 * Round-trip time (median, ms) and loss (share of ECHOES not echoed back).
 * @param {string} url
 * @param {Record<string, string>} headers
 * @returns {Promise<{rtt_ms: number | null, loss: number | null}>}
 */
async function echoes(url, headers) {
  const pc = new RTCPeerConnection();
  try {
    const channel = pc.createDataChannel("linecheck", { ordered: false, maxRetransmits: 0 });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const response = await fetch(url, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription?.sdp }),
    });
    if (!response.ok) {
      throw new Error(`echo refused: ${response.status}`);
    }
    const answer = await response.json();
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await opened(channel);
    /** @type {number[]} */
    const rtts = [];
    const back = new Set();
    channel.onmessage = (event) => {
      try {
        const echo = JSON.parse(event.data);
        if (!back.has(echo.n)) {
          back.add(echo.n);
          rtts.push(performance.now() - echo.t);
        }
      } catch {
        // not ours
      }
    };
    for (let n = 0; n < ECHOES; n += 1) {
      if (channel.readyState !== "open") {
        break;
      }
      channel.send(JSON.stringify({ n, t: performance.now() }));
      await sleep(ECHO_EVERY_MS);
    }
    await sleep(ECHO_WAIT_MS);
    rtts.sort((a, b) => a - b);
    return {
      rtt_ms: rtts.length ? Math.round(rtts[Math.floor(rtts.length / 2)] * 10) / 10 : null,
      loss: Math.round((1 - back.size / ECHOES) * 1000) / 1000,
    };
  } finally {
    pc.close();
  }
}

/** @param {RTCPeerConnection} pc */
function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") {
      resolve(undefined);
      return;
    }
    const timer = setTimeout(resolve, 2000);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve(undefined);
      }
    });
  });
}

/** @param {RTCDataChannel} channel */
function opened(channel) {
  return new Promise((resolve, reject) => {
    if (channel.readyState === "open") {
      resolve(undefined);
      return;
    }
    const timer = setTimeout(() => reject(new Error("the data channel did not open")), OPEN_TIMEOUT_MS);
    channel.onopen = () => {
      clearTimeout(timer);
      resolve(undefined);
    };
  });
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
