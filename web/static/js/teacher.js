// @ts-check
/**
 * The teacher page: camera preview, start/stop, and the classrooms that are in.
 * The page joins the lesson at once (to show the classrooms); it publishes only
 * after "start", and publishes again by itself after a reconnection.
 */
import { errorText, t } from "./i18n.js";
import {
  createPeerConnection,
  Negotiator,
  OFFER_ERRORS,
  preferCodec,
  watchConnection,
} from "./media.js";
import { Backoff, mayReconnect, Signalling, signallingUrl } from "./protocol.js";
import { byId, pageConfig, StatusLine } from "./page.js";

const config = pageConfig();
const preview = /** @type {HTMLVideoElement} */ (byId("preview"));
const toggle = /** @type {HTMLButtonElement} */ (byId("toggle"));
const roster = byId("classrooms");
const count = byId("classroom-count");
const status = new StatusLine(byId("status"), byId("status-text"), byId("status-detail"));

const MEDIA_STATES = new Set(["none", "connecting", "connected", "failed"]);

/** @type {MediaStream | null} */
let camera = null;
/** @type {string | null} a sentence saying why the camera cannot be used */
let cameraProblem = null;
/** @type {Signalling | null} */
let signalling = null;
/** @type {Negotiator | null} */
let negotiator = null;
/** @type {RTCPeerConnection | null} */
let pc = null;
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
let reconnecting = false;
const backoff = new Backoff();
/** @type {ReturnType<typeof setTimeout> | undefined} the next socket attempt */
let socketTimer;
/** @type {ReturnType<typeof setTimeout> | undefined} the next offer on this socket */
let mediaTimer;

// -- camera ------------------------------------------------------------------

async function openCamera() {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    cameraProblem = t("camera.insecure");
    render();
    return;
  }
  try {
    camera = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 25, max: 30 } },
    });
  } catch (error) {
    cameraProblem = cameraErrorText(/** @type {Error} */ (error));
    render();
    return;
  }
  for (const track of camera.getTracks()) {
    track.addEventListener("ended", () => {
      cameraProblem = t("camera.ended");
      render();
    });
  }
  preview.srcObject = camera;
  preview.play().catch(() => {}); // muted, so autoplay is allowed
  render();
}

function releaseCamera() {
  for (const track of camera?.getTracks() ?? []) {
    track.stop();
  }
  preview.srcObject = null;
}

/**
 * @param {Error} error  from getUserMedia
 * @returns {string}
 */
function cameraErrorText(error) {
  switch (error.name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
      return t("camera.denied");
    case "SecurityError":
      return window.isSecureContext ? t("camera.denied") : t("camera.insecure");
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return t("camera.not_found");
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return t("camera.busy");
    default:
      return t("camera.failed", { detail: `${error.name}: ${error.message}` });
  }
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
        }
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

function publish() {
  if (!camera || !signalling || !negotiator || !joined) {
    return;
  }
  closeMedia();
  complaint = "";
  const connection = createPeerConnection(joined.iceServers);
  pc = connection;
  for (const track of camera.getTracks()) {
    const transceiver = connection.addTransceiver(track, {
      direction: "sendonly",
      streams: [camera],
    });
    if (track.kind === "video") {
      preferCodec(transceiver, joined.videoCodec);
    }
  }
  watchConnection(connection, {
    connected() {
      if (pc === connection) {
        backoff.reset();
        reconnecting = false;
      }
    },
    lost() {
      if (pc === connection) {
        retryMedia();
      }
    },
    changed: render,
  });
  negotiator.offer(connection).catch((error) => {
    console.error("cannot make an offer", error);
    if (pc === connection) {
      retryMedia();
    }
  });
  render();
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
  if (pc) {
    pc.close();
    pc = null;
  }
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
  const live = lesson?.teacher?.live === true && pc?.connectionState === "connected";
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
    status.show("ready", t("teacher.status.ready"), complaint);
  } else if (live) {
    status.show("live", t("teacher.status.live"));
  } else {
    status.show("starting", t("teacher.status.starting"), complaint);
  }

  toggle.disabled = Boolean(fatal || cameraProblem || !camera || (!joined && !wantLive));
  toggle.textContent = wantLive ? t("teacher.stop") : t("teacher.start");
  toggle.dataset.action = wantLive ? "stop" : "start";
  renderClassrooms(fatal || !joined ? [] : (lesson?.classrooms ?? []));
}

/** @param {{peer: string, name: string, media: string}[]} classrooms */
function renderClassrooms(classrooms) {
  count.textContent =
    classrooms.length === 0
      ? t("teacher.classrooms.none")
      : t("teacher.classrooms.count", { count: classrooms.length });
  const items = classrooms.map((classroom) => {
    const media = MEDIA_STATES.has(classroom.media) ? classroom.media : "none";
    const item = document.createElement("li");
    item.className = "classroom";
    item.dataset.peer = classroom.peer;
    item.dataset.media = media;
    const name = document.createElement("span");
    name.className = "classroom-name";
    name.textContent = classroom.name;
    const state = document.createElement("span");
    state.className = "classroom-media";
    // "connected" only means the link is up; say "watching" once there is a lesson.
    const word = media === "connected" && lesson?.teacher?.live ? "watching" : media;
    state.textContent = t(`media.${word}`);
    item.append(name, state);
    return item;
  });
  roster.replaceChildren(...items);
}

toggle.addEventListener("click", () => (wantLive ? stop() : start()));
window.addEventListener("pagehide", () => signalling?.leave());
window.addEventListener("pageshow", (event) => {
  if (event.persisted) {
    location.reload(); // back from the back/forward cache with a closed socket
  }
});

render();
connect();
openCamera();
