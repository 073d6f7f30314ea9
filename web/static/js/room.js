// @ts-check
/**
 * The classroom PC's one page, /room/{classroom}?device=TOKEN (server/room.py).
 *
 * Between lessons (room.html): the clock, today's lessons, a countdown to the
 * next, and the line check, run by itself before a lesson and on demand.
 * During a lesson (the classroom's or teacher's page, with this script added):
 * the 主讲 classroom's page starts at once; a classroom's page reports the
 * freezes and audio loss its connection sees.
 *
 * Either way it asks the server every `poll` seconds what should be shown, and
 * reloads when that changes (a lesson opens or ends, the timetable changes). It
 * reloads only right after the server answered, so a dropped line never leaves
 * the PC on a browser error page; the lesson page's own reconnection covers the
 * drop meanwhile. Times are the server's: its clock decides when lessons start.
 */
import { format, t } from "./i18n.js";
import { checkLine } from "./linecheck.js";
import { readJson } from "./page.js";

/** How often a lesson page reports what its connections saw. */
const REPORT_EVERY_MS = 30_000;
/** A reload waits at most this long for a line check under way. */
const CHECK_GRACE_MS = 15_000;

/** @type {any} */
const room = readJson("room");
const inLesson = document.getElementById("page") !== null;
const base = `/api/room/${encodeURIComponent(room.classroom.id)}`;
const auth = { Authorization: `Bearer ${room.device}` };
/** Server time minus this PC's time, in ms. */
let offset = room.now - Date.now();
/** @type {any} the latest answer from the server */
let latest = room;
let online = true;
/** @type {Promise<unknown> | null} a line check under way */
let checking = null;

/** @type {RTCPeerConnection[]} the lesson page's connections, for the reports */
const connections = [];
watchConnections();

function serverNow() {
  return Date.now() + offset;
}

// -- asking the server -----------------------------------------------------------

async function poll() {
  try {
    const response = await fetch(base, { headers: auth, cache: "no-store" });
    if (response.status === 401 || response.status === 403) {
      location.reload(); // the link was revoked: the page says so
      return;
    }
    if (!response.ok) {
      throw new Error(`status ${response.status}`);
    }
    const state = await response.json();
    offset = state.now - Date.now();
    latest = state;
    online = true;
    const changed = inLesson
      ? state.lesson !== room.lesson
      : state.lesson !== null || state.version !== room.version;
    if (changed) {
      await reloadSoon();
      return;
    }
    if (!inLesson && state.check_due && !checking) {
      runCheck();
    }
  } catch (error) {
    online = false;
    console.warn("room: cannot reach the server", error);
  }
  render();
  setTimeout(poll, room.poll * 1000);
}

async function reloadSoon() {
  if (checking) {
    await Promise.race([checking, new Promise((resolve) => setTimeout(resolve, CHECK_GRACE_MS))]);
  }
  location.reload();
}

// -- between lessons ---------------------------------------------------------------

function render() {
  if (inLesson) {
    return;
  }
  const status = document.getElementById("status");
  const text = document.getElementById("status-text");
  const countdown = document.getElementById("countdown");
  const detail = document.getElementById("status-detail");
  if (!status || !text || !countdown || !detail) {
    return;
  }
  const next = latest.next;
  let state = next ? "countdown" : "idle";
  let sentence = next ? t("room.next", { title: next.title, start: next.start, end: next.end }) : t("room.none_left");
  let left = "";
  if (!online) {
    state = "offline";
    sentence = t("room.offline");
  } else if (next) {
    left = t("room.countdown", { left: duration(next.starts - serverNow()) });
  }
  status.dataset.state = state;
  document.body.dataset.state = state;
  setText(text, sentence);
  setText(countdown, left);
  setText(detail, t(online ? "room.hint" : "room.hint.offline"));
  renderCheck();
}

/** @param {number} ms */
function duration(ms) {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  const two = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return hours > 0 ? `${hours}:${two(minutes)}:${two(rest)}` : `${two(minutes)}:${two(rest)}`;
}

function tickClock() {
  const clock = document.getElementById("clock");
  if (clock) {
    const shown = new Intl.DateTimeFormat(document.documentElement.lang || "zh-CN", {
      timeZone: room.zone,
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hour12: false,
    }).format(new Date(serverNow()));
    setText(clock, shown);
  }
  render();
}

