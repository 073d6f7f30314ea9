// @ts-check
/**
 * The classroom page: opening the link is the only step. It joins, offers to
 * receive audio and video at once, and plays whatever the server forwards; the
 * teacher starting, stopping or restarting needs nothing from this page. A lost
 * socket or media connection is retried with backoff; a refused link is not.
 */
import { errorText, t } from "./i18n.js";
import { createPeerConnection, Negotiator, OFFER_ERRORS, watchConnection } from "./media.js";
import { Backoff, mayReconnect, Signalling, signallingUrl } from "./protocol.js";
import { byId, pageConfig, StatusLine } from "./page.js";

/** After this many failed attempts, suggest that a firewall may be in the way. */
const FIREWALL_HINT_AFTER = 3;

const config = pageConfig();
const video = /** @type {HTMLVideoElement} */ (byId("video"));
const soundButton = /** @type {HTMLButtonElement} */ (byId("sound"));
const fullscreenButton = /** @type {HTMLButtonElement} */ (byId("fullscreen"));
const status = new StatusLine(byId("status"), byId("status-text"), byId("status-detail"));

/** @type {Signalling | null} */
let signalling = null;
/** @type {Negotiator | null} */
let negotiator = null;
/** @type {RTCPeerConnection | null} */
let pc = null;
/** @type {RTCIceServer[]} */
let iceServers = [];
/** @type {{present: boolean, live: boolean, name: string | null} | null} */
let teacher = null;
/** @type {import("./protocol.js").ServerError | null} */
let fatal = null;
let reconnecting = false;
/** Sound was blocked by the autoplay policy and nobody has clicked yet. */
let soundBlocked = false;
const backoff = new Backoff();
/** @type {ReturnType<typeof setTimeout> | undefined} the next socket attempt */
let socketTimer;
/** @type {ReturnType<typeof setTimeout> | undefined} the next offer on this socket */
let mediaTimer;

// -- signalling ----------------------------------------------------------------

function connect() {
  const socket = new Signalling(
    { url: signallingUrl(location), token: config.token, lesson: config.lesson, role: config.role },
    {
      joined(message) {
        iceServers = message.iceServers ?? [];
        receive();
      },
      state(message) {
        teacher = message.teacher ?? null;
        if (pc && message.media === "failed" && !isFresh(pc)) {
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
          // Offering again cannot fix a refused offer; say why and stop here.
          negotiator?.refused();
          fatal = error;
          closeMedia();
          render();
        }
      },
      close(info) {
        signalling = negotiator = null;
        clearTimeout(mediaTimer); // the next join offers anew
        closeMedia();
        if (fatal) {
          // already stopped for a reason of our own
        } else if (!mayReconnect(info.fatal)) {
          fatal = info.fatal;
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

/** Offer to receive the teacher's audio and video on a fresh connection. */
function receive() {
  if (!signalling || !negotiator || fatal) {
    return;
  }
  closeMedia();
  const connection = createPeerConnection(iceServers);
  pc = connection;
  connection.addTransceiver("audio", { direction: "recvonly" });
  connection.addTransceiver("video", { direction: "recvonly" });
  const stream = new MediaStream();
  connection.addEventListener("track", (event) => {
    if (pc !== connection) {
      return;
    }
    stream.addTrack(event.track);
    video.srcObject = stream;
    play();
  });
  watchConnection(connection, {
    connected() {
      if (pc === connection) {
        reconnecting = false;
        backoff.reset();
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

/** The media connection dropped: offer again on the same socket, later. (When
 * the socket is gone too, its reconnection makes the new offer.) */
function retryMedia() {
  closeMedia();
  if (!signalling?.joined || fatal) {
    render();
    return;
  }
  reconnecting = true;
  clearTimeout(mediaTimer);
  mediaTimer = setTimeout(receive, backoff.next());
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

/** Play with sound if the browser allows it; otherwise muted, with one big button. */
function play() {
  video.muted = soundBlocked;
  video.play().catch((error) => {
    if (error.name !== "NotAllowedError" || video.muted) {
      return; // AbortError: a newer srcObject or play() took over
    }
    soundBlocked = true;
    video.muted = true;
    video.play().catch(() => {});
    render();
  });
}

function enableSound() {
  soundBlocked = false;
  video.muted = false;
  video.play().catch(() => {});
  render();
}

// -- view ----------------------------------------------------------------------

function render() {
  if (fatal) {
    status.show("error", errorText(fatal.code), fatal.message);
  } else if (reconnecting) {
    const hint =
      backoff.attempt >= FIREWALL_HINT_AFTER
        ? t("classroom.hint.firewall")
        : t("classroom.hint.reconnecting");
    status.show("reconnecting", t("classroom.status.reconnecting", { attempt: backoff.attempt }), hint);
  } else if (!signalling?.joined) {
    status.show("connecting", t("classroom.status.connecting"));
  } else if (!teacher?.live) {
    const text = teacher?.present && teacher.name
      ? t("classroom.status.waiting_present", { name: teacher.name })
      : t("classroom.status.waiting");
    status.show("waiting", text, t("classroom.hint.waiting"));
  } else if (pc?.connectionState === "connected") {
    status.show("live", t("classroom.status.live"));
  } else {
    status.show("connecting", t("classroom.status.connecting"));
  }
  soundButton.hidden = !soundBlocked || Boolean(fatal);
}

soundButton.addEventListener("click", enableSound);
fullscreenButton.addEventListener("click", () => {
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  } else {
    document.documentElement.requestFullscreen().catch(() => {});
  }
});
fullscreenButton.hidden = !document.fullscreenEnabled;
window.addEventListener("pagehide", () => signalling?.leave());
window.addEventListener("pageshow", (event) => {
  if (event.persisted) {
    location.reload(); // back from the back/forward cache with a closed socket
  }
});

render();
connect();
