// @ts-check
/**
 * The replay page: plays the lesson's HLS ladder with hls.js (vendored, pinned in
 * package.json), or natively where the browser plays HLS itself, and the MP4 when
 * neither works. The <video> keeps its own controls, so seeking is the browser's.
 * "Sound only" switches to the audio-only rendition for slow lines.
 */
import { t } from "./i18n.js";
import { byId, readJson, StatusLine } from "./page.js";

/**
 * @typedef {{lesson: string, hls: string | null, mp4: string | null,
 *   audio: string | null, state: string}} ReplayConfig
 */

/** @type {ReplayConfig} */
const config = readJson("page");
const video = /** @type {HTMLVideoElement} */ (byId("video"));
const status = new StatusLine(byId("status"), byId("status-text"), byId("status-detail"));
/** @type {any} the hls.js instance, when hls.js plays */
let hls = null;

/** @returns {any} hls.js's constructor, when its script loaded */
function hlsJs() {
  return /** @type {any} */ (window).Hls ?? null;
}

/** @param {string} player */
function using(player) {
  video.dataset.player = player;
}

function playMp4() {
  if (hls) {
    hls.destroy();
    hls = null;
  }
  if (!config.mp4) {
    status.show("error", t("replay.status.error"));
    return;
  }
  const at = video.currentTime;
  using("mp4");
  video.src = config.mp4;
  if (at > 0) {
    video.addEventListener("loadedmetadata", () => (video.currentTime = at), { once: true });
  }
}

/** @param {string} url */
function playHls(url) {
  const Hls = hlsJs();
  if (Hls && Hls.isSupported()) {
    if (hls) {
      hls.destroy();
    }
    hls = new Hls({ capLevelToPlayerSize: true, startLevel: -1 });
    hls.on(Hls.Events.ERROR, (/** @type {string} */ _event, /** @type {any} */ data) => {
      if (data.fatal) {
        console.warn("hls.js gave up:", data.type, data.details);
        playMp4();
      }
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    using("hls.js");
    return true;
  }
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    using("native");
    video.src = url;
    return true;
  }
  return false;
}

function start() {
  if (!config.hls && !config.mp4) {
    return; // the page already says why
  }
  status.show("loading", t("replay.status.loading"));
  video.addEventListener("error", () => {
    if (video.dataset.player !== "mp4") {
      playMp4();
    } else {
      status.show("error", t("replay.status.error"));
    }
  });
  video.addEventListener("canplay", () => {
    if (status.element.dataset.state === "loading") {
      status.show("ready", t("replay.status.ready"));
    }
  });
  video.addEventListener("playing", () => status.show("playing", t("replay.status.playing")));
  if (!config.hls || !playHls(config.hls)) {
    playMp4();
  }
  const audioButton = document.getElementById("audio-only");
  if (audioButton && config.audio) {
    audioButton.hidden = false;
    audioButton.addEventListener("click", () => {
      const at = video.currentTime;
      if (config.audio && playHls(config.audio)) {
        video.addEventListener("loadedmetadata", () => (video.currentTime = at), { once: true });
        audioButton.hidden = true;
      }
    });
  }
}

start();
