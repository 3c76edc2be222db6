// The agent console in a real browser: login, locale, contact page,
// search by number, and the page's defences (CSP, text-only rendering).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ringside, launch, newPage, login, shot } from './harness.mjs';

let rs;
let browser;
let token;
let contact;
let hostile;

before(async () => {
  rs = new Ringside();
  rs.addUser('anna', 'Anna Ivanova', { ext: ['101'] });
  rs.addUser('boss', 'Olga Manager', { role: 'manager' });
  await rs.start();
  browser = await launch();
  token = await rs.token('anna');
  contact = await rs.api(token, 'POST', '/contacts', {
    name: 'Pyotr Sidorov',
    company: 'Romashka LLC',
    email: 'pyotr@romashka.example',
    tags: ['vip'],
    phones: [{ number: '+7 916 123-45-67' }],
  });
  await rs.api(token, 'POST', '/notes', { body: 'Asked for a quote on 40 seats', contact_id: contact.id });
  await rs.api(token, 'POST', '/tasks', {
    title: 'Call back about the quote',
    contact_id: contact.id,
    due_at: new Date(Date.now() - 3600e3).toISOString(),
  });
  hostile = await rs.api(token, 'POST', '/contacts', {
    name: '<img src=x onerror=alert(1)>',
    phones: [{ number: '+49 30 123456' }],
  });
  await rs.api(token, 'POST', '/notes', { body: '<script>alert(2)</script> "quoted" & more', contact_id: hostile.id });
});

after(async () => {
  await browser?.close();
  await rs?.stop();
});

test('every page carries the strict CSP and has no inline script', async () => {
  for (const p of ['/login', '/app']) {
    const r = await fetch(rs.base + p, { redirect: 'manual' });
    const csp = r.headers.get('content-security-policy');
    assert.ok(csp, `${p} has a CSP header`);
    for (const d of ["default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"]) {
      assert.ok(csp.includes(d), `${p} CSP has ${d}`);
    }
    assert.ok(!csp.includes('unsafe-inline'), `${p} allows no inline code`);
  }
  const html = await (await fetch(rs.base + '/login')).text();
  const scripts = html.match(/<script[^>]*>/gi) || [];
  assert.ok(scripts.length > 0);
  for (const s of scripts) assert.match(s, /\ssrc="\/static\//, `external script only: ${s}`);
  assert.doesNotMatch(html, /\son[a-z]+\s*=/i, 'no inline event handlers');

  const asset = html.match(/src="(\/static\/[^"]+)"/)[1];
  const r = await fetch(rs.base + asset);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('cache-control'), /max-age=31536000/);
  const etag = r.headers.get('etag');
  assert.ok(etag);
  const again = await fetch(rs.base + asset, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);

  const anon = await fetch(rs.base + '/app/contacts/1', { redirect: 'manual' });
  assert.equal(anon.status, 303);
  assert.match(anon.headers.get('location'), /^\/login\?next=/);
});

