// @ts-check
/**
 * The teacher page: camera preview, start/stop, screen sharing, and the classrooms
 * (their pictures, hands, microphones, the stage and the chat). The page joins the
 * lesson at once (to show the classrooms); it publishes only after "start", and
 * publishes again by itself after a reconnection. Sharing a screen, or stopping,
 * offers a new media connection with or without the courseware line; the old one
 * stays on screen until the new one carries pictures.
 */
import { ChatView } from "./chat.js";
import { openDevices, openScreen } from "./devices.js";
import { errorText, t } from "./i18n.js";
import {
  addLines,
  createPeerConnection,
  Negotiator,
  OFFER_ERRORS,
  showWhenFlowing,
  watchConnection,
} from "./media.js";
import { byId, pageConfig, StatusLine } from "./page.js";
import { Backoff, mayReconnect, RECONNECT_STEADY, Signalling, signallingUrl, STABLE_MS } from "./protocol.js";
import { Roster } from "./roster.js";

/** Grid tiles the teacher receives: enough for a lesson of one teacher and six
 * classrooms. The server fills them in the order the classrooms joined. */
export const GRID_TILES = 6;
/** How long a replaced connection may keep its last pictures on screen. */
const RETIRE_AFTER_MS = 8000;

const config = pageConfig();
const preview = /** @type {HTMLVideoElement} */ (byId("preview"));
const toggle = /** @type {HTMLButtonElement} */ (byId("toggle"));
const shareButton = /** @type {HTMLButtonElement} */ (byId("share"));
const coursewareFrame = byId("courseware-frame");
const coursewarePreview = /** @type {HTMLVideoElement} */ (byId("courseware-preview"));
const recordingBadge = byId("recording");
const mix = /** @type {HTMLAudioElement} */ (byId("mix"));
const status = new StatusLine(byId("status"), byId("status-text"), byId("status-detail"));

/** @type {MediaStream | null} */
let camera = null;
/** @type {string | null} a sentence saying why the camera cannot be used */
let cameraProblem = null;
/** @type {MediaStream | null} the shared screen or window */
let screen = null;
/** @type {string} why sharing did not work, for a while */
let shareProblem = "";
/** @type {Signalling | null} */
let signalling = null;
/** @type {Negotiator | null} */
let negotiator = null;
/** @type {RTCPeerConnection | null} */
let pc = null;
/** @type {RTCPeerConnection | null} the connection `pc` replaces, kept until it is up */
let retiring = null;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let retireTimer;
/** @type {{iceServers: RTCIceServer[], videoCodec: string} | null} */
let joined = null;
/** @type {any} the latest `state` */
let lesson = null;
/** @type {import("./protocol.js").ServerError | null} */
let fatal = null;
/** @type {string} a non-fatal complaint from the server about our last offer */
let complaint = "";
/** The teacher pressed start and has not pressed stop. */
let wantLive = false;
/** The lesson was live when this connection replaced the last one (sharing). */
let switching = false;
let reconnecting = false;
const backoff = new Backoff(1000, 15_000, RECONNECT_STEADY);
/** @type {ReturnType<typeof setTimeout> | undefined} the next socket attempt */
let socketTimer;
/** @type {ReturnType<typeof setTimeout> | undefined} the next offer on this socket */
let mediaTimer;
let cancelMix = () => {};

const roster = new Roster(
  {
    list: byId("classrooms"),
    count: byId("classroom-count"),
    hands: byId("hands"),
    handsNone: byId("hands-none"),
    handsCount: byId("hands-count"),
    stageFrame: byId("stage-frame"),
    stageVideo: /** @type {HTMLVideoElement} */ (byId("stage-video")),
    stageName: byId("stage-name"),
    stageEnd: /** @type {HTMLButtonElement} */ (byId("stage-end")),
    muteAll: /** @type {HTMLButtonElement} */ (byId("mute-all")),
  },
  {
    mute: (peer, on) => signalling?.send({ type: "mute", peer, on }),
    stage: (peer) => signalling?.send({ type: "stage", peer }),
    muteAll: (on) => signalling?.send({ type: "mute_all", on }),
  },
);

const chat = new ChatView(
  {
    list: byId("chat-messages"),
    form: /** @type {HTMLFormElement} */ (byId("chat-form")),
    input: /** @type {HTMLInputElement} */ (byId("chat-input")),
    notice: byId("chat-notice"),
  },
  {
    send: (text) => Boolean(signalling?.joined && signalling.send({ type: "chat", text })),
    mine: (message) => message.role === "teacher",
  },
);

// -- camera and screen ---------------------------------------------------------

