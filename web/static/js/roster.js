// @ts-check
/**
 * The teacher's view of the classrooms: one tile per classroom (its picture from
 * one of the teacher's grid slots, its name, its network, its hand and its
 * microphone, with buttons to bring it on stage or mute it), the queue of raised
 * hands in order, and the classroom on stage, larger.
 */
import { t } from "./i18n.js";
import { showWhenFlowing } from "./media.js";

const MEDIA_STATES = new Set(["none", "connecting", "connected", "failed", "reconnecting"]);
const QUALITIES = new Set(["good", "fair", "poor", "audio_only", "connecting"]);

/**
 * @typedef {{peer: string, name: string}} Seat
 * @typedef {{peer: string, name: string, media: string, quality: string | null,
 *            publishing: boolean, hand: boolean, on_stage: boolean, muted: boolean}} Classroom
 * @typedef {{classrooms?: Classroom[], hands?: Seat[], grid?: (Seat | null)[],
 *            stage?: Seat | null, speaking?: {peer: string} | null, all_muted?: boolean,
 *            teacher?: {live: boolean}}} TeacherState
 * @typedef {{mute: (peer: string, on: boolean) => void, stage: (peer: string | null) => void,
 *            muteAll: (on: boolean) => void}} Actions
 */

/**
 * The words for a classroom's network, from its `quality` (docs/protocol.md).
 * @param {string | null | undefined} quality
 * @returns {string}
 */
export function qualityText(quality) {
  return QUALITIES.has(String(quality)) ? t(`quality.${quality}`) : t("quality.unknown");
}

class Tile {
  /**
   * @param {string} peer
   * @param {Actions} actions
   */
  constructor(peer, actions) {
    this.peer = peer;
    this.item = document.createElement("li");
    this.item.className = "classroom tile";
    this.item.dataset.peer = peer;

    const picture = document.createElement("div");
    picture.className = "tile-picture";
    this.placeholder = document.createElement("p");
    this.placeholder.className = "tile-placeholder";
    this.video = document.createElement("video");
    this.video.className = "tile-video";
    this.video.autoplay = this.video.muted = this.video.playsInline = true;
    this.handBadge = document.createElement("span");
    this.handBadge.className = "tile-hand";
    this.flag = document.createElement("span");
    this.flag.className = "tile-flag";
    picture.append(this.placeholder, this.video, this.handBadge, this.flag);

    const info = document.createElement("div");
    info.className = "tile-info";
    this.name = document.createElement("span");
    this.name.className = "classroom-name";
    this.quality = document.createElement("span");
    this.quality.className = "classroom-quality";
    const bars = document.createElement("span");
    bars.className = "bars";
    bars.setAttribute("aria-hidden", "true");
    bars.append(...[1, 2, 3].map(() => document.createElement("i")));
    this.qualityText = document.createElement("span");
    this.quality.append(bars, this.qualityText);
    this.media = document.createElement("span");
    this.media.className = "classroom-media";
    info.append(this.name, this.quality, this.media);

    const buttons = document.createElement("div");
    buttons.className = "tile-actions";
    this.stageButton = document.createElement("button");
    this.stageButton.type = "button";
    this.stageButton.className = "tile-button";
    this.stageButton.dataset.action = "stage";
    this.muteButton = document.createElement("button");
    this.muteButton.type = "button";
    this.muteButton.className = "tile-button";
    this.muteButton.dataset.action = "mute";
    buttons.append(this.stageButton, this.muteButton);
    this.stageButton.addEventListener("click", () =>
      actions.stage(this.item.dataset.stage === "true" ? null : this.peer),
    );
    this.muteButton.addEventListener("click", () =>
      actions.mute(this.peer, this.item.dataset.muted !== "true"),
    );

    this.item.append(picture, info, buttons);
    /** @type {MediaStreamTrack | null} */
    this.track = null;
    this.cancel = () => {};
  }

