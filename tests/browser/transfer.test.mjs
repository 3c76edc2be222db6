// Transfers and the agent's state as the console shows them: the agent who
// talked keeps the card after handing the call on, the target gets the
// caller's card (also without a ring of their own), an agent it only rang
// has the card put away; the status switch says what the server says and a
// refused change is explained. Calls are posted as CTI events, so they run
// through the same tracker as an Asterisk call.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ringside, launch, newPage, login, shot } from './harness.mjs';

const CTI = 'transfer-cti-token-0123456789';

let rs;
let browser;
let boss;
let seq = 0;

async function cti(ev) {
  const r = await fetch(`${rs.base}/api/v1/cti/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CTI}`, 'content-type': 'application/json' },
    body: JSON.stringify(ev),
  });
  assert.equal(r.status, 202, `cti ${ev.event}: ${await r.text()}`);
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

/** The text of the status switch's chosen entry and of the status pill. */
const stateTexts = (page) =>
  page.evaluate(() => ({
    select: document.querySelector('#state-select').selectedOptions[0]?.textContent,
    pill: document.querySelector('#state-pill').textContent,
  }));

before(async () => {
  rs = new Ringside();
  rs.addUser('anna', 'Anna Ivanova', { ext: ['101'] });
  rs.addUser('boris', 'Борис Смирнов', { ext: ['102'], locale: 'ru' });
  rs.addUser('dina', 'Dina Kovalenko', { ext: ['104'] });
  rs.addUser('boss', 'Olga Manager', { role: 'manager' });
  await rs.start({ RINGSIDE_CTI_TOKENS: `test=${CTI}` });
  browser = await launch();
  boss = await rs.token('boss');
  const contact = await rs.api(boss, 'POST', '/contacts', {
    name: 'Pyotr Sidorov',
    company: 'Romashka LLC',
    phones: [{ number: '+7 916 123-45-67' }],
  });
  await rs.api(boss, 'PATCH', `/contacts/${contact.id}`, { owner_id: null });
});

after(async () => {
  await browser?.close();
  await rs?.stop();
});

test('a blind transfer: the agent who talked keeps the card and note, the target gets it, one who only rang has it put away', async () => {
  const anna = await agentPage('anna');
  const boris = await agentPage('boris', { locale: 'ru-RU' });
  const dina = await agentPage('dina');
  const id = `call-${++seq}`;
  await cti({ event: 'newCall', call_id: id, from: '+79161234567', to: '4000', extension: '101' });
  await cti({ event: 'answer', call_id: id, extension: '101' });
  await anna.waitForSelector('.call-card.status-mine');
  await anna.fill('.call-card .note', 'Wants 40 seats, passing to sales');

  // The status switch says what the pill says while on the call.
  await anna.waitForFunction(() => document.querySelector('#state-pill').textContent === 'On call');
  let st = await stateTexts(anna);
  assert.equal(st.select, 'On call', `the select says what the pill says: ${JSON.stringify(st)}`);

  // Anna hands the call on: Boris's and Dina's phones ring, Boris answers.
  await cti({ event: 'newCall', call_id: id, from: '+79161234567', to: '4000', extension: '102' });
  await cti({ event: 'newCall', call_id: id, from: '+79161234567', to: '4000', extension: '104' });
  await boris.waitForSelector('.call-card.status-ringing');
  await dina.waitForSelector('.call-card.status-ringing');

  // A status change while the phone rings is refused, said in Russian, and the select shows the real state.
  await boris.waitForFunction(() => document.querySelector('#state-pill').textContent === 'Звонит');
  await boris.selectOption('#state-select', 'paused:lunch');
  await boris.waitForSelector('.toast-error');
  assert.match(await boris.textContent('.toast-error'), /Звонит телефон/);
  await boris.waitForFunction(() => document.querySelector('#state-select').selectedOptions[0]?.textContent === 'Звонит');
  st = await stateTexts(boris);
  assert.equal(st.select, st.pill);

  await cti({ event: 'answer', call_id: id, extension: '102' });
  await boris.waitForSelector('.call-card.status-mine');
  assert.match(await boris.textContent('.call-card .party-name'), /Pyotr Sidorov/);
  assert.match(await boris.textContent('.call-card .call-transfer'), /Переведён с доб\. 101/);

  // Dina only rang: her card goes away as before.
  await dina.waitForSelector('.call-card', { state: 'detached', timeout: 15000 });
  // Anna talked: hers stays, with her note and where the call went.
  assert.equal(await anna.locator('.call-card').count(), 1, "the agent who talked keeps the card after Dina's went away");
  assert.equal(await anna.inputValue('.call-card .note'), 'Wants 40 seats, passing to sales');
  assert.match(await anna.textContent('.call-card .call-transfer'), /Transferred to ext\. 102/);
  assert.match(await anna.textContent('.call-card .party-name'), /Pyotr Sidorov/);
  await anna.setViewportSize({ width: 1366, height: 768 });
  await shot(anna, 'transfer-handed-en-1366');
  await anna.setViewportSize({ width: 390, height: 844 });
  await shot(anna, 'transfer-handed-en-390');
  await boris.setViewportSize({ width: 1366, height: 768 });
  await shot(boris, 'transfer-target-ru-1366');
  await boris.setViewportSize({ width: 390, height: 844 });
  await shot(boris, 'transfer-target-ru-390');

  await cti({ event: 'hangup', call_id: id, cause: 16 });
  await anna.waitForSelector('.call-card.status-ended');
  await boris.waitForSelector('.call-card.status-ended');
  // The note is saved from the card after the call has left her.
  await anna.selectOption('.call-card select.disposition', 'sale');
  await anna.click('.call-card .wrapup button[type=submit]');
  await anna.waitForSelector('.call-card .wrapup.saved');
  assert.match(await anna.textContent('.call-card .call-transfer'), /Transferred to ext\. 102/);
  for (const p of [anna, boris, dina]) {
    assert.deepEqual(p.errors, []);
    await p.context().close();
  }
});

