// @ts-check
/**
 * Cameras, microphones and shared screens: asking for them, and saying in plain
 * words why they cannot be used.
 */
import { t } from "./i18n.js";

/** Echo cancellation matters most in a classroom, whose speakers play the teacher
 * into the same room as its microphone. */
export const MICROPHONE = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/**
 * @typedef {{stream: MediaStream | null, problem: string | null}} Devices
 *   `stream` holds what could be opened (maybe only a microphone, or nothing);
 *   `problem` says why something is missing
 */

/** Whether this page may ask for a camera at all. */
export function devicesAllowed() {
  return window.isSecureContext && Boolean(navigator.mediaDevices?.getUserMedia);
}

/**
 * Camera and microphone together; with `partial`, whichever of the two exists
 * when one is missing, and nothing (with the reason) when neither can be used.
 * @param {MediaStreamConstraints["video"]} video
 * @param {{partial?: boolean}} [options]
 * @returns {Promise<Devices>}
 */
export async function openDevices(video, options = {}) {
  if (!devicesAllowed()) {
    return { stream: null, problem: t("camera.insecure") };
  }
  /** @type {Error | null} */
  let first = null;
  const attempts = options.partial
    ? [{ audio: MICROPHONE, video }, { audio: MICROPHONE }, { video }]
    : [{ audio: MICROPHONE, video }];
  for (const constraints of attempts) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      const partial = !constraints.audio || !constraints.video;
      return { stream, problem: first && partial ? deviceErrorText(first) : null };
    } catch (error) {
      const failure = /** @type {Error} */ (error);
      first ??= failure;
      if (!isMissing(failure)) {
        break; // refused or busy: asking for less does not help
      }
    }
  }
  return { stream: null, problem: deviceErrorText(/** @type {Error} */ (first)) };
}

/**
 * @param {Error} error  from getUserMedia
 * @returns {boolean}  whether a device was simply not there
 */
function isMissing(error) {
  return ["NotFoundError", "DevicesNotFoundError", "OverconstrainedError"].includes(error.name);
}

/**
 * @param {Error} error  from getUserMedia
 * @returns {string}
 */
export function deviceErrorText(error) {
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

/**
 * A screen or window to share as courseware, or null when the teacher cancelled.
 * Slides and writing: the browser keeps the detail and lowers the frame rate.
 * @returns {Promise<MediaStream | null>}
 */
export async function openScreen() {
  if (!navigator.mediaDevices?.getDisplayMedia) {
    throw new Error(t("share.unsupported"));
  }
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({
      video: { frameRate: { ideal: 10, max: 15 } },
      audio: false,
    });
    for (const track of stream.getVideoTracks()) {
      track.contentHint = "detail";
    }
    return stream;
  } catch (error) {
    if (/** @type {Error} */ (error).name === "NotAllowedError") {
      return null; // the teacher chose "cancel"
    }
    throw error;
  }
}
