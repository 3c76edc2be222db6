// Every console page at a laptop (1366×768) and a phone (390×844), in
// English and Russian: a screenshot of each, and none wider than the
// screen, also with a 200-character name on the card, the contact page,
// search results, callbacks and leads. At the laptop size the answered
// call's note and disposition are on screen without scrolling the dock.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ringside, launch, newPage, login, shot } from './harness.mjs';

const CTI = 'layout-cti-token-0123456789';
const LONG = 'Konstantin ' + 'Wolfeschlegelsteinhausenbergerdorff-'.repeat(6);
const LONG_NAME = LONG.slice(0, 193) + 'Sidorov';

let rs;
let browser;
let contact;
let plain;
let calls = 0;

const VIEWPORTS = [
  { name: 'laptop', width: 1366, height: 768 },
  { name: 'phone', width: 390, height: 844 },
];
const AGENTS = [
  { locale: 'en', login: 'anna', ext: '101' },
  { locale: 'ru', login: 'boris', ext: '102' },
];

async function cti(ev) {
  const r = await fetch(`${rs.base}/api/v1/cti/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CTI}`, 'content-type': 'application/json' },
    body: JSON.stringify(ev),
  });
  assert.equal(r.status, 202, `cti ${ev.event}: ${await r.text()}`);
}

before(async () => {
  assert.equal(LONG_NAME.length, 200);
  rs = new Ringside();
  const anna = rs.addUser('anna', 'Anna Ivanova', { ext: ['101'] });
  const boris = rs.addUser('boris', 'Борис Смирнов', { ext: ['102'], locale: 'ru' });
  rs.addUser('boss', 'Olga Manager', { role: 'manager' });
  await rs.start({ RINGSIDE_CTI_TOKENS: `test=${CTI}` });
  browser = await launch();
  const boss = await rs.token('boss');
  contact = await rs.api(boss, 'POST', '/contacts', {
    name: LONG_NAME,
    company: 'Romashka LLC',
    email: 'konstantin@romashka.example',
    tags: ['vip', 'wholesale'],
    phones: [{ number: '+7 916 123-45-67' }],
  });
  plain = await rs.api(boss, 'POST', '/contacts', { name: 'Pyotr Sidorov', phones: [{ number: '+7 903 111-22-33' }] });
  // Nobody's: both agents see them.
  for (const c of [contact, plain]) await rs.api(boss, 'PATCH', `/contacts/${c.id}`, { owner_id: null });
  await rs.api(boss, 'POST', '/notes', { body: 'Asked for a quote on 40 seats', contact_id: contact.id });
  for (const [user, title] of [
    [anna, 'Call back about the quote for forty seats and the delivery to the warehouse'],
    [boris, 'Перезвонить по поводу счёта на сорок рабочих мест и доставки на склад'],
  ]) {
    await rs.api(boss, 'POST', '/tasks', { title, assignee_id: user, contact_id: contact.id, due_at: new Date(Date.now() - 3600e3).toISOString() });
    await rs.api(boss, 'POST', '/leads', { name: LONG_NAME, phone: '+49 30 1234567', manager_id: user });
    await rs.api(boss, 'POST', '/leads', { name: 'Hans Mueller', phone: '+49 40 7654321', manager_id: user });
  }
  // One finished call on the contact, for its Calls panel.
  await cti({ event: 'newCall', call_id: 'layout-0', from: '+79161234567', to: '4000', extension: '101' });
  await cti({ event: 'answer', call_id: 'layout-0', extension: '101' });
  await cti({ event: 'hangup', call_id: 'layout-0', cause: 16 });
});

after(async () => {
  await browser?.close();
  await rs?.stop();
});

/** Fails when the page scrolls sideways; names what sticks out. */
async function assertFits(page, what) {
  const r = await page.evaluate(() => {
    const vw = window.innerWidth;
    const wide = [];
    for (const el of document.querySelectorAll('body *')) {
      const b = el.getBoundingClientRect();
      if (b.width && b.right > vw + 1 && getComputedStyle(el).position !== 'fixed') wide.push(`${el.tagName.toLowerCase()}.${el.className}`);
    }
    return { scroll: document.documentElement.scrollWidth, vw, wide: wide.slice(0, 6) };
  });
  assert.ok(r.scroll <= r.vw, `${what}: ${r.scroll}px wide in a ${r.vw}px viewport (${r.wide.join(', ')})`);
}