test('login page renders, the console loads, and the locale switches to Russian', async () => {
  const page = await newPage(browser);
  await page.goto(`${rs.base}/`);
  await page.waitForURL(/\/login/);
  await page.waitForSelector('body.ready');
  assert.equal(await page.textContent('#login-submit'), 'Sign in');
  await shot(page, 'login');

  await page.fill('#login', 'anna');
  await page.fill('#password', 'wrong-password');
  await page.click('#login-submit');
  await page.waitForFunction(() => document.querySelector('#login-error').textContent.length > 0);
  assert.match(await page.textContent('#login-error'), /Wrong login or password/);

  await login(page, rs.base, 'anna');
  assert.equal(await page.textContent('#user-name'), 'Anna Ivanova');
  assert.match(await page.textContent('#user-ext'), /101/);
  await page.waitForSelector('.callback');
  assert.match(await page.textContent('.callbacks'), /Call back about the quote/);
  assert.match(await page.textContent('.callback .badge'), /Overdue/);
  await shot(page, 'console-idle');

  await page.selectOption('#locale-select', 'ru');
  await page.waitForFunction(() => document.documentElement.lang === 'ru');
  assert.equal(await page.textContent('.nav a[data-nav="home"]'), 'Пульт');
  assert.equal(await page.textContent('.nav a[data-nav="callbacks"]'), 'Мои перезвоны');
  // Survives a reload: the locale is stored on the user.
  await page.reload();
  await page.waitForSelector('body.ready');
  assert.equal(await page.textContent('.nav a[data-nav="home"]'), 'Пульт');

  await page.goto(`${rs.base}/app/contacts/${contact.id}`);
  await page.waitForSelector('.timeline-item');
  const since = await page.textContent('.contact-side .field:last-child dd');
  const expected = new Intl.DateTimeFormat('ru', { dateStyle: 'medium', timeZone: 'Europe/Moscow' }).format(new Date(contact.created_at));
  assert.equal(since, expected, 'the date is formatted for Russian');
  assert.match(since, /[а-я]/, 'a Russian month name');
  assert.equal(await page.textContent('.contact-main .panel-title'), 'История');
  await shot(page, 'contact-ru');

  await page.selectOption('#locale-select', 'en');
  await page.waitForFunction(() => document.documentElement.lang === 'en');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('the contact page shows details, timeline, deals and tasks, and adds a note', async () => {
  const page = await newPage(browser);
  await login(page, rs.base, 'anna');
  await page.goto(`${rs.base}/app/contacts/${contact.id}`);
  await page.waitForSelector('.timeline-item');
  assert.equal(await page.textContent('.contact-head h1'), 'Pyotr Sidorov');
  assert.match(await page.textContent('.contact-side'), /Romashka LLC/);
  assert.match(await page.textContent('.contact-side'), /\+7 916 123-45-67/);
  assert.match(await page.textContent('.timeline'), /Asked for a quote on 40 seats/);
  assert.match(await page.textContent('.contact-side'), /Call back about the quote/);

  await page.fill('.note-form textarea', 'Sent the quote by email');
  await page.keyboard.press('Control+Enter');
  await page.waitForFunction(() => document.querySelector('.timeline').textContent.includes('Sent the quote by email'));
  const items = await page.$$eval('.timeline-body', (els) => els.map((e) => e.textContent));
  assert.equal(items[0], 'Sent the quote by email', 'newest first');
  await shot(page, 'contact');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('search finds a contact by name and by a number written another way', async () => {
  const page = await newPage(browser);
  await login(page, rs.base, 'anna');
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'search');
  await page.keyboard.type('8 (916) 123-45-67');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.results, .empty, .error');
  assert.equal(await page.textContent('.results .result-name'), 'Pyotr Sidorov');

  await page.fill('#search', 'Sidorov');
  await page.press('#search', 'Enter');
  await page.waitForURL(/q=Sidorov/);
  await page.waitForSelector('.results .result-name');
  assert.equal(await page.textContent('.results .result-name'), 'Pyotr Sidorov');
  await page.click('.results .result-name');
  await page.waitForSelector('.contact-head h1');
  assert.equal(await page.textContent('.contact-head h1'), 'Pyotr Sidorov');
  await page.context().close();
});

test('the lookup endpoint answers the number search', async () => {
  const r = await fetch(`${rs.base}/api/v1/lookup?number=${encodeURIComponent('8 (916) 123-45-67')}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(r.status, 200, 'GET /api/v1/lookup exists');
  const body = await r.json();
  assert.equal(body.match, 'exact');
  assert.equal(body.contact.id, contact.id);
});

test('markup in names and notes is shown as text and never runs', async () => {
  const page = await newPage(browser);
  await login(page, rs.base, 'anna');
  await page.goto(`${rs.base}/app/contacts/${hostile.id}`);
  await page.waitForSelector('.timeline-item');
  assert.equal(await page.textContent('.contact-head h1'), '<img src=x onerror=alert(1)>');
  assert.equal(await page.locator('#view img').count(), 0);
  assert.equal(await page.locator('#view script').count(), 0);
  assert.equal(await page.textContent('.timeline-body'), '<script>alert(2)</script> "quoted" & more');
  await page.fill('#search', '<img');
  await page.press('#search', 'Enter');
  await page.waitForSelector('.results .result-name, .empty');
  assert.equal(await page.locator('#view img').count(), 0);
  await page.waitForTimeout(300);
  assert.deepEqual(page.dialogs, [], 'no script ran');
  await page.context().close();
});

test('narrow (tablet) layout still shows the whole console', async () => {
  const page = await newPage(browser, { width: 820, height: 1100 });
  await login(page, rs.base, 'anna');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scroll (overflow ${overflow}px)`);
  await shot(page, 'console-tablet');
  await page.context().close();
});

test('a deal moves to another stage from the contact page', async () => {
  const pipeline = await rs.api(await rs.token('boss'), 'POST', '/pipelines', {
    name: 'Sales',
    stages: [{ name: 'Qualified' }, { name: 'Proposal' }, { name: 'Won', outcome: 'won' }],
  });
  const deal = await rs.api(token, 'POST', '/deals', {
    title: '40 seats',
    pipeline_id: pipeline.id,
    contact_id: contact.id,
    amount_minor: 1250000,
    currency: 'RUB',
  });
  const page = await newPage(browser);
  await login(page, rs.base, 'anna');
  await page.goto(`${rs.base}/app/contacts/${contact.id}`);
  await page.waitForSelector(`.deal[data-deal-id="${deal.id}"]`);
  assert.match(await page.textContent(`.deal[data-deal-id="${deal.id}"] .amount`), /12,500\.00/);
  const proposal = pipeline.stages.find((s) => s.name === 'Proposal');
  await page.selectOption(`.deal[data-deal-id="${deal.id}"] select`, String(proposal.id));
  await page.waitForSelector('.toast');
  assert.match(await page.textContent('.toast'), /Proposal/);
  const after = await rs.api(token, 'GET', `/deals/${deal.id}`);
  assert.equal(after.stage_id, proposal.id);
  await page.context().close();
});

test('a callback is marked done from my callbacks', async () => {
  const task = await rs.api(token, 'POST', '/tasks', { title: 'Ring Olga about the invoice', due_at: new Date(Date.now() + 7200e3).toISOString() });
  const page = await newPage(browser);
  await login(page, rs.base, 'anna');
  await page.keyboard.press('c');
  await page.waitForURL(/\/app\/callbacks/);
  const row = page.locator(`.callback[data-task-id="${task.id}"]`);
  await row.waitFor();
  // Overdue ones come first.
  const titles = await page.$$eval('.callback-title', (e) => e.map((x) => x.textContent));
  assert.ok(titles.indexOf('Call back about the quote') < titles.indexOf('Ring Olga about the invoice'));
  await row.locator('button').click();
  await row.waitFor({ state: 'detached' });
  const after = await rs.api(token, 'GET', `/tasks/${task.id}`);
  assert.equal(after.done, true);
  await page.context().close();
});
