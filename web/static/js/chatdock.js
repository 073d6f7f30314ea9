// The classroom page's chat: a panel that opens from a button, an unread count on
// the button while it is closed, and the newest messages shown for a moment as
// toasts over the picture (a classroom's screen is watched from across the room).

import { t } from "./i18n.js";
import { byId } from "./page.js";

const TOASTS = 3;
const TOAST_MS = 8000;

export class ChatDock {
  /** @param {import("./chat.js").ChatView} chat where the messages are listed */
  constructor(chat) {
    this.chat = chat;
    this.toggle = /** @type {HTMLButtonElement} */ (byId("chat-toggle"));
    this.panel = byId("chat-panel");
    this.unread = byId("chat-unread");
    this.toasts = byId("toasts");
    this.toggle.addEventListener("click", () => this.open(this.panel.hidden));
    byId("chat-close").addEventListener("click", () => this.open(false));
  }

  /** @param {import("./chat.js").ChatMessage} message */
  show(message) {
    this.chat.add(message);
    if (!this.panel.hidden) {
      return;
    }
    this.unread.textContent = String(Number(this.unread.textContent || "0") + 1);
    this.unread.hidden = false;
    const toast = document.createElement("li");
    toast.className = "toast";
    toast.dataset.role = message.role;
    const from = document.createElement("span");
    from.className = "toast-from";
    from.textContent = message.role === "teacher" ? t("chat.from_teacher", { name: message.from }) : message.from;
    const text = document.createElement("span");
    text.className = "toast-text";
    text.textContent = message.text;
    toast.append(from, text);
    this.toasts.append(toast);
    while (this.toasts.children.length > TOASTS) {
      this.toasts.firstElementChild?.remove();
    }
    setTimeout(() => toast.remove(), TOAST_MS);
  }

  /** @param {boolean} open */
  open(open) {
    this.panel.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
    if (open) {
      this.unread.textContent = "";
      this.unread.hidden = true;
      this.toasts.replaceChildren();
      document.getElementById("chat-input")?.focus();
    }
  }
}
