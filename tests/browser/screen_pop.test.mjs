// Screen pop end to end: a captured Asterisk trace is played by the fake AMI
// server, the real service matches the caller and pushes the card to the
// agent's browser while the phone still rings.
//
// The fake streams the trace as soon as the service logs in to it; `delay`
// holds the call back long enough for the browser to log in first.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Ringside, launch, newPage, login, shot } from './harness.mjs';

let rs;
let browser;

afterEach(async () => {
  await browser?.close();
  browser = null;
  await rs?.stop();
  rs = null;
});

/** Service + fake PBX playing `trace`, agent anna on 101, and the caller as a contact. */
async function setUp(trace, { speed, delay, caller, name, extra = [] }) {
  rs = new Ringside();
  rs.addUser('anna', 'Anna Ivanova', { ext: ['101'] });
  for (const [login, full, ext] of extra) rs.addUser(login, full, { ext: [ext] });
  const ami = await rs.startAmi(trace, { speed, delay });
  await rs.start({ RINGSIDE_AMI_URL: ami });
  const token = await rs.token('anna');
  const contact = await rs.api(token, 'POST', '/contacts', {
    name,
    company: 'Romashka LLC',
    tags: ['vip'],
    phones: [{ number: caller }],
  });
  await rs.api(token, 'POST', '/notes', { body: 'Wants a demo next week', contact_id: contact.id });
  browser = await launch();
  const page = await newPage(browser);
  await login(page, rs.base, 'anna');
  return { page, contact, token };
}

test('the card pops with the caller before the answer; the wrap-up lands on the timeline', async () => {
  const { page, contact } = await setUp('direct_answered.ami', {
    speed: 0.5,
    delay: 6,
    caller: '+7 916 123-45-67',
    name: 'Pyotr Sidorov',
  });
  const card = page.locator('.call-card');
  await card.waitFor({ timeout: 25000 });
  // Ringing lasts ~4 s at this pace: the card is there before anyone answered.
  assert.match(await card.getAttribute('class'), /status-ringing/);
  assert.equal(await card.locator('.party-name a').textContent(), 'Pyotr Sidorov');
  assert.match(await card.textContent(), /Romashka LLC/);
  assert.match(await card.textContent(), /Wants a demo next week/);
  await shot(page, 'popped-card');

  await page.waitForSelector('.call-card.status-mine', { timeout: 15000 });
  await page.evaluate(() => document.activeElement?.blur());
  await page.keyboard.press('a');
  assert.equal(await page.evaluate(() => document.activeElement.classList.contains('note')), true, '`a` focuses the note');
  await page.keyboard.type('Agreed on a demo on Tuesday');
  const codes = await page.$$eval('.call-card select.disposition option', (os) => os.map((o) => o.value).filter(Boolean));
  if (codes.length) await page.selectOption('.call-card select.disposition', codes[0]);
  await page.focus('.call-card .note');
  await page.keyboard.press('Control+Enter');
  await page.waitForSelector('.call-card .wrapup.saved', { timeout: 10000 });
  await shot(page, 'card-wrapped-up');

  // The call ends; the card moves to recent calls.
  await page.waitForSelector('#recent .recent', { timeout: 30000 });
  await page.goto(`${rs.base}/app/contacts/${contact.id}`);
  await page.waitForSelector('.timeline-item');
  assert.match(await page.textContent('.timeline'), /Agreed on a demo on Tuesday/);
  assert.deepEqual(page.dialogs, []);
});

test('a reload while the phone rings shows the card again', async () => {
  const { page } = await setUp('direct_answered.ami', {
    speed: 0.2,
    // `delay` is in recorded seconds: 2.4 at a fifth of the pace is 12 s.
    delay: 2.4,
    caller: '+7 916 123-45-67',
    name: 'Pyotr Sidorov',
  });
  await page.waitForSelector('.call-card.status-ringing', { timeout: 25000 });
  await page.reload();
  await page.waitForSelector('body.ready');
  const card = page.locator('.call-card');
  await card.waitFor({ timeout: 3000 });
  assert.equal(await card.locator('.party-name a').textContent(), 'Pyotr Sidorov');
  assert.match(await card.getAttribute('class'), /status-ringing/);
  // The resumed socket still delivers the answer to the restored card.
  await page.waitForSelector('.call-card.status-mine', { timeout: 20000 });
});

test('a queue call answered by a colleague shows who took it, then closes', async () => {
  const { page } = await setUp('queue_answered.ami', {
    speed: 0.5,
    delay: 6,
    caller: '+49 30 123456',
    name: 'Hans Mueller',
    extra: [['boris', 'Boris Smirnov', '102']],
  });
  const card = page.locator('.call-card');
  await card.waitFor({ timeout: 25000 });
  assert.equal(await card.locator('.party-name a').textContent(), 'Hans Mueller');
  assert.match(await card.textContent(), /sales/);
  await page.waitForSelector('.call-card.status-elsewhere', { timeout: 15000 });
  assert.match(await page.textContent('.call-card .pill'), /102/);
  await page.waitForSelector('.call-card', { state: 'detached', timeout: 15000 });
  assert.equal(await page.locator('#recent .recent').count(), 1);
});