  /**
   * @param {Classroom} classroom
   * @param {{quality: string | null, slot: MediaStreamTrack | null, handPlace: number,
   *          speaking: boolean, live: boolean}} view
   */
  show(classroom, view) {
    const media = MEDIA_STATES.has(classroom.media) ? classroom.media : "none";
    const data = this.item.dataset;
    data.media = media;
    data.name = classroom.name;
    data.quality = view.quality ?? "unknown";
    data.hand = String(classroom.hand);
    data.muted = String(classroom.muted);
    data.stage = String(classroom.on_stage);
    data.speaking = String(view.speaking);
    data.video = view.slot ? "on" : "off";
    setText(this.name, classroom.name);
    // "connected" only means the link is up; say "watching" once there is a lesson.
    const word = media === "connected" && view.live ? "watching" : media;
    setText(this.media, t(`media.${word}`));
    this.quality.hidden = media !== "connected" || !view.live; // nothing flows before
    this.quality.dataset.quality = data.quality;
    setText(this.qualityText, qualityText(view.quality));
    this.quality.title = t("quality.title");

    let placeholder = t("tile.waiting_video");
    if (!view.live) {
      placeholder = t("tile.after_start");
    } else if (!classroom.publishing) {
      placeholder = t("tile.no_camera");
    } else if (!view.slot) {
      placeholder = t("tile.no_slot");
    }
    setText(this.placeholder, placeholder);
    this.handBadge.hidden = view.handPlace < 0;
    setText(this.handBadge, t("tile.hand", { place: view.handPlace + 1 }));
    this.flag.hidden = !(classroom.on_stage || classroom.muted);
    setText(this.flag, classroom.on_stage ? t("tile.on_stage") : t("tile.muted"));
    this.flag.dataset.flag = classroom.on_stage ? "stage" : "muted";
    setText(this.stageButton, classroom.on_stage ? t("stage.end") : t("stage.bring"));
    setText(this.muteButton, classroom.muted ? t("mute.off") : t("mute.on"));
    this.setTrack(view.slot);
  }

  /** @param {MediaStreamTrack | null} track */
  setTrack(track) {
    if (track === this.track) {
      return;
    }
    this.track = track;
    this.cancel();
    this.cancel = showWhenFlowing(this.video, track ? [track] : [], () => {
      this.video.play().catch(() => {});
    });
  }

  remove() {
    this.cancel();
    this.video.srcObject = null;
    this.item.remove();
  }
}

export class Roster {
  /**
   * @param {{list: HTMLElement, count: HTMLElement, hands: HTMLElement, handsNone: HTMLElement,
   *          handsCount: HTMLElement, stageFrame: HTMLElement, stageVideo: HTMLVideoElement,
   *          stageName: HTMLElement, stageEnd: HTMLButtonElement,
   *          muteAll: HTMLButtonElement}} elements
   * @param {Actions} actions
   */
  constructor(elements, actions) {
    this.elements = elements;
    this.actions = actions;
    /** @type {Map<string, Tile>} */
    this.tiles = new Map();
    /** @type {MediaStreamTrack[]} the grid slots of the current media connection */
    this.slots = [];
    /** @type {MediaStreamTrack | null} */
    this.stageTrack = null;
    this.cancelStage = () => {};
    /** @type {Map<string, string | null>} each classroom's latest network quality */
    this.quality = new Map();
    /** @type {TeacherState | null} */
    this.state = null;
    this.live = false;
    elements.stageEnd.addEventListener("click", () => actions.stage(null));
    elements.muteAll.addEventListener("click", () =>
      actions.muteAll(elements.muteAll.dataset.on !== "true"),
    );
  }

  /**
   * The receive lines of a new media connection (or none after "stop").
   * @param {MediaStreamTrack[]} slots
   * @param {MediaStreamTrack | null} stage
   */
  setTracks(slots, stage) {
    this.slots = slots;
    this.stageTrack = stage;
    this.render();
  }

