// Real calls (posted as CTI events, so they run through the same tracker and
// call log as an Asterisk call) as the agent sees them: the contact's call
// history, the card's activities, the keyboard on answer, missed calls,
// and everything the server sends by code shown in the agent's language.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ringside, launch, newPage, login, shot } from './harness.mjs';

const CTI = 'calls-cti-token-0123456789';

let rs;
let browser;
let boss;
let contact;
let seq = 0;

async function cti(ev) {
  const r = await fetch(`${rs.base}/api/v1/cti/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CTI}`, 'content-type': 'application/json' },
    body: JSON.stringify(ev),
  });
  assert.equal(r.status, 202, `cti ${ev.event}: ${await r.text()}`);
}

/** One whole answered call from `from` to extension `ext`; resolves when it is in the call log. */
async function answeredCall(from, ext) {
  const id = `call-${++seq}`;
  await cti({ event: 'newCall', call_id: id, from, to: '4000', extension: ext });
  await cti({ event: 'answer', call_id: id, extension: ext });
  await cti({ event: 'hangup', call_id: id, cause: 16 });
  await until(async () => (await rs.api(boss, 'GET', `/calls?limit=200`)).items.some((c) => c.call_id === `cti:test:${id}`));
  return id;
}

async function until(check, what = 'condition', ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A logged-in page whose push socket has said hello (so a ring now reaches it). */
async function agentPage(user, opts) {
  const page = await newPage(browser, opts);
  const hello = new Promise((resolve) =>
    page.on('websocket', (ws) => ws.on('framereceived', (f) => String(f.payload).includes('"hello"') && resolve())),
  );
  await login(page, rs.base, user);
  await hello;
  return page;
}

before(async () => {
  rs = new Ringside();
  rs.addUser('anna', 'Anna Ivanova', { ext: ['101'] });
  rs.addUser('boris', 'Борис Смирнов', { ext: ['102'], locale: 'ru' });
  rs.addUser('boss', 'Olga Manager', { role: 'manager' });
  await rs.start({ RINGSIDE_CTI_TOKENS: `test=${CTI}` });
  browser = await launch();
  boss = await rs.token('boss');
  contact = await rs.api(boss, 'POST', '/contacts', {
    name: 'Pyotr Sidorov',
    company: 'Romashka LLC',
    phones: [{ number: '+7 916 123-45-67' }],
  });
  await rs.api(boss, 'PATCH', `/contacts/${contact.id}`, { owner_id: null });
  await rs.api(boss, 'POST', '/notes', { body: 'Asked for a quote on 40 seats', contact_id: contact.id });
  // Six calls after the note: more than the card's five activities.
  for (let i = 0; i < 6; i++) await answeredCall('+79161234567', '101');
});

after(async () => {
  await browser?.close();
  await rs?.stop();
});

test("the contact page lists the contact's calls from the call log", async () => {
  const page = await agentPage('anna');
  await page.goto(`${rs.base}/app/contacts/${contact.id}`);
  await page.waitForFunction(
    () => document.querySelector('.call-history') || [...document.querySelectorAll('.contact-side p')].some((p) => p.textContent === 'No calls yet.'),
  );
  assert.equal(await page.locator('.call-history .call-row').count(), 6);
  assert.match(await page.textContent('.call-history'), /inbound/);
  await page.context().close();
});

test("the card keeps the agent's last note after a run of calls", async () => {
  const card = (await rs.api(boss, 'GET', `/lookup?number=${encodeURIComponent('+79161234567')}`)).contact;
  assert.ok(card.activities.length <= 5);
  assert.ok(card.activities.some((a) => a.kind === 'note' && a.body === 'Asked for a quote on 40 seats'), 'the note is on the card');
  const calls = card.activities.filter((a) => a.kind === 'call');
  assert.ok(calls.length >= 1);
  for (const a of calls) {
    assert.equal(a.direction, 'inbound');
    assert.equal(a.disposition, 'answered');
  }
  const at = card.activities.map((a) => Date.parse(a.at));
  assert.deepEqual(at, [...at].sort((x, y) => y - x), 'newest first');

  const page = await agentPage('anna');
  const id = `call-${++seq}`;
  await cti({ event: 'newCall', call_id: id, from: '+79161234567', to: '4000', extension: '101' });
  await page.waitForSelector('.call-card .timeline-item');
  assert.match(await page.textContent('.call-card .timeline'), /Asked for a quote on 40 seats/);
  assert.match(await page.textContent('.call-card .timeline'), /Inbound call, answered/);
  await cti({ event: 'hangup', call_id: id, cause: 16 });
  await page.context().close();
});

test('answering leaves the focus alone and `a` goes to the note without typing', async () => {
  const page = await agentPage('anna');
  const id = `call-${++seq}`;
  await cti({ event: 'newCall', call_id: id, from: '+79161234567', to: '4000', extension: '101' });
  await page.waitForSelector('.call-card.status-ringing');
  await page.focus('#search');
  await page.evaluate(() => document.activeElement.blur());
  await cti({ event: 'answer', call_id: id, extension: '101' });
  await page.waitForSelector('.call-card.status-mine');
  assert.equal(await page.evaluate(() => document.activeElement === document.body), true, 'the answer leaves the focus alone');
  await page.keyboard.press('a');
  assert.equal(await page.evaluate(() => document.activeElement.classList.contains('note')), true, '`a` focuses the note');
  assert.equal(await page.inputValue('.call-card .note'), '', 'the shortcut types nothing');
  await cti({ event: 'hangup', call_id: id, cause: 16 });
  await page.context().close();
});

test("a busy or missed call's card stays until the agent closes it", async () => {
  const page = await agentPage('anna');
  const id = `call-${++seq}`;
  await cti({ event: 'newCall', call_id: id, from: '+79161234567', to: '4000', extension: '101' });
  await page.waitForSelector('.call-card.status-ringing');
  await cti({ event: 'hangup', call_id: id, cause: 17 });
  await page.waitForSelector('.call-card.status-ended');
  assert.match(await page.textContent('.call-card .pill'), /Busy|Not answered|Caller hung up/);
  await page.waitForTimeout(1500);
  assert.equal(await page.locator('.call-card').count(), 1, 'still there 1.5 s after the end');
  assert.match(await page.textContent('.call-card .party-name'), /Pyotr Sidorov/);
  await shot(page, 'card-missed');
  await page.keyboard.press('Escape');
  await page.waitForSelector('.call-card', { state: 'detached' });
  assert.equal(await page.locator('#recent .recent').count(), 1);
  await page.context().close();
});

test('in Russian, calls, dispositions and leads are named in Russian', async () => {
  // A new caller becomes a lead; the manager hands it to boris.
  await answeredCall('+4930123456', '102');
  let lead;
  await until(async () => {
    lead = (await rs.api(boss, 'GET', '/leads?limit=200')).find((l) => l.phone_e164 === '+4930123456');
    return lead;
  }, 'the lead');
  await rs.api(boss, 'PATCH', `/leads/${lead.id}`, { manager_id: (await rs.api(await rs.token('boris'), 'GET', '/me')).id });

  const page = await agentPage('boris', { locale: 'ru-RU' });
  const id = `call-${++seq}`;
  await cti({ event: 'newCall', call_id: id, from: '+79161234567', to: '4000', extension: '102' });
  await page.waitForSelector('.call-card .timeline-item');
  const timeline = await page.textContent('.call-card .timeline');
  assert.match(timeline, /Входящий звонок, принят/);
  assert.doesNotMatch(timeline, /inbound|answered/);
  const options = await page.$$eval('.call-card select.disposition option', (os) => os.map((o) => o.textContent));
  assert.ok(options.includes('Продажа'), `dispositions in Russian: ${options}`);
  assert.ok(options.includes('Ошиблись номером'));
  await shot(page, 'card-ru');
  await cti({ event: 'hangup', call_id: id, cause: 16 });
  await page.waitForSelector('.call-card.status-ended');
  await page.keyboard.press('Escape');

  await page.goto(`${rs.base}/app/contacts/${contact.id}`);
  await page.waitForSelector('.call-history');
  assert.match(await page.textContent('.contact-main .timeline'), /Входящий звонок, принят/);
  assert.doesNotMatch(await page.textContent('.contact-main .timeline'), /inbound call/);

  await page.goto(`${rs.base}/app/leads`);
  await page.waitForSelector('table.grid');
  const row = await page.textContent('table.grid tbody');
  assert.match(row, /\+49 30 123456/, 'the number written for people');
  assert.match(row, /новый/);
  assert.match(row, /звонок/);
  assert.equal(await page.locator('table.grid tbody .dial').count(), 1);
  await shot(page, 'leads-ru');

  // Search results: every number has a call button.
  await page.goto(`${rs.base}/app/search?q=Sidorov`);
  await page.waitForSelector('.results .result-name');
  assert.equal(await page.locator('.results .result .dial').count(), 1);
  await page.goto(`${rs.base}/app/search?q=${encodeURIComponent('+49 30 123456')}`);
  await page.waitForSelector('.results .result');
  assert.match(await page.textContent('.results'), /\+49 30 123456/);
  assert.equal(await page.locator('.results .result .dial').count(), 1);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('the login page loads without a console error, and sends a signed-in browser on', async () => {
  const page = await newPage(browser);
  const problems = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('response', (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
  await page.goto(`${rs.base}/login`);
  await page.waitForSelector('body.ready');
  await page.waitForTimeout(300);
  assert.deepEqual(problems, []);
  await login(page, rs.base, 'anna');
  await page.goto(`${rs.base}/login?next=${encodeURIComponent('/app/leads')}`);
  await page.waitForURL(/\/app\/leads$/);
  await page.goto(`${rs.base}/login?next=${encodeURIComponent('//evil.example/app')}`);
  await page.waitForURL(/\/app$/);
  assert.deepEqual(problems, []);
  await page.context().close();
});
