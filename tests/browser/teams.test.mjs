// What the console shows of what the server keeps from an agent: another
// team's contact found by number (a limited card, no link into a page that
// answers 403), that page opened anyway, a list the server refuses; the
// lists it asks for stay within each route's limit; and the callback made
// for a missed call titled in the agent's language.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ringside, launch, newPage, login, shot } from './harness.mjs';

const CTI = 'teams-cti-token-0123456789';

let rs;
let browser;
let boss;
let secret;

async function cti(ev) {
  const r = await fetch(`${rs.base}/api/v1/cti/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CTI}`, 'content-type': 'application/json' },
    body: JSON.stringify(ev),
  });
  assert.equal(r.status, 202, `cti ${ev.event}: ${await r.text()}`);
}

async function until(check, what = 'condition', ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  rs = new Ringside();
  rs.addUser('anna', 'Anna Ivanova', { ext: ['101'], team: 'sales' });
  rs.addUser('boris', 'Борис Смирнов', { ext: ['102'], locale: 'ru', team: 'sales' });
  rs.addUser('cora', 'Cora Support', { ext: ['103'], team: 'support' });
  rs.addUser('boss', 'Olga Manager', { role: 'manager' });
  await rs.start({ RINGSIDE_CTI_TOKENS: `test=${CTI}` });
  browser = await launch();
  boss = await rs.token('boss');
  const cora = await rs.api(await rs.token('cora'), 'GET', '/me');
  secret = await rs.api(boss, 'POST', '/contacts', {
    name: 'Viktor Secretov',
    company: 'Support Client LLC',
    phones: [{ number: '+7 903 555-11-22' }],
    owner_id: cora.id,
  });
});

after(async () => {
  await browser?.close();
  await rs?.stop();
});

for (const [user, locale, note, lang] of [
  ['anna', 'en-US', /Belongs to another team/, 'en'],
  ['boris', 'ru-RU', /Контакт другой команды/, 'ru'],
]) {
  test(`another team's contact found by number shows as name, company and owner, without a link (${lang})`, async () => {
    const page = await newPage(browser, { width: 1366, height: 768, locale });
    await login(page, rs.base, user);
    await page.goto(`${rs.base}/app/search?q=${encodeURIComponent('8 903 555-11-22')}`);
    await page.waitForSelector('.results .result');
    const row = page.locator('.results .result').first();
    assert.match(await row.textContent(), /Viktor Secretov/);
    assert.match(await row.textContent(), /Support Client LLC/);
    assert.match(await row.textContent(), /Cora Support/);
    assert.match(await row.textContent(), note);
    assert.equal(await page.locator('.results a').count(), 0, 'no link into a page that answers 403');
    await shot(page, `search-limited-${lang}-1366`);
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, `search-limited-${lang}-390`);

    // Opened anyway (an old link): a clear message, not a broken page.
    await page.setViewportSize({ width: 1366, height: 768 });
    await page.goto(`${rs.base}/app/contacts/${secret.id}`);
    await page.waitForSelector('#view .forbidden');
    assert.match(await page.textContent('#view'), lang === 'en' ? /belongs to another team/ : /принадлежит другой команде/);
    assert.doesNotMatch(await page.textContent('#view'), /Something went wrong|Что-то пошло не так/);
    await shot(page, `contact-forbidden-${lang}-1366`);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
}

test("every list the console asks for stays within the route's limit, and a refused list says so", async () => {
  // The routes' maximums (README, API): asking for more answers 400.
  const max = { '/api/v1/tasks': 500, '/api/v1/leads': 500, '/api/v1/contacts': 500, '/api/v1/calls': 200, '/api/v1/deals': 500 };
  const page = await newPage(browser);
  const asked = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/v1/')) asked.push(u);
  });
  const refused = [];
  page.on('response', (r) => r.status() === 400 && refused.push(r.url()));
  await login(page, rs.base, 'anna');
  const open = await rs.api(boss, 'POST', '/contacts', { name: 'Open Contact', phones: [{ number: '+7 903 555-33-44' }] });
  for (const url of ['/app', '/app/callbacks', '/app/leads', `/app/contacts/${open.id}`, '/app/search?q=Open', '/app/search?q=89035553344']) {
    await page.goto(rs.base + url);
    await page.waitForFunction(() => !document.querySelector('#view .loading'));
  }
  assert.ok(asked.some((u) => u.searchParams.has('limit')));
  for (const u of asked) {
    if (!u.searchParams.has('limit')) continue;
    const n = Number(u.searchParams.get('limit'));
    const m = /\/activities$/.test(u.pathname) ? 200 : max[u.pathname];
    assert.ok(Number.isInteger(n) && n >= 1 && n <= m, `${u.pathname}?limit=${n} is within 1..${m}`);
  }
  assert.deepEqual(refused, []);

  // A list the server refuses shows why, never an empty panel.
  await page.route('**/api/v1/tasks?**', (r) =>
    r.fulfill({ status: 400, contentType: 'application/json', body: JSON.stringify({ error: { code: 'bad_request', message: 'limit must be 1 to 500' } }) }),
  );
  await page.goto(`${rs.base}/app/callbacks`);
  await page.waitForSelector('#view .error');
  assert.match(await page.textContent('#view .error'), /limit must be 1 to 500/);
  await page.context().close();
});

test("the callback for a missed call is titled in the agent's language; the API keeps the stored title", async () => {
  const borisId = (await rs.api(await rs.token('boris'), 'GET', '/me')).id;
  await rs.api(boss, 'POST', '/contacts', { name: 'Irina Missed', phones: [{ number: '+7 916 777-88-99' }], owner_id: borisId });
  await cti({ event: 'newCall', call_id: 'missed-1', from: '+79167778899', to: '4000', extension: '102' });
  await cti({ event: 'hangup', call_id: 'missed-1', cause: 19 });
  const btoken = await rs.token('boris');
  const task = await until(async () => (await rs.api(btoken, 'GET', '/tasks?mine=true&done=false&limit=50')).find((x) => x.kind === 'callback'), 'the callback task');
  assert.match(task.title, /^Call back /, 'the stored title is kept for API clients');

  const page = await newPage(browser, { width: 1366, height: 768, locale: 'ru-RU' });
  await login(page, rs.base, 'boris');
  await page.goto(`${rs.base}/app/callbacks`);
  await page.waitForSelector('.callbacks .callback-title');
  const title = await page.textContent('.callbacks .callback-title');
  assert.match(title, /^Перезвонить /);
  assert.doesNotMatch(title, /Call back/);
  await shot(page, 'callbacks-ru-1366');
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, 'callbacks-ru-390');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