async function openCamera() {
  const devices = await openDevices({
    width: { ideal: 1280 },
    height: { ideal: 720 },
    frameRate: { ideal: 25, max: 30 },
  });
  camera = devices.stream;
  cameraProblem = devices.problem;
  for (const track of camera?.getTracks() ?? []) {
    track.addEventListener("ended", () => {
      cameraProblem = t("camera.ended");
      render();
    });
  }
  if (camera) {
    preview.srcObject = camera;
    preview.play().catch(() => {}); // muted, so autoplay is allowed
  }
  render();
}

function releaseCamera() {
  for (const track of camera?.getTracks() ?? []) {
    track.stop();
  }
  preview.srcObject = null;
  stopSharing({ publish: false });
}

async function share() {
  shareProblem = "";
  shareButton.disabled = true;
  try {
    const stream = await openScreen();
    if (!stream) {
      return; // cancelled
    }
    stopSharing({ publish: false });
    screen = stream;
    for (const track of stream.getVideoTracks()) {
      // the browser's own "stop sharing" bar, or the window was closed
      track.addEventListener("ended", () => stopSharing({ publish: true }));
    }
    coursewarePreview.srcObject = stream;
    coursewarePreview.play().catch(() => {});
    if (wantLive) {
      publish();
    }
  } catch (error) {
    console.warn("cannot share the screen", error);
    shareProblem = t("share.failed", { detail: /** @type {Error} */ (error).message });
  } finally {
    render();
  }
}

/** @param {{publish: boolean}} options */
function stopSharing(options) {
  if (!screen) {
    return;
  }
  for (const track of screen.getTracks()) {
    track.stop();
  }
  screen = null;
  coursewarePreview.srcObject = null;
  if (options.publish && wantLive) {
    publish();
  }
  render();
}

// -- signalling ----------------------------------------------------------------

function connect() {
  const socket = new Signalling(
    { url: signallingUrl(location), token: config.token, lesson: config.lesson, role: config.role },
    {
      joined(message) {
        joined = { iceServers: message.iceServers ?? [], videoCodec: message.videoCodec ?? "VP8" };
        backoff.reset();
        if (wantLive) {
          publish();
        } else {
          reconnecting = false;
        }
        render();
      },
      state(message) {
        lesson = message;
        if (wantLive && pc && message.media === "failed" && !isFresh(pc)) {
          retryMedia(); // the server gave up on our connection
        }
        render();
      },
      stats(message) {
        roster.updateStats(/** @type {any} */ (message));
      },
      chat(message) {
        chat.add(/** @type {any} */ (message));
      },
      answer(message) {
        const connection = pc;
        negotiator?.answer(message.sdp).catch((error) => {
          console.error("cannot apply the answer", error);
          if (pc === connection) {
            retryMedia();
          }
        });
      },
      error(error) {
        if (error.fatal) {
          return; // reported on close
        }
        console.warn("server:", error.code, error.message);
        if (OFFER_ERRORS.has(error.code)) {
          negotiator?.refused();
          complaint = errorText(error.code);
          render();
        } else if (error.code === "rate_limited" || error.code === "bad_message") {
          chat.refused(error.code);
        }
        // not_found: the classroom left just as the teacher clicked; the next
        // state shows it gone.
      },
      close(info) {
        signalling = negotiator = null;
        joined = null;
        clearTimeout(mediaTimer); // the next join publishes anew
        closeMedia();
        if (!mayReconnect(info.fatal)) {
          fatal = info.fatal;
          releaseCamera(); // e.g. replaced: the other window may need this camera
        } else {
          reconnecting = true;
          if (info.joinedFor >= STABLE_MS) {
            backoff.reset();
          }
          clearTimeout(socketTimer);
          socketTimer = setTimeout(connect, backoff.next());
        }
        render();
      },
    },
  );
  signalling = socket;
  negotiator = new Negotiator(socket);
  socket.open();
}

// -- media ---------------------------------------------------------------------

/** The teacher's media layout: what it sends, then the classrooms' mix, the grid
 * tiles and the classroom on stage. */
function lines() {
  if (!camera) {
    return [];
  }
  /** @type {import("./media.js").Line[]} */
  const layout = [];
  for (const track of camera.getAudioTracks()) {
    layout.push({ entry: "send:microphone", track, stream: camera });
  }
  for (const track of camera.getVideoTracks()) {
    layout.push({ entry: "send:camera", track, stream: camera });
  }
  for (const track of screen?.getVideoTracks() ?? []) {
    layout.push({ entry: "send:courseware", track, stream: screen ?? undefined });
  }
  layout.push({ entry: "receive:classroom-mix" });
  for (let i = 0; i < GRID_TILES; i++) {
    layout.push({ entry: "receive:grid" });
  }
  layout.push({ entry: "receive:stage-camera" });
  return layout;
}

