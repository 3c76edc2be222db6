// A ring tone made with WebAudio (no audio file), and desktop notifications.

let ctx = null;

/** Browsers allow audio only after a user gesture: unlock on the first one. */
export function unlockAudio() {
  const unlock = () => {
    try {
      ctx = ctx || new AudioContext();
      if (ctx.state === 'suspended') ctx.resume();
    } catch {
      ctx = null;
    }
  };
  for (const ev of ['pointerdown', 'keydown']) window.addEventListener(ev, unlock, { once: true, capture: true });
}

/** One ring: two short bursts of a 440+480 Hz pair, like a phone. */
export function ringOnce() {
  if (!ctx || ctx.state !== 'running') return;
  const t0 = ctx.currentTime;
  const gain = ctx.createGain();
  gain.gain.value = 0;
  gain.connect(ctx.destination);
  for (const f of [440, 480]) {
    const o = ctx.createOscillator();
    o.frequency.value = f;
    o.connect(gain);
    o.start(t0);
    o.stop(t0 + 1.0);
  }
  for (const [start, end] of [[0, 0.4], [0.55, 0.95]]) {
    gain.gain.setValueAtTime(0, t0 + start);
    gain.gain.linearRampToValueAtTime(0.12, t0 + start + 0.02);
    gain.gain.setValueAtTime(0.12, t0 + end - 0.03);
    gain.gain.linearRampToValueAtTime(0, t0 + end);
  }
}

let ringTimer = null;

export function startRinging() {
  if (ringTimer) return;
  ringOnce();
  ringTimer = setInterval(ringOnce, 3000);
}

export function stopRinging() {
  clearInterval(ringTimer);
  ringTimer = null;
}

export function notificationsAvailable() {
  return 'Notification' in window;
}

export function notificationsPending() {
  return notificationsAvailable() && Notification.permission === 'default';
}

export async function askNotifications() {
  if (!notificationsAvailable()) return 'denied';
  return Notification.requestPermission();
}

/** Shows a desktop notification when the tab is hidden; clicking it focuses the tab. */
export function notify(title, body, tag) {
  if (!document.hidden || !notificationsAvailable() || Notification.permission !== 'granted') return null;
  try {
    const n = new Notification(title, { body, tag, renotify: true, requireInteraction: true });
    n.addEventListener('click', () => {
      window.focus();
      n.close();
    });
    return n;
  } catch {
    return null;
  }
}