test('a call taken over without a ring of its own still brings the card; a refused change says why', async () => {
  const anna = await agentPage('anna');
  const boris = await agentPage('boris', { locale: 'ru-RU' });
  const id = `call-${++seq}`;
  await cti({ event: 'newCall', call_id: id, from: '+79161234567', to: '4000', extension: '101' });
  await cti({ event: 'answer', call_id: id, extension: '101' });
  await anna.waitForSelector('.call-card.status-mine');

  await anna.waitForFunction(() => document.querySelector('#state-pill').textContent === 'On call');
  await anna.selectOption('#state-select', 'paused:lunch');
  await anna.waitForSelector('.toast-error');
  assert.match(await anna.textContent('.toast-error'), /You are on a call/);
  await anna.waitForFunction(() => document.querySelector('#state-select').selectedOptions[0]?.textContent === 'On call');
  await anna.setViewportSize({ width: 1366, height: 768 });
  await shot(anna, 'state-refused-en-1366');

  // Boris's phone never rang for the customer's call: he picked it up from Anna.
  await cti({ event: 'answer', call_id: id, extension: '102' });
  await boris.waitForSelector('.call-card.status-mine');
  assert.match(await boris.textContent('.call-card .party-name'), /Pyotr Sidorov/);
  assert.match(await boris.textContent('.call-card .call-transfer'), /Переведён с доб\. 101/);
  await boris.waitForFunction(() => document.querySelector('#state-pill').textContent === 'Разговор');
  const st = await stateTexts(boris);
  assert.equal(st.select, 'Разговор', `the select says what the pill says: ${JSON.stringify(st)}`);
  await anna.waitForSelector('.call-card.status-handed');

  await cti({ event: 'hangup', call_id: id, cause: 16 });
  await anna.waitForSelector('.call-card.status-ended');
  // Wrap-up follows the call: the select says so, in Russian too.
  await boris.waitForFunction(() => document.querySelector('#state-pill').textContent === 'Постобработка');
  assert.equal((await stateTexts(boris)).select, 'Постобработка');
  await boris.setViewportSize({ width: 390, height: 844 });
  await shot(boris, 'state-wrapup-ru-390');
  // Choosing a state in wrap-up ends it.
  await boris.selectOption('#state-select', 'available');
  await boris.waitForFunction(() => document.querySelector('#state-pill').textContent === 'На линии');
  assert.equal((await stateTexts(boris)).select, 'На линии');
  assert.equal(await boris.locator('#state-select option.derived').count(), 0);
  for (const p of [anna, boris]) {
    assert.deepEqual(p.errors, []);
    await p.context().close();
  }
});