/** Labels and values of field lists do not run into each other. */
async function assertFieldsClear(page, what) {
  const clash = await page.evaluate(() =>
    [...document.querySelectorAll('.field dt')]
      .filter((dt) => dt.offsetParent && dt.scrollWidth > dt.clientWidth + 1)
      .map((dt) => dt.textContent),
  );
  assert.deepEqual(clash, [], `${what}: labels wider than their column`);
}

for (const vp of VIEWPORTS) {
  for (const agent of AGENTS) {
    const tag = `${vp.name}-${agent.locale}`;
    test(`every page fits a ${vp.width}×${vp.height} screen in ${agent.locale}`, async () => {
      const page = await newPage(browser, { width: vp.width, height: vp.height, locale: agent.locale === 'ru' ? 'ru-RU' : 'en-US' });
      await page.goto(`${rs.base}/login`);
      await page.waitForSelector('body.ready');
      await assertFits(page, `${tag} login`);
      await shot(page, `layout-${tag}-login`);

      await login(page, rs.base, agent.login);
      await page.waitForSelector('.callback');
      await assertFits(page, `${tag} console`);
      // Callback titles read as lines, not a word a line.
      const titleWidth = await page.$eval('.callback-title', (e) => e.getBoundingClientRect().width);
      assert.ok(titleWidth >= Math.min(vp.width * 0.5, 300), `${tag}: callback title is ${titleWidth}px wide`);
      await shot(page, `layout-${tag}-console`);

      // A call pops and is answered: the card with the long name.
      const id = `layout-${++calls}`;
      await cti({ event: 'newCall', call_id: id, from: '+79161234567', to: '4000', extension: agent.ext });
      await page.waitForSelector('.call-card.status-ringing');
      await assertFits(page, `${tag} ringing card`);
      await cti({ event: 'answer', call_id: id, extension: agent.ext });
      await page.waitForSelector('.call-card.status-mine');
      await assertFits(page, `${tag} answered card`);
      await assertFieldsClear(page, `${tag} card`);
      if (vp.name === 'laptop') {
        // The note and the disposition are in sight without scrolling.
        const inView = await page.evaluate(() => {
          const dock = document.querySelector('.dock').getBoundingClientRect();
          const bottom = Math.min(window.innerHeight, dock.bottom);
          return ['.call-card .note', '.call-card select.disposition', '.call-card .wrapup button[type=submit]'].map((s) => {
            const b = document.querySelector(s).getBoundingClientRect();
            return { s, ok: b.top >= 0 && b.bottom <= bottom, bottom: b.bottom, limit: bottom };
          });
        });
        for (const x of inView) assert.ok(x.ok, `${tag}: ${x.s} ends at ${x.bottom}px, below the fold at ${x.limit}px`);
      }
      await shot(page, `layout-${tag}-card`);
      await cti({ event: 'hangup', call_id: id, cause: 16 });
      await page.waitForSelector('.call-card.status-ended');
      await page.keyboard.press('Escape');
      await page.waitForSelector('.call-card', { state: 'detached' });

      await page.goto(`${rs.base}/app/contacts/${contact.id}`);
      await page.waitForSelector('.timeline-item');
      await page.waitForSelector('.call-history, .contact-side p.muted');
      await assertFits(page, `${tag} contact`);
      await assertFieldsClear(page, `${tag} contact`);
      await shot(page, `layout-${tag}-contact`);

      await page.goto(`${rs.base}/app/search?q=Sidorov`);
      await page.waitForSelector('.results .result-name');
      assert.equal(await page.locator('.results .result').count(), 2);
      await assertFits(page, `${tag} search`);
      await shot(page, `layout-${tag}-search`);

      await page.goto(`${rs.base}/app/callbacks`);
      await page.waitForSelector('.callback');
      await assertFits(page, `${tag} callbacks`);
      await shot(page, `layout-${tag}-callbacks`);

      await page.goto(`${rs.base}/app/leads`);
      await page.waitForSelector('table.grid');
      await assertFits(page, `${tag} leads`);
      await shot(page, `layout-${tag}-leads`);
      assert.deepEqual(page.errors, []);
      await page.context().close();
    });
  }
}
