// @ts-check
/**
 * The lesson's text chat, as a list of messages and a box to write in. The same
 * view serves the teacher's side panel and the classroom's slide-out panel.
 */
import { errorText, t } from "./i18n.js";

/** The server's limit (server/chat.py). */
export const MAX_TEXT = 500;
/** Messages kept on the page; older ones scroll away for good. */
const KEEP = 200;

/**
 * @typedef {{from: string, role: string, text: string, time: number}} ChatMessage
 */

export class ChatView {
  /**
   * @param {{list: HTMLElement, form: HTMLFormElement | null, input: HTMLInputElement | null,
   *          notice: HTMLElement | null}} elements
   * @param {{send: (text: string) => boolean, mine: (message: ChatMessage) => boolean}} on
   */
  constructor(elements, on) {
    this.list = elements.list;
    this.form = elements.form;
    this.input = elements.input;
    this.notice = elements.notice;
    this.on = on;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.noticeTimer = undefined;
    if (this.input) {
      this.input.maxLength = MAX_TEXT;
    }
    this.form?.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  submit() {
    const text = this.input?.value.trim() ?? "";
    if (!text) {
      return;
    }
    if (this.on.send(text)) {
      if (this.input) {
        this.input.value = "";
      }
      this.say("");
    } else {
      this.say(t("chat.offline"));
    }
  }

  /**
   * @param {ChatMessage} message
   * @returns {HTMLElement}  the new entry
   */
  add(message) {
    const item = document.createElement("li");
    item.className = "chat-message";
    item.dataset.role = message.role;
    if (this.on.mine(message)) {
      item.dataset.mine = "true";
    }
    const head = document.createElement("p");
    head.className = "chat-head";
    const from = document.createElement("span");
    from.className = "chat-from";
    from.textContent = message.role === "teacher" ? t("chat.from_teacher", { name: message.from }) : message.from;
    const time = document.createElement("time");
    time.className = "chat-time";
    const date = new Date(message.time * 1000);
    time.dateTime = date.toISOString();
    time.textContent = date.toLocaleTimeString(document.documentElement.lang || undefined, {
      hour: "2-digit",
      minute: "2-digit",
    });
    head.append(from, time);
    const text = document.createElement("p");
    text.className = "chat-text";
    text.textContent = message.text;
    item.append(head, text);
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    this.list.append(item);
    while (this.list.children.length > KEEP) {
      this.list.firstElementChild?.remove();
    }
    if (atBottom || this.on.mine(message)) {
      this.list.scrollTop = this.list.scrollHeight;
    }
    this.list.dataset.empty = "false";
    return item;
  }

  /**
   * The server refused a message (too many, too long): say so for a while.
   * @param {string} code
   */
  refused(code) {
    this.say(code === "rate_limited" ? t("chat.rate_limited") : errorText(code));
  }

  /** @param {string} text */
  say(text) {
    if (!this.notice) {
      return;
    }
    clearTimeout(this.noticeTimer);
    this.notice.textContent = text;
    this.notice.hidden = !text;
    if (text) {
      this.noticeTimer = setTimeout(() => this.say(""), 6000);
    }
  }

  /** @param {boolean} enabled  whether messages can be sent now */
  enable(enabled) {
    for (const control of this.form?.elements ?? []) {
      /** @type {HTMLInputElement | HTMLButtonElement} */ (control).disabled = !enabled;
    }
  }
}
