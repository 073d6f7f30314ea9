// @ts-check
/**
 * The observation wall (巡课) for district staff: every running lesson as a small
 * picture of its teacher, from GET /api/live, refreshed every few seconds. Each
 * tile is its own observer connection that receives the teacher's camera only, at
 * the lowest layer and without sound; observers are never listed to the lesson.
 * A tile opens the lesson full size on its observer page.
 */
import { errorText, t } from "./i18n.js";
import { addLines, createPeerConnection, Negotiator, watchConnection } from "./media.js";
import { byId, pageConfig } from "./page.js";
import { Backoff, mayReconnect, Signalling, signallingUrl } from "./protocol.js";

const REFRESH_MS = 5000;

/**
 * @typedef {{lesson: string, live: boolean, teacher: string | null, classrooms: number,
 *            stage: string | null, recording: boolean}} LiveLesson  one entry of /api/live
 */

const config = pageConfig();
const wall = byId("wall");
const count = byId("wall-count");
const empty = byId("wall-empty");
const problem = byId("wall-problem");
/** @type {Map<string, WallTile>} */
const tiles = new Map();

class WallTile {
  /** @param {LiveLesson} lesson */
  constructor(lesson) {
    this.id = lesson.lesson;
    const href = `/lesson/${encodeURIComponent(this.id)}/observer?token=${encodeURIComponent(config.token)}`;
    this.item = document.createElement("li");
    this.item.className = "wall-tile";
    this.item.dataset.lesson = this.id;
    this.item.dataset.state = "connecting";

    const picture = document.createElement("a");
    picture.className = "wall-picture";
    picture.href = href;
    picture.tabIndex = -1;
    this.placeholder = document.createElement("span");
    this.placeholder.className = "wall-placeholder";
    this.video = document.createElement("video");
    this.video.className = "wall-video";
    this.video.autoplay = this.video.muted = this.video.playsInline = true;
    this.badge = document.createElement("span");
    this.badge.className = "wall-badge";
    this.rec = document.createElement("span");
    this.rec.className = "wall-rec";
    this.rec.textContent = t("observe.recording");
    picture.append(this.placeholder, this.video, this.badge, this.rec);

    const info = document.createElement("div");
    info.className = "wall-info";
    const title = document.createElement("h2");
    title.className = "wall-title";
    title.textContent = this.id;
    this.facts = document.createElement("p");
    this.facts.className = "wall-facts";
    const open = document.createElement("a");
    open.className = "wall-open";
    open.href = href;
    open.textContent = t("observe.open");
    info.append(title, this.facts, open);
    this.item.append(picture, info);

    /** @type {Signalling | null} */
    this.signalling = null;
    /** @type {Negotiator | null} */
    this.negotiator = null;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    this.closed = false;
    this.teacherLive = false;
    /** @type {string | null} */
    this.ended = null;
    this.backoff = new Backoff(2000);
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.update(lesson);
    this.connect();
  }

  connect() {
    const socket = new Signalling(
      { url: signallingUrl(location), token: config.token, lesson: this.id, role: "observer" },
      {
        joined: (message) => {
          // Before the offer, so that the picture starts small.
          socket.send({ type: "quality", cap: "low" });
          this.receive(message.iceServers ?? [], message.videoCodec ?? "VP8", socket);
        },
        state: (message) => {
          this.teacherLive = message.teacher?.live === true;
          this.render();
        },
        answer: (message) => {
          this.negotiator?.answer(message.sdp).catch((error) => console.warn(error));
        },
        error: (error) => console.warn(`lesson ${this.id}:`, error.code, error.message),
        close: (info) => {
          this.closeMedia();
          this.signalling = null;
          if (this.closed) {
            return;
          }
          if (mayReconnect(info.fatal)) {
            this.timer = setTimeout(() => this.connect(), this.backoff.next());
          } else {
            this.ended = info.fatal?.code ?? "not_live";
          }
          this.render();
        },
      },
    );
    this.signalling = socket;
    this.negotiator = new Negotiator(socket);
    socket.open();
  }

