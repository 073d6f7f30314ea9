// @ts-check
/** Message lookup from the catalog the server renders into the page (#messages). */
import { readJson } from "./page.js";

/** @type {Record<string, string>} */
const catalog = readJson("messages");

/**
 * The message for `key`, with {placeholder}s filled from `values`. A missing key
 * shows the key itself, which is easy to spot and never crashes a lesson.
 * @param {string} key
 * @param {Record<string, string | number>} [values]
 * @returns {string}
 */
export function t(key, values = {}) {
  const text = catalog[key] ?? key;
  return format(text, values);
}

/**
 * @param {string} text
 * @param {Record<string, string | number>} values
 * @returns {string}
 */
export function format(text, values) {
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole,
  );
}

/**
 * A sentence for a server error code (docs/protocol.md, "Error codes").
 * @param {string} code
 * @returns {string}
 */
export function errorText(code) {
  const key = `error.${code}`;
  return key in catalog ? t(key) : t("error.unknown", { code });
}
