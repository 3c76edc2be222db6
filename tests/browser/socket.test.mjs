// The console's push client against a scripted /ws (the real service serves
// everything else): frames in the documented shape, hostile text, candidates,
// disconnects with resume, and replay gaps.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ringside, launch, newPage, login, shot } from './harness.mjs';

let rs;
let browser;
let me;

before(async () => {
  rs = new Ringside();
  me = rs.addUser('anna', 'Anna Ivanova', { ext: ['101'] });
  await rs.start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await rs?.stop();
});

const at = () => new Date().toISOString();

function card(id, name, extra = {}) {
  return {
    kind: 'contact',
    id,
    name,
    email: null,
    title: 'Purchasing',
    company: { id: 7, name: 'Romashka LLC' },
    owner: { id: 1, login: 'anna', name: 'Anna Ivanova' },
    tags: ['vip'],
    phones: [{ raw: '+7 916 123-45-67', e164: '+79161234567' }],
    activities: [{ id: 1, kind: 'note', body: 'Wants a demo', at: at(), author: { id: 1, name: 'Anna Ivanova' } }],
    deals: [{ id: 3, title: '40 seats', amount: 1200000, currency: 'RUB', stage: { id: 1, name: 'Proposal' }, pipeline: { id: 1, name: 'Sales' } }],
    tasks: [{ id: 4, title: 'Send contract', due_at: at() }],
    ...extra,
  };
}

function ringing(seq, callId, extra) {
  return {
    seq,
    type: 'call.ringing',
    at: at(),
    call_id: callId,
    agent: '101',
    caller: { number: '89161234567', e164: '+79161234567', name: null },
    queue: null,
    did: null,
    match: 'exact',
    contact: card(11, 'Pyotr Sidorov'),
    lead: null,
    company: null,
    candidates: [],
    reason: null,
    ...extra,
  };
}

/** Scripts /ws: records each connection's URL and hands out its server side. */
async function scriptSocket(page) {
  const conns = [];
  const waiters = [];
  await page.routeWebSocket(/\/ws/, (ws) => {
    conns.push(ws);
    ws.send(JSON.stringify({ type: 'hello', last_seq: 0, user: { id: me, login: 'anna', name: 'Anna Ivanova', role: 'agent', extension: '101' }, state: 'available' }));
    waiters.splice(0).forEach((w) => w());
  });
  return {
    conns,
    next: (n) =>
      new Promise((resolve) => {
        const check = () => (conns.length >= n ? resolve(conns[n - 1]) : waiters.push(check));
        check();
      }),
  };
}

test('a pushed card renders hostile caller text as text', async () => {
  const page = await newPage(browser);
  const sock = await scriptSocket(page);
  await login(page, rs.base, 'anna');
  const ws = await sock.next(1);
  ws.send(JSON.stringify(ringing(1, 'c-1', {
    caller: { number: '89161234567', e164: '+79161234567', name: '<img src=x onerror=alert(1)>' },
    contact: card(11, '<b onmouseover=alert(2)>Pyotr</b>'),
  })));
  const c = page.locator('.call-card');
  await c.waitFor();
  assert.equal(await c.locator('.caller-name').textContent(), '<img src=x onerror=alert(1)>');
  assert.equal(await c.locator('.party-name a').textContent(), '<b onmouseover=alert(2)>Pyotr</b>');
  assert.equal(await c.locator('img, b').count(), 0);
  // The caller's number as the card writes it, not the PBX's digits.
  assert.match(await c.locator('.caller-number').textContent(), /^\+7 916 123-45-67\b/);
  assert.match(await c.textContent(), /Romashka LLC/);
  assert.match(await c.textContent(), /40 seats/);
  await page.waitForTimeout(200);
  assert.deepEqual(page.dialogs, []);

  ws.send(JSON.stringify({ seq: 2, type: 'call.answered', at: at(), call_id: 'c-1', agent: '102', by_you: false }));
  await page.waitForSelector('.call-card.status-elsewhere');
  assert.match(await page.textContent('.call-card .pill'), /Answered by 102/);
  await page.waitForSelector('.call-card', { state: 'detached', timeout: 8000 });
  await page.context().close();
});

