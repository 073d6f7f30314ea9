// @ts-check
/**
 * The classroom page (and the observer's, which only watches): opening the link is
 * the only step. It opens the room's camera and microphone (a classroom without
 * them still watches), joins, and offers at once to send them and to receive the
 * teacher, the courseware and the classroom on stage; the teacher starting,
 * stopping, sharing or restarting needs nothing from this page. The class can
 * raise its hand, chat, swap the courseware and the camera, and choose a lower
 * quality on a slow line. A lost socket or media connection is retried with
 * backoff; a refused link is not.
 */
import { ChatView } from "./chat.js";
import { ChatDock } from "./chatdock.js";
import { openDevices } from "./devices.js";
import { errorText, t } from "./i18n.js";
import { addLines, createPeerConnection, Negotiator, OFFER_ERRORS, watchConnection } from "./media.js";
import { byId, pageConfig, StatusLine } from "./page.js";
import { Backoff, mayReconnect, RECONNECT_STEADY, Signalling, signallingUrl, STABLE_MS } from "./protocol.js";
import { LessonScreen } from "./screen.js";

/** After this many failed attempts, suggest that a firewall may be in the way. */
const FIREWALL_HINT_AFTER = 3;
/** The lesson counts as still on this long after the teacher's media stopped: the
 * teacher's page offers a new connection when it starts or stops sharing. */
const LIVE_GRACE_MS = 3000;
/** How long the page waits for the room's camera before it watches without: a
 * permission prompt that nobody answers must not keep the class from the lesson.
 * When the camera comes later, the page offers again with it. */
const DEVICES_WAIT_MS = 3000;
const CAPS = new Set(["auto", "high", "low", "audio"]);
const CAP_KEY = "zhuandi.cap";

const config = pageConfig();
const observer = config.role === "observer";
const video = /** @type {HTMLVideoElement} */ (byId("video"));
const stageAudio = /** @type {HTMLAudioElement} */ (byId("stage-audio"));
/** The elements that carry sound: the teacher's voice, and the classroom on stage. */
const sounding = [video, stageAudio];
const soundButton = /** @type {HTMLButtonElement} */ (byId("sound"));
const fullscreenButton = /** @type {HTMLButtonElement} */ (byId("fullscreen"));
const handButton = /** @type {HTMLButtonElement} */ (byId("hand"));
const qualitySelect = /** @type {HTMLSelectElement} */ (byId("quality"));
const resumeButton = /** @type {HTMLButtonElement} */ (byId("resume-video"));
const notices = {
  paused: byId("paused"),
  pausedText: byId("paused-text"),
  muted: byId("you-muted"),
  onStage: byId("on-stage"),
  devices: byId("devices"),
};
const status = new StatusLine(byId("status"), byId("status-text"), byId("status-detail"));
const screen = new LessonScreen({
  screen: byId("screen"),
  teacher: video,
  courseware: /** @type {HTMLVideoElement} */ (byId("courseware")),
  stage: byId("stage"),
  stageVideo: /** @type {HTMLVideoElement} */ (byId("stage-video")),
  stageName: byId("stage-name"),
  selfView: /** @type {HTMLVideoElement} */ (byId("self-view")),
  swap: /** @type {HTMLButtonElement} */ (byId("swap")),
  speaking: byId("speaking"),
}, () => render());

/** @type {Signalling | null} */
let signalling = null;
/** @type {Negotiator | null} */
let negotiator = null;
/** @type {RTCPeerConnection | null} */
let pc = null;
/** @type {{iceServers: RTCIceServer[], videoCodec: string}} */
let joined = { iceServers: [], videoCodec: "VP8" };
/** @type {any} the latest `state` */
let lesson = null;
/** @type {import("./protocol.js").ServerError | null} */
let fatal = null;
let reconnecting = false;
/** Sound was blocked by the autoplay policy and nobody has clicked yet. */
let soundBlocked = false;
/** When the teacher's media was last seen live (for LIVE_GRACE_MS). */
let liveSeenAt = 0;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let graceTimer;
/** @type {Promise<import("./devices.js").Devices>} the room's camera and microphone */
const devices = observer
  ? Promise.resolve({ stream: null, problem: null })
  : openDevices(
      { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 20, max: 25 } },
      { partial: true },
    );
/** @type {import("./devices.js").Devices | null} */
let opened = null;
/** Whether the current media connection sends this room's camera or microphone. */
let sendsDevices = false;
/** What this classroom chose to receive at most (docs/protocol.md, `quality`). */
let cap = readCap();
const backoff = new Backoff(1000, 15_000, RECONNECT_STEADY);
/** @type {ReturnType<typeof setTimeout> | undefined} the next socket attempt */
let socketTimer;
/** @type {ReturnType<typeof setTimeout> | undefined} the next offer on this socket */
let mediaTimer;

