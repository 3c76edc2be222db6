// The push socket: cookie-authenticated /ws, resumes after the last seen
// `seq` (kept in sessionStorage, so a reload resumes too), reconnects with
// exponential backoff and jitter.

const MIN_DELAY = 500;
const MAX_DELAY = 30000;

export class PushSocket extends EventTarget {
  constructor(userId) {
    super();
    this.key = `ringside.seq.${userId}`;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.online = false;
    this.stopped = false;
    this.retryAt = 0;
  }

  get lastSeq() {
    const v = Number(sessionStorage.getItem(this.key));
    return Number.isFinite(v) && v > 0 ? v : 0;
  }

  set lastSeq(v) {
    sessionStorage.setItem(this.key, String(v));
  }

  start() {
    this.stopped = false;
    this.connect();
    window.addEventListener('online', () => this.reconnectNow());
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && !this.online) this.reconnectNow();
    });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
  }

  reconnectNow() {
    if (this.stopped || this.online) return;
    clearTimeout(this.timer);
    this.connect();
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const after = this.lastSeq;
    return `${proto}//${location.host}/ws${after ? `?after=${after}` : ''}`;
  }

  connect() {
    if (this.ws) {
      this.ws.onclose = null;
      try {
        this.ws.close();
      } catch {
        /* already closed */
      }
    }
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.addEventListener('message', (ev) => this.onMessage(ev));
    ws.addEventListener('close', () => {
      if (this.ws !== ws) return;
      this.setOnline(false);
      this.scheduleRetry();
    });
  }

  scheduleRetry() {
    if (this.stopped) return;
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
    // Full jitter: spread reconnecting tabs after a server restart.
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.dispatchEvent(new CustomEvent('retry', { detail: { delay, attempt: this.attempt } }));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  setOnline(on) {
    if (this.online === on) return;
    this.online = on;
    this.dispatchEvent(new CustomEvent(on ? 'online' : 'offline'));
  }

  onMessage(ev) {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!msg || typeof msg.type !== 'string') return;
    if (msg.type === 'hello') {
      this.attempt = 0;
      this.setOnline(true);
      // The server's counter restarted below what we saw: start over from it.
      if (typeof msg.last_seq === 'number' && msg.last_seq < this.lastSeq) this.lastSeq = msg.last_seq;
      this.dispatchEvent(new CustomEvent('hello', { detail: msg }));
      return;
    }
    if (msg.type === 'replay.gap') {
      this.dispatchEvent(new CustomEvent('gap', { detail: msg }));
      return;
    }
    if (typeof msg.seq === 'number') {
      if (msg.seq <= this.lastSeq) return; // already handled (replayed twice)
      this.lastSeq = msg.seq;
    }
    this.dispatchEvent(new CustomEvent('frame', { detail: msg }));
  }
}