  /**
   * @param {TeacherState | null} state  null while not in the lesson
   * @param {boolean} live  whether the teacher is live (pictures flow)
   */
  update(state, live) {
    this.state = state;
    this.live = live;
    for (const classroom of state?.classrooms ?? []) {
      if (classroom.quality !== undefined) {
        this.quality.set(classroom.peer, classroom.quality);
      }
    }
    this.render();
  }

  /** @param {{classrooms?: {peer: string, quality: string | null}[]}} stats */
  updateStats(stats) {
    for (const line of stats.classrooms ?? []) {
      this.quality.set(line.peer, line.quality);
    }
    this.render();
  }

  render() {
    const state = this.state;
    const classrooms = state?.classrooms ?? [];
    const hands = state?.hands ?? [];
    const grid = state?.grid ?? [];
    const { count, list, muteAll } = this.elements;
    setText(
      count,
      classrooms.length === 0
        ? t("teacher.classrooms.none")
        : t("teacher.classrooms.count", { count: classrooms.length }),
    );
    const present = new Set(classrooms.map((c) => c.peer));
    for (const [peer, tile] of this.tiles) {
      if (!present.has(peer)) {
        tile.remove();
        this.tiles.delete(peer);
        this.quality.delete(peer);
      }
    }
    classrooms.forEach((classroom, index) => {
      let tile = this.tiles.get(classroom.peer);
      if (!tile) {
        tile = new Tile(classroom.peer, this.actions);
        this.tiles.set(classroom.peer, tile);
      }
      const slot = grid.findIndex((seat) => seat?.peer === classroom.peer);
      tile.show(classroom, {
        quality: this.quality.get(classroom.peer) ?? classroom.quality,
        slot: slot >= 0 && this.live ? (this.slots[slot] ?? null) : null,
        handPlace: hands.findIndex((seat) => seat.peer === classroom.peer),
        speaking: state?.speaking?.peer === classroom.peer,
        live: this.live,
      });
      if (list.children[index] !== tile.item) {
        list.insertBefore(tile.item, list.children[index] ?? null);
      }
    });

    muteAll.disabled = classrooms.length === 0;
    muteAll.dataset.on = String(Boolean(state?.all_muted));
    setText(muteAll, state?.all_muted ? t("teacher.unmute_all") : t("teacher.mute_all"));
    this.renderHands(hands);
    this.renderStage(state?.stage ?? null);
  }

  /** @param {Seat[]} hands */
  renderHands(hands) {
    const { hands: list, handsNone, handsCount } = this.elements;
    handsNone.hidden = hands.length > 0;
    handsCount.hidden = hands.length === 0;
    setText(handsCount, String(hands.length));
    const items = hands.map((seat, index) => {
      const item = document.createElement("li");
      item.className = "hand";
      item.dataset.peer = seat.peer;
      const place = document.createElement("span");
      place.className = "hand-place";
      place.textContent = String(index + 1);
      const name = document.createElement("span");
      name.className = "hand-name";
      name.textContent = seat.name;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "hand-button";
      button.dataset.action = "stage";
      button.textContent = t("stage.bring");
      button.addEventListener("click", () => this.actions.stage(seat.peer));
      item.append(place, name, button);
      return item;
    });
    list.replaceChildren(...items);
  }

  /** @param {Seat | null} stage */
  renderStage(stage) {
    const { stageFrame, stageVideo, stageName } = this.elements;
    stageFrame.hidden = !stage;
    stageFrame.dataset.peer = stage?.peer ?? "";
    setText(stageName, stage ? t("stage.now", { name: stage.name }) : "");
    const track = stage && this.live ? this.stageTrack : null;
    if (stageVideo.dataset.track !== (track?.id ?? "")) {
      stageVideo.dataset.track = track?.id ?? "";
      this.cancelStage();
      this.cancelStage = showWhenFlowing(stageVideo, track ? [track] : [], () => {
        stageVideo.play().catch(() => {});
      });
    }
  }
}

/**
 * Change text only when it changed, so that screen readers and selections stay.
 * @param {HTMLElement} element
 * @param {string} text
 */
function setText(element, text) {
  if (element.textContent !== text) {
    element.textContent = text;
  }
}
