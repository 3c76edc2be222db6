// Every phrase the console uses exists in every locale (no browser needed).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './harness.mjs';

const WEB = path.join(ROOT, 'web');
const load = async (l) => (await import(path.join(WEB, 'static/i18n', `${l}.js`))).default;

test('all locales have the same keys, none empty', async () => {
  const en = await load('en');
  for (const l of ['ru', 'uk', 'de']) {
    const d = await load(l);
    assert.deepEqual(Object.keys(d).sort(), Object.keys(en).sort(), `${l} has the same keys as en`);
    for (const [k, v] of Object.entries(d)) {
      assert.ok(typeof v === 'string' && v.trim(), `${l}.${k} is not empty`);
      const vars = (s) => (s.match(/\{\w+\}/g) || []).sort();
      assert.deepEqual(vars(v), vars(en[k]), `${l}.${k} keeps the placeholders`);
    }
  }
});

test('every key used by the pages and scripts is translated', async () => {
  const en = await load('en');
  const used = new Set();
  const js = readdirSync(path.join(WEB, 'static/js')).map((f) => readFileSync(path.join(WEB, 'static/js', f), 'utf8'));
  const html = ['login.html', 'app.html'].map((f) => readFileSync(path.join(WEB, f), 'utf8'));
  for (const src of js) {
    for (const m of src.matchAll(/\bt\('([a-z_]+\.[a-z_.]+)'/g)) used.add(m[1]);
    for (const m of src.matchAll(/\['[^']*', '([a-z_]+\.[a-z_]+)'\]/g)) used.add(m[1]);
    for (const m of src.matchAll(/'((?:leads|nav)\.[a-z_]+)'/g)) used.add(m[1]);
  }
  for (const src of html) for (const m of src.matchAll(/data-i18n(?:-[a-z]+)?="([^"]+)"/g)) used.add(m[1]);
  // Keys built from values the server sends.
  const dynamic = {
    activity: ['call', 'note', 'task_done', 'stage_change', 'lead_converted'],
    disposition: ['answered', 'abandoned', 'no_answer', 'busy', 'failed'],
    reason: ['anonymous', 'internal', 'own_number', 'not_a_number', 'unknown'],
    state: ['available', 'ringing', 'on_call', 'wrap_up', 'paused', 'offline'],
    phone: ['mobile', 'work', 'home', 'fax', 'other'],
    reason_pause: ['lunch', 'break', 'training', 'meeting', 'other'],
    direction: ['inbound', 'outbound', 'internal'],
    call_title: ['inbound', 'outbound', 'internal'],
    call_result: ['answered', 'abandoned', 'no_answer', 'busy', 'failed'],
    wrapup_code: ['sale', 'callback', 'info', 'complaint', 'wrong_number', 'no_interest'],
    lead_status: ['new', 'qualified', 'converted', 'lost'],
    lead_source: ['call', 'manual', 'import', 'web'],
  };
  for (const [p, vals] of Object.entries(dynamic)) for (const v of vals) used.add(`${p}.${v}`);
  assert.ok(used.size > 100, `found ${used.size} keys`);
  const missing = [...used].filter((k) => !(k in en));
  assert.deepEqual(missing, []);
});
