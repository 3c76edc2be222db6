// Runs the real `ringside` binary on a random port with a fresh SQLite file,
// creates users through its CLI, and drives a headless Chromium against it.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.RINGSIDE_BIN || path.join(ROOT, 'target/debug/ringside');
export const FIXTURES = path.join(ROOT, 'tests/fixtures/ami');
export const SHOTS = path.join(ROOT, 'target/screenshots');
export const PASSWORD = 'browser-pass-123';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Waits for a line matching `re` on a stream; resolves with the match. */
function waitForLine(stream, re, what, ms = 30000) {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: stream });
    const timer = setTimeout(() => reject(new Error(`${what} did not report ready in ${ms} ms`)), ms);
    rl.on('line', (line) => {
      if (process.env.RINGSIDE_TEST_LOG) process.stderr.write(`[${what}] ${line}\n`);
      const m = line.match(re);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
}

export class Ringside {
  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'ringside-browser-'));
    this.dbUrl = `sqlite://${path.join(this.dir, 'ringside.db')}`;
    this.children = [];
  }

  env(extra = {}) {
    return { ...process.env, RINGSIDE_DATABASE_URL: this.dbUrl, RUST_LOG: 'info', NO_COLOR: '1', RINGSIDE_LOG_JSON: 'false', ...extra };
  }

  /** `ringside user add` with the password on stdin; returns the new user's id. */
  addUser(login, name, { role = 'agent', ext = [], locale = 'en', team = null } = {}) {
    const args = ['user', 'add', '--login', login, '--name', name, '--role', role, '--locale', locale, '--password-stdin'];
    if (team) args.push('--team', team);
    for (const e of ext) args.push('--ext', e);
    const r = spawnSync(BIN, args, { env: this.env({ RUST_LOG: 'warn' }), input: PASSWORD + '\n', cwd: this.dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ringside user add failed: ${r.stderr}`);
    const m = r.stdout.match(/id (\d+)/);
    return m ? Number(m[1]) : null;
  }

  /** Plays a captured AMI trace as a fake Asterisk; resolves with its ami:// URL. */
  async startAmi(trace, { speed = 0.5, delay = 0 } = {}) {
    const child = spawn(BIN, ['ami-serve', path.join(FIXTURES, trace), '--listen', '127.0.0.1:0', '--speed', String(speed), '--delay', String(delay)], {
      env: this.env(),
      cwd: this.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.children.push(child);
    const m = await waitForLine(child.stdout, /ami-serve listening: (ami:\/\/\S+)/, 'ami-serve');
    return m[1];
  }

  async start(extraEnv = {}) {
    const child = spawn(BIN, ['serve'], {
      env: this.env({ RINGSIDE_HTTP_BIND: '127.0.0.1:0', ...extraEnv }),
      cwd: this.dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.children.push(child);
    const m = await waitForLine(child.stderr, /ringside ready: http:\/\/(\S+)/, 'ringside');
    this.base = `http://${m[1]}`;
    return this.base;
  }

  /** A bearer token for seeding data through the API. */
  async token(login) {
    const r = await fetch(`${this.base}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login, password: PASSWORD }),
    });
    if (!r.ok) throw new Error(`login ${login}: ${r.status}`);
    return (await r.json()).token;
  }

  async api(token, method, p, body) {
    const r = await fetch(`${this.base}/api/v1${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  async stop() {
    for (const c of this.children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(this.children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** A page that fails the test on any uncaught script error or CSP report. */
export async function newPage(browser, { width = 1366, height = 860, locale = 'en-US' } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, locale, timezoneId: 'Europe/Moscow' });
  const page = await context.newPage();
  page.errors = [];
  page.dialogs = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|WebSocket connection to/.test(m.text())) page.errors.push(m.text());
  });
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  return page;
}

export async function login(page, base, user) {
  await page.goto(`${base}/login`);
  await page.fill('#login', user);
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForURL(/\/app/), page.click('#login-submit')]);
  await page.waitForSelector('body.ready');
}

export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.waitForTimeout(400); // let entry animations finish
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}
