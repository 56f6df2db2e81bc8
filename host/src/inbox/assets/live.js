// Live updates: the brand's Server-Sent Events read with fetch and a
// ReadableStream (EventSource cannot send an Authorization header).
// Reconnects with exponential back-off; a silent connection (no event and
// no keep-alive for WATCHDOG_MS) counts as dropped.

const WATCHDOG_MS = 45_000;
const MIN_DELAY_MS = 1_000;
const MAX_DELAY_MS = 30_000;

export class Live {
  /**
   * @param {object} o
   * @param {string} o.url the events route
   * @param {() => object} o.headers request headers (with the token)
   * @param {(name: string, data: string) => void} o.onEvent
   * @param {(state: string, detail?: string) => void} o.onState
   *   'connecting' | 'live' | 'reconnecting' | 'failed'
   */
  constructor({ url, headers, onEvent, onState }) {
    this.url = url;
    this.headers = headers;
    this.onEvent = onEvent;
    this.onState = onState;
    this.stopped = false;
    this.attempt = 0;
    this.controller = null;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.controller?.abort();
  }

  async connect() {
    if (this.stopped) return;
    this.onState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const controller = new AbortController();
    this.controller = controller;
    let watchdog = null;
    const kick = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => controller.abort(), WATCHDOG_MS);
    };
    try {
      kick();
      const response = await fetch(this.url, {
        headers: { ...this.headers(), Accept: 'text/event-stream' },
        cache: 'no-store',
        credentials: 'omit',
        signal: controller.signal,
      });
      if (response.status === 401 || response.status === 404) {
        let message = `${response.status}`;
        try {
          message = (await response.json()).error ?? message;
        } catch {
          // no JSON body
        }
        clearTimeout(watchdog);
        this.onState('failed', message);
        return; // retrying cannot help
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      this.attempt = 0;
      this.onState('live');
      this.onEvent('open', '');
      await this.read(response.body, kick);
      throw new Error('the stream ended');
    } catch (e) {
      clearTimeout(watchdog);
      if (this.stopped) return;
      this.attempt += 1;
      const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** (this.attempt - 1));
      const delay = base / 2 + Math.random() * (base / 2);
      this.onState('reconnecting', `${e.message}; again in ${Math.round(delay / 1000)}s`);
      this.timer = setTimeout(() => this.connect(), delay);
    }
  }

  /** Parses the event stream (the SSE wire format) until it ends. */
  async read(body, kick) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let name = '';
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      kick();
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
        if (line === '') {
          if (data.length > 0 || name) this.onEvent(name || 'message', data.join('\n'));
          name = '';
          data = [];
        } else if (line.startsWith(':')) {
          // a comment: keep-alive
        } else {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? '' : line.slice(colon + 1);
          if (val.startsWith(' ')) val = val.slice(1);
          if (field === 'event') name = val;
          else if (field === 'data') data.push(val);
        }
      }
    }
  }
}
