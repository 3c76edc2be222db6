// `ringside demo` from the outside: its log written to a pipe has no colour
// codes, and its data reads well in Russian (names agree in gender, the
// pipelines, stages and deals are named in the language it is seeded in).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Ringside, BIN } from './harness.mjs';

let rs;
let child;
let base;
let admin;
let stderr = '';

before(async () => {
  rs = new Ringside();
  const env = rs.env({ RINGSIDE_HTTP_BIND: '127.0.0.1:0' });
  delete env.NO_COLOR; // as a service manager would start it: no terminal, no NO_COLOR
  delete env.RINGSIDE_AMI_URL;
  child = spawn(BIN, ['demo'], { env, cwd: rs.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  rs.children.push(child);
  child.stderr.on('data', (d) => (stderr += d));
  const out = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo did not start: ${out.join('\n')}\n${stderr}`)), 60000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      out.push(line);
      const m = line.match(/^Ringside demo on (http:\/\/\S+)/);
      if (m) base = m[1];
      const p = line.match(/^\s+admin\s+admin\s+(\S+)/);
      if (p) admin = p[1];
      if (base && admin) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const r = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ login: 'admin', password: admin }),
  });
  assert.equal(r.status, 200);
  rs.base = base;
  rs.adminToken = (await r.json()).token;
});

after(async () => {
  await rs?.stop();
});

test('the log has no colour codes when it is not written to a terminal', async () => {
  assert.match(stderr, /ringside ready/);
  assert.doesNotMatch(stderr, /\x1b\[/, 'no ANSI escape codes in a piped log');
});

test('demo contacts have Russian names that agree in gender', async () => {
  const contacts = await rs.api(rs.adminToken, 'GET', '/contacts?limit=200');
  const women = ['Ольга', 'Екатерина', 'Наталья', 'Анна', 'Татьяна', 'Мария'];
  const men = ['Иван', 'Дмитрий', 'Алексей', 'Михаил', 'Павел', 'Сергей'];
  let checked = 0;
  for (const c of contacts) {
    const [first, last] = c.name.split(' ');
    if (!/ов|ев|ёв/.test(last || '')) continue;
    if (women.includes(first)) assert.match(last, /(ова|ева|ёва)$/, c.name);
    else if (men.includes(first)) assert.match(last, /(ов|ев|ёв)$/, c.name);
    else continue;
    checked++;
  }
  assert.ok(checked > 20, `checked ${checked} names`);
});

test('demo pipelines, stages and deals are in the language of the default region (RU)', async () => {
  const pipelines = await rs.api(rs.adminToken, 'GET', '/pipelines');
  assert.ok(pipelines.length >= 2);
  for (const p of pipelines) {
    assert.match(p.name, /[а-яё]/i, `pipeline ${p.name}`);
    const stages = p.stages || (await rs.api(rs.adminToken, 'GET', `/pipelines/${p.id}`)).stages;
    for (const s of stages) assert.match(s.name, /^[А-ЯЁа-яё «»-]+$/, `stage ${s.name}`);
  }
  const deals = await rs.api(rs.adminToken, 'GET', '/deals?limit=50');
  assert.ok(deals.length > 0);
  for (const d of deals) assert.match(d.title, /^Сделка №\d+$/, d.title);
});
