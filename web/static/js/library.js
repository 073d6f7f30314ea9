// @ts-check
/**
 * The library page: the list is rendered by the server; this script only keeps
 * the progress of lessons still being processed up to date, from /api/library.
 */
import { t } from "./i18n.js";
import { readJson } from "./page.js";

const POLL_MS = 2000;

/** @type {{token: string, search: string}} */
const config = readJson("page");

/** @returns {HTMLElement[]} cards whose renditions are queued or being made */
function waiting() {
  /** @type {HTMLElement[]} */
  const cards = [];
  for (const card of document.querySelectorAll(".lesson-card")) {
    const state = card instanceof HTMLElement ? card.dataset.state : "";
    if (state === "pending" || state === "processing") {
      cards.push(/** @type {HTMLElement} */ (card));
    }
  }
  return cards;
}

/**
 * @param {HTMLElement} card
 * @param {any} lesson  one entry of GET /api/library
 */
function update(card, lesson) {
  card.dataset.state = lesson.state;
  const job = /** @type {HTMLElement | null} */ (card.querySelector(".job"));
  const state = card.querySelector(".job-state");
  const bar = /** @type {HTMLProgressElement | null} */ (card.querySelector(".job-progress"));
  const percent = card.querySelector(".job-percent");
  if (state) {
    state.textContent = t(`library.state.${lesson.state}`);
  }
  const value = lesson.progress ? lesson.progress.percent : lesson.state === "ready" ? 100 : 0;
  if (bar) {
    bar.value = value;
  }
  if (percent) {
    percent.textContent = lesson.progress ? t("library.progress", { percent: value }) : "";
  }
  if (job) {
    job.hidden = lesson.state === "ready";
  }
  const thumb = card.querySelector(".thumb");
  if (lesson.files && lesson.files.thumbnail && thumb && !thumb.querySelector("img")) {
    const img = document.createElement("img");
    img.src = lesson.files.thumbnail;
    img.alt = "";
    thumb.append(img);
  }
}

async function poll() {
  const cards = waiting();
  if (!cards.length) {
    return;
  }
  const params = new URLSearchParams(config.search);
  params.set("limit", "200");
  try {
    const response = await fetch(`/api/library?${params}`, { cache: "no-store" });
    if (response.ok) {
      const body = await response.json();
      /** @type {Map<string, any>} */
      const byId = new Map(body.lessons.map((/** @type {any} */ l) => [l.id, l]));
      for (const card of cards) {
        const lesson = byId.get(card.dataset.lesson ?? "");
        if (lesson) {
          update(card, lesson);
        }
      }
    }
  } catch (error) {
    console.warn("library: progress not refreshed:", error);
  }
  setTimeout(poll, POLL_MS);
}

setTimeout(poll, POLL_MS);
