// @ts-check
/**
 * What a classroom's screen shows: the teacher's camera; the courseware, large,
 * with the camera small beside it (the class may swap the two); the classroom on
 * stage; and who is speaking. The page script gives it the received tracks and
 * each new `state`; the layout itself is CSS on data attributes of the screen.
 */
import { t } from "./i18n.js";

/** Courseware counts as shared while its frames keep coming; a still slide is
 * still sent about once a second, and the lowest courseware layer at 3 fps. */
const COURSEWARE_QUIET_MS = 4000;
const COURSEWARE_POLL_MS = 1000;

/**
 * @typedef {{peer: string, name: string | null, role?: string}} Seat
 * @typedef {{teacher?: {name: string | null}, stage?: Seat | null, speaking?: Seat | null,
 *            you?: {peer: string, on_stage: boolean},
 *            video?: {paused: boolean, reason: string | null}}} ScreenState
 */

export class LessonScreen {
  /**
   * @param {{screen: HTMLElement, teacher: HTMLVideoElement, courseware: HTMLVideoElement,
   *          stage: HTMLElement, stageVideo: HTMLVideoElement, stageName: HTMLElement,
   *          selfView: HTMLVideoElement, swap: HTMLButtonElement,
   *          speaking: HTMLElement}} elements
   * @param {() => void} changed  called when courseware starts or stops showing
   */
  constructor(elements, changed) {
    this.elements = elements;
    this.changed = changed;
    /** The teacher's camera is paused (the line is too slow for it). */
    this.cameraPaused = false;
    /** @type {{pc: RTCPeerConnection, track: MediaStreamTrack} | null} */
    this.coursewareSource = null;
    this.framesDecoded = 0;
    this.lastFrameAt = 0;
    this.courseware = false;
    this.swapped = sessionStorage.getItem("zhuandi.swapped") === "true";
    /** @type {ScreenState | null} */
    this.state = null;
    elements.swap.addEventListener("click", () => this.swap());
    // The small picture enlarges itself when clicked.
    elements.teacher.addEventListener("click", () => this.swapped || this.swapIfShown());
    elements.courseware.addEventListener("click", () => this.swapped && this.swapIfShown());
    setInterval(() => this.pollCourseware(), COURSEWARE_POLL_MS);
    this.render();
  }

  swap() {
    this.swapped = !this.swapped;
    sessionStorage.setItem("zhuandi.swapped", String(this.swapped));
    this.render();
  }

  swapIfShown() {
    if (this.courseware) {
      this.swap();
    }
  }

  /**
   * The tracks of a new media connection.
   * @param {RTCPeerConnection} pc
   * @param {{courseware: MediaStreamTrack | null, stageCamera: MediaStreamTrack | null}} tracks
   */
  setTracks(pc, tracks) {
    const { courseware, stageVideo } = this.elements;
    courseware.srcObject = tracks.courseware ? new MediaStream([tracks.courseware]) : null;
    stageVideo.srcObject = tracks.stageCamera ? new MediaStream([tracks.stageCamera]) : null;
    for (const element of [courseware, stageVideo]) {
      element.play().catch(() => {}); // muted: only the page's sound needs a click
    }
    this.coursewareSource = tracks.courseware ? { pc, track: tracks.courseware } : null;
    this.framesDecoded = 0;
    this.lastFrameAt = 0;
    this.courseware = false;
    this.render();
  }

  /** @param {MediaStream | null} stream  this classroom's own camera */
  setSelf(stream) {
    const { selfView } = this.elements;
    if (selfView.srcObject !== stream) {
      selfView.srcObject = stream; // muted, so it may play by itself
    }
  }

  /**
   * @param {ScreenState | null} state
   * @param {boolean} cameraPaused  only the teacher's camera is paused: the
   *   courseware stays large, and the swap waits
   */
  update(state, cameraPaused) {
    this.state = state;
    this.cameraPaused = cameraPaused;
    this.render();
  }

  /** Whether courseware frames still arrive (from the receiver's statistics, which
   * count whether or not the video is visible). */
  async pollCourseware() {
    const source = this.coursewareSource;
    if (!source || source.pc.connectionState === "closed") {
      return;
    }
    let decoded = 0;
    try {
      const stats = await source.pc.getStats(source.track);
      for (const report of stats.values()) {
        if (report.type === "inbound-rtp" && report.kind === "video") {
          decoded = report.framesDecoded ?? 0;
        }
      }
    } catch {
      return; // the connection closed meanwhile
    }
    if (source !== this.coursewareSource) {
      return;
    }
    const now = Date.now();
    if (decoded > this.framesDecoded) {
      this.lastFrameAt = now;
    }
    this.framesDecoded = decoded;
    const flowing = now - this.lastFrameAt < COURSEWARE_QUIET_MS;
    const shown = flowing && this.elements.courseware.videoWidth > 0;
    if (shown !== this.courseware) {
      this.courseware = shown;
      this.render();
      this.changed();
    }
  }

  render() {
    const { screen, swap, stage, stageName, speaking } = this.elements;
    const state = this.state;
    screen.dataset.courseware = this.courseware ? "on" : "off";
    screen.dataset.swapped = String(this.swapped && !this.cameraPaused);
    swap.hidden = !this.courseware || this.cameraPaused;
    swap.textContent = this.swapped ? t("classroom.swap.courseware") : t("classroom.swap.camera");

    const you = state?.you;
    const onStage = state?.stage ?? null;
    const mine = Boolean(you && onStage && onStage.peer === you.peer);
    screen.dataset.stage = onStage ? (mine ? "self" : "other") : "off";
    stage.hidden = !onStage;
    setText(
      stageName,
      !onStage ? "" : mine ? t("classroom.stage.self") : t("classroom.stage.other", { name: onStage.name ?? "" }),
    );

    const speaker = state?.speaking ?? null;
    speaking.hidden = !speaker;
    if (speaker) {
      speaking.dataset.role = speaker.role ?? "";
      const self = you && speaker.peer === you.peer;
      setText(
        speaking,
        self
          ? t("speaking.self")
          : speaker.role === "teacher"
            ? t("speaking.teacher", { name: speaker.name ?? "" })
            : t("speaking.classroom", { name: speaker.name ?? "" }),
      );
    }
  }
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
