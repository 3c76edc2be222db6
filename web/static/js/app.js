// The agent console: top bar, pages, the push socket and screen-pop cards.

import { h, $, replace, typing } from './dom.js';
import { get, post, put, patch, ApiError } from './api.js';
import { t, setLocale, locale, translate, LOCALE_NAMES, fmtDateTime } from './i18n.js';
import { PushSocket } from './socket.js';
import { renderCard, tickCard, recentEntry, taskTitle } from './card.js';
import { homeView, contactView, callbacksView, leadsView, searchView } from './views.js';
import * as sound from './sound.js';

const PAUSE_REASONS = ['lunch', 'break', 'training', 'meeting', 'other'];
const KEEP_RECENT = 10;

const ctx = {
  me: null,
  dispositions: [],
  pipelines: [],
  calls: new Map(), // call id → call, newest last
  state: { state: 'offline', reason: null },
  toast,
  dial,
  closeCard,
  refreshCard: (call) => {
    renderCard(ctx, call);
    saveCalls();
  },
  onWrapup: () => {
    saveCalls();
    if (currentRoute().name === 'contact') route();
  },
};

let socket = null;

// ---------------------------------------------------------------- helpers

function toast(message, kind = 'info') {
  const box = $('#toasts');
  const el = h('div.toast', { class: `toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  box.append(el);
  setTimeout(() => el.classList.add('leaving'), 4000);
  setTimeout(() => el.remove(), 4500);
}

async function dial(number) {
  try {
    await post('/calls/dial', { number });
    toast(t('dial.started', { number }));
  } catch (e) {
    if (e instanceof ApiError && e.code === 'pbx_unavailable') toast(t('dial.no_pbx'), 'error');
    else toast(t('dial.failed', { message: e.message }), 'error');
  }
}

async function optional(path, fallback) {
  try {
    return await get(path);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return fallback;
    throw e;
  }
}

// ---------------------------------------------------------------- routing

function currentRoute() {
  const p = location.pathname.replace(/\/+$/, '');
  let m;
  if ((m = p.match(/^\/app\/contacts\/(\d+)$/))) return { name: 'contact', id: Number(m[1]) };
  if (p === '/app/callbacks') return { name: 'callbacks' };
  if (p === '/app/leads') return { name: 'leads' };
  if (p === '/app/search') return { name: 'search', q: new URLSearchParams(location.search).get('q') || '' };
  return { name: 'home' };
}

export function navigate(url) {
  if (url !== location.pathname + location.search) history.pushState(null, '', url);
  route();
}

async function route() {
  const r = currentRoute();
  const view = $('#view');
  for (const a of document.querySelectorAll('.nav a')) {
    a.classList.toggle('active', a.dataset.nav === r.name);
    if (a.dataset.nav === r.name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const title = { home: 'nav.console', callbacks: 'nav.callbacks', leads: 'nav.leads', search: 'nav.search', contact: 'nav.contact' }[r.name];
  document.title = `${t(title)} · Ringside`;
  if (r.name === 'search') $('#search').value = r.q;
  switch (r.name) {
    case 'contact':
      return contactView(ctx, view, r.id);
    case 'callbacks':
      return callbacksView(ctx, view);
    case 'leads':
      return leadsView(ctx, view);
    case 'search':
      return searchView(ctx, view, r.q);
    default:
      return homeView(ctx, view);
  }
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[href]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/app')) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);

// ---------------------------------------------------------------- agent state

function renderState() {
  const s = ctx.state;
  const pill = $('#state-pill');
  pill.className = `state-pill state-${s.state}`;
  pill.textContent = s.state === 'paused' && s.reason ? `${t('state.paused')}: ${t(`reason_pause.${s.reason}`)}` : t(`state.${s.state}`);
  const sel = $('#state-select');
  // Ringing, on a call, in wrap-up or offline come from the calls, not from a
  // choice: the select shows them as a disabled entry so it says what the pill says.
  const chosen = s.state === 'available' || s.state === 'paused';
  let derived = sel.querySelector('option.derived');
  sel.classList.toggle('derived', !chosen);
  if (chosen) {
    derived?.remove();
    sel.value = s.state === 'paused' ? `paused:${PAUSE_REASONS.includes(s.reason) ? s.reason : 'other'}` : 'available';
  } else {
    if (!derived) {
      derived = h('option.derived', { value: 'derived', disabled: true });
      sel.prepend(derived);
    }
    derived.textContent = t(`state.${s.state}`);
    sel.value = 'derived';
  }
}

function buildStateSelect() {
  const sel = $('#state-select');
  replace(
    sel,
    h('option', { value: 'available' }, t('state.available')),
    h(
      'optgroup',
      { label: t('state.pause') },
      PAUSE_REASONS.map((r) => h('option', { value: `paused:${r}` }, `${t('state.paused')}: ${t(`reason_pause.${r}`)}`)),
    ),
  );
  renderState();
}

async function changeState(value) {
  const [state, reason] = value.split(':');
  try {
    const res = await put('/me/state', { state, reason: reason || null });
    ctx.state = { state: res?.state || state, reason: res?.reason ?? reason ?? null };
  } catch (e) {
    // Refused during a call (409 `ringing`/`on_call`): say why in the agent's
    // language, and show the state the server really has.
    if (e instanceof ApiError && e.status === 409 && (e.code === 'on_call' || e.code === 'ringing')) {
      toast(e.code === 'on_call' ? t('state.refused_on_call') : t('state.refused_ringing'), 'error');
    } else {
      toast(t('state.failed', { message: e.message }), 'error');
    }
    try {
      const now = await get('/me/state');
      if (now?.state) ctx.state = { state: now.state, reason: now.reason ?? null };
    } catch {
      // The socket's next agent.state corrects it.
    }
  }
  renderState();
}

// ---------------------------------------------------------------- locale

function buildLocaleSelect() {
  const sel = $('#locale-select');
  replace(
    sel,
    Object.entries(LOCALE_NAMES).map(([code, name]) => h('option', { value: code, props: { selected: code === locale() } }, name)),
  );
}

async function changeLocale(code) {
  try {
    const me = await patch('/me', { locale: code });
    ctx.me = { ...ctx.me, ...me };
  } catch (e) {
    toast(e.message, 'error');
    return;
  }
  setLocale(code);
  relabel();
}

/** Re-renders every translated text after a locale change. */
function relabel() {
  translate();
  buildStateSelect();
  buildLocaleSelect();
  renderUser();
  renderNotifyButton();
  // Cards are rebuilt in the new language; a note being written is kept.
  const notes = new Map();
  for (const c of ctx.calls.values()) {
    if (!c.el) continue;
    notes.set(c.id, c.el.querySelector('.note')?.value || '');
    c.el.remove();
    c.el = null;
  }
  renderCalls();
  for (const [id, text] of notes) {
    const note = ctx.calls.get(id)?.el?.querySelector('.note');
    if (note) note.value = text;
  }
  route();
}

function renderUser() {
  const me = ctx.me;
  replace($('#user-name'), me.name);
  const ext = (me.extensions || []).join(', ');
  replace($('#user-ext'), ext ? t('top.ext', { ext }) : t('top.no_ext'));
}

function renderNotifyButton() {
  const b = $('#notify-btn');
  b.hidden = !sound.notificationsPending();
}

// ---------------------------------------------------------------- calls

const storeKey = () => `ringside.calls.${ctx.me.id}`;

function saveCalls() {
  const list = [...ctx.calls.values()].map(({ el, headEl, partyEl, formEl, closeTimer, notification, ...rest }) => rest);
  sessionStorage.setItem(storeKey(), JSON.stringify(list.slice(-(KEEP_RECENT + 5))));
}

function restoreCalls() {
  let list = [];
  try {
    list = JSON.parse(sessionStorage.getItem(storeKey()) || '[]');
  } catch {
    list = [];
  }
  const tooOld = Date.now() - 4 * 3600e3;
  for (const c of list) {
    if (c && c.id && c.ring && c.startedAt > tooOld) {
      ctx.calls.set(c.id, c);
      if (c.missed && !c.closed) keepMissed(c);
    }
  }
}

const isActive = (c) =>
  !c.closed &&
  (c.status === 'ringing' ||
    c.status === 'mine' ||
    c.status === 'handed' ||
    c.status === 'elsewhere' ||
    (c.status === 'ended' && (c.missed || (c.wasMine && !c.saved))));

/** A missed call's card goes to recent calls on its own after this long. */
const MISSED_KEEP_MS = 2 * 60e3;

function keepMissed(call) {
  clearTimeout(call.closeTimer);
  const left = (call.endedAt || Date.now()) + MISSED_KEEP_MS - Date.now();
  if (left <= 0) call.closed = true;
  else call.closeTimer = setTimeout(() => closeCard(call), left);
}

function renderCalls() {
  const active = [...ctx.calls.values()].filter(isActive).reverse();
  const recent = [...ctx.calls.values()].filter((c) => !isActive(c)).reverse().slice(0, KEEP_RECENT);
  const dock = $('#cards');
  // Update in place: moving a card's element would drop the focus of a note being typed.
  const wanted = new Set(active.map((c) => renderCard(ctx, c)));
  for (const el of [...dock.children]) if (!wanted.has(el)) el.remove();
  for (const el of [...wanted].reverse()) if (el.parentNode !== dock) dock.prepend(el);
  $('#no-calls').hidden = active.length > 0;
  document.body.classList.toggle('has-call', active.length > 0);
  const rec = $('#recent');
  replace(rec, recent.map((c) => recentEntry(ctx, c, reopen)));
  $('#recent-section').hidden = recent.length === 0;
  const ringing = active.some((c) => c.status === 'ringing');
  if (ringing) sound.startRinging();
  else sound.stopRinging();
}

function reopen(call) {
  call.closed = false;
  clearTimeout(call.closeTimer);
  if (call.status === 'ended') call.wasMine = true;
  call.saved = false;
  renderCalls();
  call.el?.focus();
}

function closeCard(call) {
  call.closed = true;
  clearTimeout(call.closeTimer);
  saveCalls();
  renderCalls();
}

function topCard() {
  return [...ctx.calls.values()].filter(isActive).pop();
}

function onRinging(f) {
  let call = ctx.calls.get(f.call_id);
  if (!call) {
    call = { id: f.call_id, ring: f, status: 'ringing', startedAt: Date.parse(f.at) || Date.now() };
    ctx.calls.set(f.call_id, call);
  } else {
    call.ring = f;
    if (call.status === 'ended') return;
  }
  renderCalls();
  saveCalls();
  const who = f.contact?.name || f.lead?.name || f.caller?.name || f.caller?.number || '';
  const n = sound.notify(t('call.incoming'), [who, f.caller?.number].filter(Boolean).join(' · '), f.call_id);
  if (n) call.notification = n;
}

function onAnswered(f) {
  const call = ctx.calls.get(f.call_id);
  if (!call) return;
  if (!call.wasMine || f.by_you) call.answeredAt = Date.parse(f.at) || Date.now();
  call.answeredBy = f.agent;
  if (f.by_you) {
    clearTimeout(call.closeTimer);
    call.closed = false;
    call.status = 'mine';
    call.wasMine = true;
    call.transferTo = null;
  } else if (call.wasMine) {
    // The agent talked and handed the call on: the card (note, disposition)
    // stays, saying where the call went.
    call.status = 'handed';
    call.handedAt = Date.parse(f.at) || Date.now();
    call.transferTo = call.transferTo || f.agent;
  } else {
    call.status = 'elsewhere';
    // Someone else took it: show who for a moment, then put it away.
    call.closeTimer = setTimeout(() => closeCard(call), 4000);
  }
  renderCalls();
  saveCalls();
  call.notification?.close();
  // The focus stays where the agent left it: `a` or Enter goes to the note.
}

/** The call moves to another agent: the target gets the caller's card; the one handing it on learns where it went. */
function onTransferred(f) {
  let call = ctx.calls.get(f.call_id);
  const { type, seq, by_you, from, to, kind, ...card } = f;
  if (by_you) {
    if (!call) {
      // An attended transfer may bring the call here without a ring for it.
      call = { id: f.call_id, ring: { ...card, agent: to }, status: 'ringing', startedAt: Date.parse(f.at) || Date.now() };
      ctx.calls.set(f.call_id, call);
    } else {
      clearTimeout(call.closeTimer);
      call.closed = false;
      if (call.status === 'elsewhere' || call.status === 'handed') call.status = 'ringing';
    }
    call.transferFrom = from;
    call.transferTo = null;
  } else {
    if (!call) return;
    call.transferTo = to;
  }
  call.transferKind = kind;
  renderCalls();
  saveCalls();
}

function onEnded(f) {
  const call = ctx.calls.get(f.call_id);
  if (!call) return;
  if (f.merged_into) {
    // A consultation folded into the call it transferred: that call's card
    // takes over; a note begun here moves there when it has none.
    const note = call.el?.querySelector('.note')?.value.trim() || '';
    const into = ctx.calls.get(f.merged_into)?.el?.querySelector('.note');
    if (note && into && !into.value.trim()) into.value = note;
    call.status = 'ended';
    call.disposition = f.disposition;
    call.endedAt = Date.parse(f.at) || Date.now();
    call.mergedInto = f.merged_into;
    if (!note || into) call.closed = true;
    call.notification?.close();
    renderCalls();
    saveCalls();
    return;
  }
  const wasElsewhere = call.status === 'elsewhere';
  call.status = 'ended';
  call.disposition = f.disposition;
  call.endedAt = Date.parse(f.at) || Date.now();
  if (wasElsewhere) call.closed = true;
  else if (!call.wasMine) {
    // Nobody answered here (busy, missed, the caller hung up): the card
    // stays so the agent sees who it was, until closed or for a while.
    call.missed = true;
    keepMissed(call);
  }
  call.notification?.close();
  renderCalls();
  saveCalls();
}

function onFrame(f) {
  switch (f.type) {
    case 'call.ringing':
      return onRinging(f);
    case 'call.answered':
      return onAnswered(f);
    case 'call.transferred':
      return onTransferred(f);
    case 'call.ended':
      return onEnded(f);
    case 'agent.state':
      if (f.user_id === ctx.me.id) {
        ctx.state = { state: f.state, reason: f.reason ?? null };
        renderState();
      }
      return;
    case 'task.created':
      if (f.task?.title) toast(t('task.assigned', { title: taskTitle(f.task) }));
      if (['home', 'callbacks'].includes(currentRoute().name)) route();
      return;
    case 'task.updated':
      if (['home', 'callbacks'].includes(currentRoute().name)) route();
      return;
    case 'lead.assigned':
      if (f.lead?.name) toast(t('lead.assigned', { name: f.lead.name }));
      if (currentRoute().name === 'leads') route();
      return;
    default:
      return;
  }
}

// ---------------------------------------------------------------- connection banner

let retryTicker = null;

function showOffline(detail) {
  const banner = $('#banner');
  banner.hidden = false;
  clearInterval(retryTicker);
  const update = () => {
    const secs = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
    $('#banner-text').textContent = secs > 0 ? t('conn.offline_in', { secs }) : t('conn.offline');
  };
  if (detail) update();
  retryTicker = setInterval(update, 500);
}

function showOnline() {
  clearInterval(retryTicker);
  $('#banner').hidden = true;
}

// ---------------------------------------------------------------- keyboard

function showHelp() {
  const d = $('#help');
  if (!d.open) d.showModal();
}

document.addEventListener('keydown', (ev) => {
  if (ev.defaultPrevented) return;
  const inField = typing(ev.target);
  if (ev.key === 'Escape') {
    if ($('#help').open) return;
    const card = ev.target.closest?.('.call-card');
    // In a card, Esc closes it unless that would drop a note not yet saved (then it only leaves the field).
    const unsaved = card && (card.querySelector('.note')?.value.trim() || '') !== '' && !card.querySelector('.wrapup.saved');
    if (inField && (!card || unsaved)) {
      ev.target.blur();
      return;
    }
    const call = card ? ctx.calls.get(card.dataset.callId) : topCard();
    if (call) {
      ev.preventDefault();
      closeCard(call);
    }
    return;
  }
  if (inField || ev.altKey || ev.ctrlKey || ev.metaKey) return;
  if (ev.key === '/') {
    ev.preventDefault();
    $('#search').focus();
    $('#search').select();
  } else if (ev.key === 'a' || (ev.key === 'Enter' && !ev.target.closest?.('button, a, summary'))) {
    const call = topCard();
    if (call?.el) {
      ev.preventDefault();
      call.el.querySelector('.note')?.focus();
    }
  } else if (ev.key === 'c') {
    navigate('/app/callbacks');
  } else if (ev.key === 'l') {
    navigate('/app/leads');
  } else if (ev.key === 'h') {
    navigate('/app');
  } else if (ev.key === '?') {
    showHelp();
  }
});

// ---------------------------------------------------------------- start

async function start() {
  sound.unlockAudio();
  try {
    ctx.me = await get('/me');
  } catch {
    return;
  }
  setLocale(ctx.me.locale);
  const [state, dispositions, pipelines] = await Promise.all([
    optional('/me/state', { state: 'available', reason: null }).catch(() => ({ state: 'available', reason: null })),
    optional('/dispositions', []).catch(() => []),
    optional('/pipelines', []).catch(() => []),
  ]);
  ctx.state = state;
  ctx.dispositions = dispositions;
  ctx.pipelines = pipelines;

  translate();
  buildStateSelect();
  buildLocaleSelect();
  renderUser();
  renderNotifyButton();
  $('#state-select').addEventListener('change', (ev) => changeState(ev.target.value));
  $('#locale-select').addEventListener('change', (ev) => changeLocale(ev.target.value));
  $('#notify-btn').addEventListener('click', async () => {
    await sound.askNotifications();
    renderNotifyButton();
  });
  $('#logout').addEventListener('click', async () => {
    try {
      await post('/auth/logout');
    } finally {
      sessionStorage.clear();
      location.assign('/login');
    }
  });
  $('#search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = $('#search').value.trim();
    if (q) navigate('/app/search?q=' + encodeURIComponent(q));
  });
  $('#banner-retry').addEventListener('click', () => socket.reconnectNow());
  $('#help-close').addEventListener('click', () => $('#help').close());
  $('#clock').textContent = fmtDateTime(new Date());

  restoreCalls();
  renderCalls();
  setInterval(() => {
    for (const c of ctx.calls.values()) if (c.el && isActive(c)) tickCard(c);
    $('#clock').textContent = fmtDateTime(new Date());
  }, 1000);

  socket = new PushSocket(ctx.me.id);
  socket.addEventListener('frame', (ev) => onFrame(ev.detail));
  socket.addEventListener('hello', (ev) => {
    showOnline();
    if (ev.detail.state) {
      ctx.state = { state: ev.detail.state, reason: ev.detail.reason ?? ctx.state.reason };
      renderState();
    }
  });
  socket.addEventListener('gap', () => {
    // Older events are gone: calls we still show as live may have ended meanwhile.
    for (const c of ctx.calls.values()) {
      if (c.status === 'ringing') c.closed = true;
    }
    renderCalls();
    saveCalls();
    toast(t('conn.gap'), 'warn');
  });
  socket.addEventListener('retry', (ev) => showOffline(ev.detail));
  socket.addEventListener('offline', () => showOffline());
  socket.addEventListener('online', showOnline);
  socket.start();
  document.body.classList.add('ready');
  await route();
}

start();