  /**
   * @param {RTCIceServer[]} iceServers
   * @param {string} codec
   * @param {Signalling} socket
   */
  receive(iceServers, codec, socket) {
    if (this.closed || this.signalling !== socket || !this.negotiator) {
      return;
    }
    this.closeMedia();
    const pc = createPeerConnection(iceServers);
    this.pc = pc;
    const layout = addLines(pc, [{ entry: "receive:teacher-camera" }], codec);
    this.video.srcObject = new MediaStream(layout.received.get("teacher-camera") ?? []);
    this.video.play().catch(() => {});
    watchConnection(pc, {
      connected: () => this.backoff.reset(),
      lost: () => {
        if (this.pc === pc) {
          socket.close(); // a fresh socket and connection, after a pause
          this.closeMedia();
          this.timer = setTimeout(() => this.connect(), this.backoff.next());
        }
      },
      changed: () => this.render(),
    });
    this.negotiator.offer(pc, layout.media).catch((error) => console.warn(error));
  }

  /** @param {LiveLesson} lesson */
  update(lesson) {
    this.lesson = lesson;
    const facts = [
      lesson.teacher ? t("observe.teacher", { name: lesson.teacher }) : t("observe.no_teacher"),
      t("observe.classrooms", { count: lesson.classrooms }),
    ];
    if (lesson.stage) {
      facts.push(t("observe.stage", { name: lesson.stage }));
    }
    this.facts.replaceChildren(
      ...facts.map((text) => {
        const fact = document.createElement("span");
        fact.className = "wall-fact";
        fact.textContent = text;
        return fact;
      }),
    );
    this.rec.hidden = !lesson.recording;
    if (this.ended && !this.signalling) {
      this.ended = null; // listed again: it runs once more
      this.connect();
    }
    this.render();
  }

  render() {
    const connected = this.pc?.connectionState === "connected";
    let state = "connecting";
    if (this.ended) {
      state = "ended";
    } else if (connected && this.teacherLive) {
      state = "live";
    } else if (this.signalling?.joined && !this.teacherLive) {
      state = "waiting";
    }
    this.item.dataset.state = state;
    this.placeholder.textContent =
      state === "ended"
        ? t("observe.tile.ended")
        : state === "waiting"
          ? t("observe.tile.waiting")
          : t("observe.tile.connecting");
    this.badge.textContent = state === "live" ? t("observe.tile.live") : "";
    this.badge.hidden = state !== "live";
  }

  closeMedia() {
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.signalling?.leave();
    this.closeMedia();
    this.item.remove();
  }
}

async function refresh() {
  /** @type {LiveLesson[]} */
  let lessons;
  try {
    const response = await fetch("/api/live", {
      headers: { Authorization: `Bearer ${config.token}` },
      cache: "no-store",
    });
    const body = await response.json();
    if (!response.ok) {
      problem.textContent = errorText(String(body.error ?? response.status));
      problem.hidden = false;
      if (response.status === 401 || response.status === 403) {
        return; // the link itself is refused: no point in asking again
      }
      setTimeout(refresh, REFRESH_MS);
      return;
    }
    lessons = body.lessons ?? [];
  } catch (error) {
    console.warn("cannot list the lessons", error);
    problem.textContent = t("observe.failed");
    problem.hidden = false;
    setTimeout(refresh, REFRESH_MS);
    return;
  }
  problem.hidden = true;
  const listed = new Set(lessons.map((lesson) => lesson.lesson));
  for (const [id, tile] of tiles) {
    if (!listed.has(id)) {
      tile.close();
      tiles.delete(id);
    }
  }
  lessons.sort((a, b) => Number(b.live) - Number(a.live) || a.lesson.localeCompare(b.lesson));
  lessons.forEach((lesson, index) => {
    let tile = tiles.get(lesson.lesson);
    if (!tile) {
      tile = new WallTile(lesson);
      tiles.set(lesson.lesson, tile);
    } else {
      tile.update(lesson);
    }
    if (wall.children[index] !== tile.item) {
      wall.insertBefore(tile.item, wall.children[index] ?? null);
    }
  });
  count.textContent = t("observe.count", { count: lessons.length });
  empty.hidden = lessons.length > 0;
  setTimeout(refresh, REFRESH_MS);
}

window.addEventListener("pagehide", () => {
  for (const tile of tiles.values()) {
    tile.close();
  }
});
window.addEventListener("pageshow", (event) => {
  if (event.persisted) {
    location.reload();
  }
});

refresh();