function renderCheck() {
  const result = document.getElementById("check-result");
  const button = /** @type {HTMLButtonElement | null} */ (document.getElementById("check-now"));
  if (!result || !button) {
    return;
  }
  button.disabled = Boolean(checking);
  const check = latest.check;
  if (!check) {
    return;
  }
  result.dataset.verdict = check.verdict;
  const figures = {
    down: (check.down_bps / 1e6).toFixed(1),
    up: (check.up_bps / 1e6).toFixed(1),
    rtt: check.rtt_ms === null ? "–" : String(Math.round(check.rtt_ms)),
    loss: check.loss === null ? "–" : (check.loss * 100).toFixed(1),
  };
  const when = new Intl.DateTimeFormat(document.documentElement.lang || "zh-CN", {
    timeZone: room.zone,
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
  }).format(new Date(check.at));
  setText(
    result,
    `${t(`check.verdict.${check.verdict}`)} ${t("check.figures", figures)} ${format(t("check.when"), { when })}`,
  );
}

function runCheck() {
  const progress = document.getElementById("check-progress");
  checking = checkLine(base, room.device, (step) => {
    if (progress) {
      progress.hidden = false;
      setText(progress, t(`check.step.${step}`));
    }
  })
    .then((result) => {
      latest = { ...latest, check: result, check_due: false };
    })
    .catch((error) => {
      console.warn("room: the line check failed", error);
      if (progress) {
        setText(progress, t("check.failed"));
      }
    })
    .finally(() => {
      checking = null;
      if (progress && progress.textContent !== t("check.failed")) {
        progress.hidden = true;
      }
      render();
    });
  render();
}

// -- during a lesson -------------------------------------------------------------------

/** The 主讲 classroom's page starts the lesson once, as soon as it can. */
function startTeaching() {
  const toggle = /** @type {HTMLButtonElement | null} */ (document.getElementById("toggle"));
  if (!toggle) {
    return;
  }
  const timer = setInterval(() => {
    if (!toggle.disabled && toggle.dataset.action === "start") {
      clearInterval(timer);
      toggle.click();
    }
  }, 250);
}

/** Keep the page's RTCPeerConnections (classroom.js owns them) to read their stats. */
function watchConnections() {
  const Original = window.RTCPeerConnection;
  if (!inLesson || !Original) {
    return;
  }
  window.RTCPeerConnection = new Proxy(Original, {
    construct(target, args) {
      const pc = Reflect.construct(target, args);
      connections.push(pc);
      return pc;
    },
  });
}

/** @type {WeakMap<RTCPeerConnection, {freezes: number, freezeSeconds: number, samples: number, concealed: number}>} */
const reported = new WeakMap();

async function report() {
  let freezes = 0;
  let freezeSeconds = 0;
  let samples = 0;
  let concealed = 0;
  for (const pc of connections.splice(0)) {
    if (pc.connectionState !== "closed") {
      connections.push(pc);
    }
    const now = { freezes: 0, freezeSeconds: 0, samples: 0, concealed: 0 };
    try {
      const stats = await pc.getStats();
      for (const entry of stats.values()) {
        if (entry.type !== "inbound-rtp") {
          continue;
        }
        if (entry.kind === "video") {
          now.freezes += entry.freezeCount ?? 0;
          now.freezeSeconds += entry.totalFreezesDuration ?? 0;
        } else if (entry.kind === "audio") {
          now.samples += entry.totalSamplesReceived ?? 0;
          now.concealed += entry.concealedSamples ?? 0;
        }
      }
    } catch {
      continue;
    }
    const before = reported.get(pc) ?? { freezes: 0, freezeSeconds: 0, samples: 0, concealed: 0 };
    reported.set(pc, now);
    freezes += Math.max(0, now.freezes - before.freezes);
    freezeSeconds += Math.max(0, now.freezeSeconds - before.freezeSeconds);
    samples += Math.max(0, now.samples - before.samples);
    concealed += Math.max(0, now.concealed - before.concealed);
  }
  if (samples === 0 && freezes === 0) {
    return;
  }
  await fetch(`${base}/report`, {
    method: "POST",
    headers: { ...auth, "Content-Type": "application/json" },
    body: JSON.stringify({
      lesson: room.lesson,
      freezes,
      freeze_seconds: Math.round(freezeSeconds * 10) / 10,
      audio_samples: samples,
      audio_concealed: concealed,
    }),
  }).catch(() => {});
}

/**
 * @param {HTMLElement} element
 * @param {string} text
 */
function setText(element, text) {
  if (element.textContent !== text) {
    element.textContent = text;
  }
}

if (inLesson) {
  if (room.role === "teacher") {
    startTeaching();
  } else {
    setInterval(() => report().catch(() => {}), REPORT_EVERY_MS);
    window.addEventListener("pagehide", () => {
      report().catch(() => {});
    });
  }
} else {
  document.getElementById("check-now")?.addEventListener("click", () => {
    if (!checking) {
      runCheck();
    }
  });
  setInterval(tickClock, 1000);
  tickClock();
  if (room.check_due) {
    runCheck();
  }
}
setTimeout(poll, room.poll * 1000);