const chat = new ChatView(
  {
    list: byId("chat-messages"),
    form: /** @type {HTMLFormElement | null} */ (document.getElementById("chat-form")),
    input: /** @type {HTMLInputElement | null} */ (document.getElementById("chat-input")),
    notice: byId("chat-notice"),
  },
  {
    send: (text) => Boolean(signalling?.joined && signalling.send({ type: "chat", text })),
    mine: (message) => message.role === config.role && message.from === config.name,
  },
);

const chatDock = new ChatDock(chat);

// -- signalling ----------------------------------------------------------------

function connect() {
  const socket = new Signalling(
    { url: signallingUrl(location), token: config.token, lesson: config.lesson, role: config.role },
    {
      joined(message) {
        joined = { iceServers: message.iceServers ?? [], videoCodec: message.videoCodec ?? "VP8" };
        if (cap !== "auto") {
          socket.send({ type: "quality", cap }); // before the offer: the streams start so
        }
        const waited = new Promise((resolve) => setTimeout(resolve, DEVICES_WAIT_MS));
        Promise.race([devices, waited]).then(() => {
          if (signalling === socket) {
            receive();
          }
        });
        render();
      },
      state(message) {
        lesson = message;
        if (pc && message.media === "failed" && !isFresh(pc)) {
          retryMedia(); // the server gave up on our connection
        }
        render();
      },
      chat(message) {
        chatDock.show(/** @type {any} */ (message));
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
        } else if (error.code === "rate_limited" || error.code === "bad_message") {
          chat.refused(error.code);
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

/** This room's camera and microphone (when it has them), then what it receives. */
function lines() {
  /** @type {import("./media.js").Line[]} */
  const layout = [];
  const stream = opened?.stream;
  for (const track of stream?.getAudioTracks() ?? []) {
    layout.push({ entry: "send:microphone", track, stream: stream ?? undefined });
  }
  for (const track of stream?.getVideoTracks() ?? []) {
    layout.push({ entry: "send:camera", track, stream: stream ?? undefined });
  }
  for (const name of ["teacher-audio", "teacher-camera", "courseware", "stage-audio", "stage-camera"]) {
    layout.push({ entry: `receive:${name}` });
  }
  return layout;
}

/** Offer to send and receive on a fresh connection. */
function receive() {
  if (!signalling || !negotiator || fatal) {
    return;
  }
  closeMedia();
  sendsDevices = Boolean(opened?.stream);
  const connection = createPeerConnection(joined.iceServers);
  pc = connection;
  const layout = addLines(connection, lines(), joined.videoCodec);
  const received = (/** @type {string} */ name) => layout.received.get(name)?.[0] ?? null;
  const teacher = [received("teacher-audio"), received("teacher-camera")];
  video.srcObject = new MediaStream(teacher.filter((track) => track !== null));
  const stage = received("stage-audio");
  stageAudio.srcObject = stage ? new MediaStream([stage]) : null;
  screen.setTracks(connection, {
    courseware: received("courseware"),
    stageCamera: received("stage-camera"),
  });
  for (const element of sounding) {
    play(element);
  }
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
  negotiator.offer(connection, layout.media).catch((error) => {
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

/** The browser's network is back (a cable plugged in again, Wi-Fi): unless the media
 * survived, start afresh now instead of after the backoff. A socket that lived
 * through the outage may be dead without knowing it yet: the server gave up on it,
 * and its closing handshake comes only with TCP's next retransmission, seconds later. */
function networkBack() {
  if (fatal || pc?.connectionState === "connected") {
    return;
  }
  clearTimeout(socketTimer);
  clearTimeout(mediaTimer);
  closeMedia();
  signalling?.close();
  signalling = negotiator = null;
  backoff.reset();
  reconnecting = true;
  connect();
  render();
}

/**
 * Play with sound if the browser allows it; otherwise muted, with one big button.
 * @param {HTMLMediaElement} element
 */
function play(element) {
  element.muted = soundBlocked;
  element.play().catch((error) => {
    if (error.name !== "NotAllowedError" || element.muted) {
      return; // AbortError: a newer srcObject or play() took over
    }
    soundBlocked = true;
    for (const other of sounding) {
      other.muted = true;
    }
    element.play().catch(() => {});
    render();
  });
}

function enableSound() {
  soundBlocked = false;
  for (const element of sounding) {
    element.muted = false;
    element.play().catch(() => {});
  }
  render();
}

// -- hand, quality and chat ------------------------------------------------------

function readCap() {
  try {
    const saved = localStorage.getItem(CAP_KEY) ?? "auto";
    return CAPS.has(saved) ? saved : "auto";
  } catch {
    return "auto"; // storage may be off
  }
}

/** @param {string} choice */
function chooseCap(choice) {
  if (!CAPS.has(choice)) {
    return;
  }
  cap = choice;
  try {
    localStorage.setItem(CAP_KEY, choice);
  } catch {
    // remembered for this page only
  }
  signalling?.send({ type: "quality", cap: choice });
  render();
}

// -- view ----------------------------------------------------------------------

/** Whether the lesson is on, counting a teacher's short switch of connection. */
function teacherLive() {
  const teacher = lesson?.teacher;
  const now = Date.now();
  if (teacher?.live) {
    liveSeenAt = now;
    return true;
  }
  const held = Boolean(teacher?.present) && liveSeenAt > 0 && now - liveSeenAt < LIVE_GRACE_MS;
  clearTimeout(graceTimer);
  if (held) {
    graceTimer = setTimeout(render, LIVE_GRACE_MS - (now - liveSeenAt) + 50);
  } else {
    liveSeenAt = 0;
  }
  return held;
}

function render() {
  const teacher = lesson?.teacher ?? null;
  const live = teacherLive();
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
  } else if (!live) {
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
  const inLesson = Boolean(signalling?.joined && !fatal);
  const paused = inLesson && live && lesson?.video?.paused === true;
  // With courseware still coming, a paused camera only takes the camera away.
  screen.update(inLesson ? lesson : null, paused && screen.courseware);
  screen.setSelf(opened?.stream ?? null);
  renderNotices(inLesson, paused);
  chat.enable(inLesson);

  const you = inLesson ? lesson?.you : null;
  handButton.hidden = !you || you.on_stage || observer;
  handButton.dataset.up = String(Boolean(you?.hand));
  handButton.dataset.muted = String(Boolean(you?.muted));
  handButton.textContent = you?.hand ? t("hand.lower") : t("hand.raise");

  const chosen = lesson?.video?.cap && CAPS.has(lesson.video.cap) ? lesson.video.cap : cap;
  if (document.activeElement !== qualitySelect) {
    qualitySelect.value = chosen;
  }
}

/**
 * @param {boolean} inLesson
 * @param {boolean} paused  the teacher's camera is paused
 */
function renderNotices(inLesson, paused) {
  const you = inLesson ? lesson?.you : null;
  notices.paused.hidden = !paused;
  const reason = lesson?.video?.reason === "audio_only_chosen" ? "audio_only_chosen" : "line_too_slow";
  notices.paused.dataset.reason = reason;
  const cameraOnly = paused && screen.courseware;
  notices.paused.dataset.scope = cameraOnly ? "camera" : "all";
  const text = t(cameraOnly ? "classroom.paused.camera_only" : `classroom.paused.${reason}`);
  if (notices.pausedText.textContent !== text) {
    notices.pausedText.textContent = text;
  }
  resumeButton.hidden = reason !== "audio_only_chosen";
  byId("screen").dataset.paused = paused ? (cameraOnly ? "camera" : "true") : "false";

  notices.muted.hidden = !you?.muted || you.on_stage;
  notices.muted.textContent = you?.hand ? t("classroom.muted.asked") : t("classroom.muted");
  notices.onStage.hidden = !you?.on_stage;
  notices.onStage.textContent = t("classroom.on_stage");

  const stream = opened?.stream ?? null;
  let missing = "";
  if (!opened && !observer && inLesson) {
    missing = t("classroom.devices.asking");
  } else if (opened && !observer) {
    if (!stream) {
      missing = t("classroom.devices.none", { reason: opened.problem ?? "" });
    } else if (stream.getVideoTracks().length === 0) {
      missing = t("classroom.devices.no_camera");
    } else if (stream.getAudioTracks().length === 0) {
      missing = t("classroom.devices.no_microphone");
    }
  }
  notices.devices.hidden = !missing || Boolean(fatal);
  notices.devices.textContent = missing;
}

handButton.addEventListener("click", () => {
  signalling?.send({ type: "hand", up: handButton.dataset.up !== "true" });
});
qualitySelect.addEventListener("change", () => chooseCap(qualitySelect.value));
resumeButton.addEventListener("click", () => chooseCap("auto"));
soundButton.addEventListener("click", enableSound);
fullscreenButton.addEventListener("click", () => {
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  } else {
    document.documentElement.requestFullscreen().catch(() => {});
  }
});
fullscreenButton.hidden = !document.fullscreenEnabled;
window.addEventListener("online", networkBack);
window.addEventListener("pagehide", () => signalling?.leave());
window.addEventListener("pageshow", (event) => {
  if (event.persisted) {
    location.reload(); // back from the back/forward cache with a closed socket
  }
});

render();
connect();
devices.then((result) => {
  opened = result;
  if (pc && !sendsDevices && result.stream && signalling?.joined && !fatal) {
    receive(); // allowed after the class began watching: offer again, with them
  }
  render();
});
