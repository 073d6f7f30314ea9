// @ts-check
/** What every page script reads from its page: JSON blocks and the status line. */

/**
 * Parse a <script type="application/json" id="..."> block rendered by the server.
 * @param {string} id
 * @returns {any}
 */
export function readJson(id) {
  const element = document.getElementById(id);
  if (!element || !element.textContent) {
    return {};
  }
  return JSON.parse(element.textContent);
}

/**
 * @typedef {{lesson: string, role: string, name: string, token: string}} PageConfig
 * @returns {PageConfig}
 */
export function pageConfig() {
  return readJson("page");
}

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) {
    throw new Error(`the page has no #${id}`);
  }
  return element;
}

/** The status line: a state that CSS and tests read, a sentence and a detail. */
export class StatusLine {
  /**
   * @param {HTMLElement} element  carries data-state
   * @param {HTMLElement} text
   * @param {HTMLElement} detail
   */
  constructor(element, text, detail) {
    this.element = element;
    this.text = text;
    this.detail = detail;
  }

  /**
   * @param {string} state
   * @param {string} text
   * @param {string} [detail]
   */
  show(state, text, detail = "") {
    this.element.dataset.state = state;
    document.body.dataset.state = state;
    if (this.text.textContent !== text) {
      this.text.textContent = text;
    }
    if (this.detail.textContent !== detail) {
      this.detail.textContent = detail;
    }
  }
}
