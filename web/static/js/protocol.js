// @ts-check
/**
 * The signalling client (docs/protocol.md): one WebSocket to the page's own origin,
 * join first, then offers, candidates and keep-alive pings. No DOM code here; the
 * page scripts decide what to show.
 */

export const PING_INTERVAL_MS = 20_000;
/** Our own close code for a socket given up on because the server went silent:
 * a cut network cable can leave TCP believing for minutes that all is well. */
export const CLOSE_SILENT = 4000;
/** A socket that stayed joined this long was a lesson going well: when it drops,
 * the reconnection starts from the first delay, whatever failed in between (the
 * media connection usually gives up first, on the same outage). */
export const STABLE_MS = 10_000;

/**
 * @typedef {{type: string, [field: string]: any}} Message
 * @typedef {{code: string, message: string, fatal?: boolean}} ServerError
 * @typedef {{code: number, reason: string, fatal: ServerError | null, joined: boolean, joinedFor: number}} CloseInfo
 * @typedef {{
 *   joined?: (message: Message) => void,
 *   state?: (message: Message) => void,
 *   answer?: (message: Message) => void,
 *   stats?: (message: Message) => void,
 *   chat?: (message: Message) => void,
 *   error?: (error: ServerError) => void,
 *   close?: (info: CloseInfo) => void,
 * }} Handlers
 */

/**
 * ws:// or wss:// to /ws on the page's own host, matching the page's protocol.
 * @param {{protocol: string, host: string}} location
 * @returns {string}
 */
export function signallingUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/**
 * Whether a closed socket may be opened again by itself. Fatal errors mean the
 * link itself is refused (expired, replaced, full), so retrying cannot help;
 * the one exception is a server that is restarting.
 * @param {ServerError | null} fatal
 * @returns {boolean}
 */
export function mayReconnect(fatal) {
  return fatal === null || fatal.code === "shutdown";
}

export class Signalling {
  /**
   * @param {{url: string, token: string, lesson?: string, role?: string}} options
   * @param {Handlers} handlers
   */
  constructor(options, handlers) {
    this.options = options;
    this.handlers = handlers;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {ServerError | null} */
    this.fatal = null;
    this.joined = false;
    this.joinedAt = 0;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.pinger = undefined;
    this.lastHeard = 0;
    this.pingSent = 0;
  }

  open() {
    const ws = new WebSocket(this.options.url);
    this.ws = ws;
    ws.onopen = () => {
      this.lastHeard = Date.now();
      this.pingSent = 0;
      const { token, lesson, role } = this.options;
      this.send({ type: "join", token, lesson, role });
      this.pinger = setInterval(() => this.keepAlive(), PING_INTERVAL_MS);
    };
    ws.onmessage = (event) => {
      this.lastHeard = Date.now();
      if (typeof event.data === "string") {
        this.dispatch(event.data);
      }
    };
    ws.onclose = (event) => this.closed(event.code, event.reason);
    // An "error" event is always followed by "close", which does the work.
    ws.onerror = () => {};
  }

  /** @param {Message} message */
  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  /**
   * @param {string} sdp
   * @param {string[]} [media]  what each m-line carries, in order ("send:camera", ...)
   */
  offer(sdp, media) {
    return this.send({ type: "offer", sdp, media });
  }

  /** @param {{candidate: string, sdpMid: string | null, sdpMLineIndex: number | null} | null} candidate */
  candidate(candidate) {
    return this.send({ type: "candidate", candidate });
  }

  stop() {
    return this.send({ type: "stop" });
  }

  /** Leave the lesson for good (the page is closing); no close callback follows. */
  leave() {
    this.send({ type: "leave" });
    this.close();
  }

  /** Close the socket without calling the close handler. */
  close() {
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.pinger);
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.close(1000);
    }
  }

  /** Ping; give up on a socket whose previous ping, a whole interval ago, is still
   * unanswered. (Measured from our own ping, not from the last message, because
   * browsers run timers in hidden tabs as rarely as once a minute.) */
  keepAlive() {
    const now = Date.now();
    const unanswered = this.pingSent > 0 && this.lastHeard < this.pingSent;
    if (unanswered && now - this.pingSent >= PING_INTERVAL_MS) {
      // Do not wait for a closing handshake that a dead link never completes.
      const ws = this.ws;
      if (ws) {
        ws.onclose = null;
        ws.close();
      }
      this.closed(CLOSE_SILENT, "the server stopped answering");
      return;
    }
    if (!unanswered && this.send({ type: "ping" })) {
      this.pingSent = now;
    }
  }

  /** @param {string} text */
  dispatch(text) {
    /** @type {Message} */
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      console.warn("signalling: ignoring a message that is not JSON");
      return;
    }
    switch (message.type) {
      case "joined":
        this.joined = true;
        this.joinedAt = Date.now();
        this.handlers.joined?.(message);
        break;
      case "state":
        this.handlers.state?.(message);
        break;
      case "answer":
        this.handlers.answer?.(message);
        break;
      case "stats":
        this.handlers.stats?.(message);
        break;
      case "chat":
        this.handlers.chat?.(message);
        break;
      case "error": {
        /** @type {ServerError} */
        const error = { code: String(message.code), message: String(message.message ?? "") };
        if (message.fatal) {
          error.fatal = true;
          this.fatal = error;
        }
        this.handlers.error?.(error);
        break;
      }
      case "pong":
        break;
      default:
        // Newer servers may send more; an old page ignores what it does not know.
        break;
    }
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  closed(code, reason) {
    clearInterval(this.pinger);
    if (this.ws === null) {
      return;
    }
    this.ws = null;
    const joinedFor = this.joined ? Date.now() - this.joinedAt : 0;
    this.handlers.close?.({ code, reason, fatal: this.fatal, joined: this.joined, joinedFor });
  }
}

/** Reconnection attempts about a second apart, before the delay grows (a minute:
 * the server keeps a seat that long). */
export const RECONNECT_STEADY = 45;

/**
 * Delays between reconnection attempts: about 1 s for the first `steady` attempts
 * (a school line that drops for a few seconds is back in the lesson within a
 * second of returning, instead of waiting out a delay that grew while it was
 * down), then 2, 4, 8, then 15 s; each ±25 %.
 */
export class Backoff {
  /**
   * @param {number} [firstMs]
   * @param {number} [maxMs]
   * @param {number} [steady] attempts made at `firstMs` before the delay grows
   */
  constructor(firstMs = 1000, maxMs = 15_000, steady = 0) {
    this.firstMs = firstMs;
    this.maxMs = maxMs;
    this.steady = steady;
    this.attempt = 0;
  }

  /** @returns {number} milliseconds to wait before the next attempt */
  next() {
    const growth = Math.max(0, this.attempt - this.steady);
    const delay = Math.min(this.maxMs, this.firstMs * 2 ** growth);
    this.attempt += 1;
    return delay * (0.75 + Math.random() * 0.5);
  }

  reset() {
    this.attempt = 0;
  }
}