function publish() {
  if (!camera || !signalling || !negotiator || !joined) {
    return;
  }
  const wasLive = isLive();
  retire(pc);
  switching = wasLive;
  complaint = "";
  const connection = createPeerConnection(joined.iceServers);
  pc = connection;
  const layout = addLines(connection, lines(), joined.videoCodec);
  roster.setTracks(layout.received.get("grid") ?? [], layout.received.get("stage-camera")?.[0] ?? null);
  cancelMix();
  cancelMix = showWhenFlowing(mix, layout.received.get("classroom-mix") ?? [], () => {
    mix.play().catch(() => {});
  });
  watchConnection(connection, {
    connected() {
      if (pc === connection) {
        backoff.reset();
        reconnecting = false;
        switching = false;
        retire(null);
      }
    },
    lost() {
      if (pc === connection) {
        retryMedia();
      }
    },
    changed: render,
  });
  negotiator.offer(connection, layout.media).catch((error) => {
    console.error("cannot make an offer", error);
    if (pc === connection) {
      retryMedia();
    }
  });
  render();
}

/**
 * Keep `connection` (being replaced) until the new one is up, then close it; null
 * closes the one kept.
 * @param {RTCPeerConnection | null} connection
 */
function retire(connection) {
  clearTimeout(retireTimer);
  if (retiring && retiring !== connection) {
    retiring.close();
  }
  retiring = connection;
  if (connection) {
    retireTimer = setTimeout(() => retire(null), RETIRE_AFTER_MS);
  }
}

/** The media connection dropped while the lesson is on: offer again, later. (When
 * the socket is gone too, its reconnection publishes again.) */
function retryMedia() {
  closeMedia();
  if (!wantLive || !signalling?.joined) {
    render();
    return;
  }
  reconnecting = true;
  clearTimeout(mediaTimer);
  mediaTimer = setTimeout(() => {
    if (wantLive) {
      publish();
    }
  }, backoff.next());
  render();
}

/**
 * A connection still being set up: a "failed" from the server about our media
 * may have been sent before the server saw this connection's offer.
 * @param {RTCPeerConnection} connection
 */
function isFresh(connection) {
  return connection.connectionState === "new" || connection.connectionState === "connecting";
}

function closeMedia() {
  retire(null);
  switching = false;
  if (pc) {
    pc.close();
    pc = null;
  }
  roster.setTracks([], null);
  cancelMix();
  mix.srcObject = null;
}

function isLive() {
  return (
    lesson?.teacher?.live === true && (pc?.connectionState === "connected" || switching)
  );
}

function start() {
  wantLive = true;
  publish();
}

function stop() {
  wantLive = false;
  reconnecting = false;
  clearTimeout(mediaTimer);
  signalling?.stop();
  closeMedia();
  render();
}

// -- view ----------------------------------------------------------------------

function render() {
  // While a new connection replaces a live one, the lesson goes on for the page.
  const live = isLive() || (switching && wantLive);
  if (fatal) {
    status.show("error", errorText(fatal.code), fatal.message);
  } else if (cameraProblem) {
    status.show("error", cameraProblem);
  } else if (reconnecting && (!signalling?.joined || wantLive)) {
    status.show("reconnecting", t("teacher.status.reconnecting", { attempt: backoff.attempt }));
  } else if (!camera) {
    status.show("starting", t("teacher.status.camera"));
  } else if (!joined) {
    status.show("starting", t("teacher.status.connecting"));
  } else if (!wantLive) {
    status.show("ready", t("teacher.status.ready"), complaint || shareProblem);
  } else if (live) {
    const detail = screen ? t("teacher.status.sharing") : "";
    status.show("live", t("teacher.status.live"), shareProblem || detail);
  } else {
    status.show("starting", t("teacher.status.starting"), complaint);
  }

  toggle.disabled = Boolean(fatal || cameraProblem || !camera || (!joined && !wantLive));
  toggle.textContent = wantLive ? t("teacher.stop") : t("teacher.start");
  toggle.dataset.action = wantLive ? "stop" : "start";
  shareButton.disabled = Boolean(fatal || !camera);
  shareButton.dataset.action = screen ? "stop" : "start";
  shareButton.textContent = screen ? t("teacher.share.stop") : t("teacher.share");
  coursewareFrame.hidden = !screen;
  recordingBadge.hidden = !lesson?.recording;
  chat.enable(Boolean(signalling?.joined && !fatal));
  roster.update(fatal || !joined ? null : lesson, wantLive && pc !== null);
}

toggle.addEventListener("click", () => (wantLive ? stop() : start()));
shareButton.addEventListener("click", () => (screen ? stopSharing({ publish: true }) : share()));
window.addEventListener("pagehide", () => signalling?.leave());
window.addEventListener("pageshow", (event) => {
  if (event.persisted) {
    location.reload(); // back from the back/forward cache with a closed socket
  }
});

render();
connect();
openCamera();