test('candidates are offered and the picked one is linked to the call', async () => {
  const page = await newPage(browser);
  const sock = await scriptSocket(page);
  let linked = null;
  await page.route('**/api/v1/calls/*/link', async (route) => {
    linked = { url: route.request().url(), body: route.request().postDataJSON() };
    await route.fulfill({ status: 200, contentType: 'application/json', body: '{}' });
  });
  await login(page, rs.base, 'anna');
  const ws = await sock.next(1);
  ws.send(JSON.stringify(ringing(1, 'c-2', { match: 'candidates', contact: null, candidates: [card(21, 'Ivan Petrov'), card(22, 'Maria Petrova')] })));
  await page.waitForSelector('.candidate');
  assert.deepEqual(await page.$$eval('.candidate-name', (e) => e.map((x) => x.textContent)), ['Ivan Petrov', 'Maria Petrova']);
  await shot(page, 'card-candidates');
  await page.click('.candidate >> nth=1');
  await page.waitForSelector('.call-card .party-name a');
  assert.equal(await page.textContent('.call-card .party-name a'), 'Maria Petrova');
  assert.match(linked.url, /\/calls\/c-2\/link$/);
  assert.deepEqual(linked.body, { contact_id: 22 });
  await page.context().close();
});

test('a dropped socket shows the offline banner and resumes after the last seq', async () => {
  const page = await newPage(browser);
  const sock = await scriptSocket(page);
  await login(page, rs.base, 'anna');
  const ws1 = await sock.next(1);
  ws1.send(JSON.stringify(ringing(5, 'c-3')));
  await page.waitForSelector('.call-card.status-ringing');
  await shot(page, 'popped-card-scripted');
  await ws1.close();
  await page.waitForSelector('#banner:not([hidden])');
  assert.match(await page.textContent('#banner'), /Offline/);
  const ws2 = await sock.next(2);
  assert.match(ws2.url(), /[?&]after=5(&|$)/, `resumes after seq 5: ${ws2.url()}`);
  await page.waitForSelector('#banner', { state: 'hidden' });
  ws2.send(JSON.stringify({ seq: 6, type: 'call.answered', at: at(), call_id: 'c-3', agent: '101', by_you: true }));
  await page.waitForSelector('.call-card.status-mine');
  // A frame replayed twice is applied once.
  ws2.send(JSON.stringify({ seq: 5, type: 'call.ringing', ...ringing(5, 'c-3') }));
  await page.waitForTimeout(200);
  assert.equal(await page.locator('.call-card.status-mine').count(), 1);

  ws2.send(JSON.stringify({ seq: 7, type: 'agent.state', at: at(), user_id: me, login: 'anna', name: 'Anna Ivanova', extension: '101', state: 'paused', reason: 'lunch' }));
  await page.waitForFunction(() => document.querySelector('#state-pill').classList.contains('state-paused'));
  assert.match(await page.textContent('#state-pill'), /lunch/);

  ws2.send(JSON.stringify({ seq: 8, type: 'call.ended', at: at(), call_id: 'c-3', disposition: 'answered' }));
  await page.waitForSelector('.call-card.status-ended');
  await page.keyboard.press('Escape');
  await page.waitForSelector('.call-card', { state: 'detached' });
  assert.equal(await page.locator('#recent .recent').count(), 1);
  await page.context().close();
});

test('a replay gap puts stale ringing cards away and says so', async () => {
  const page = await newPage(browser);
  const sock = await scriptSocket(page);
  await login(page, rs.base, 'anna');
  const ws = await sock.next(1);
  ws.send(JSON.stringify(ringing(1, 'c-4')));
  await page.waitForSelector('.call-card.status-ringing');
  ws.send(JSON.stringify({ type: 'replay.gap', after: 1, oldest: 40 }));
  await page.waitForSelector('.call-card', { state: 'detached' });
  await page.waitForSelector('.toast-warn');
  await page.context().close();
});
