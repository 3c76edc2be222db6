// The login page: posts the credentials; the server sets the session cookie.

import { $ } from './dom.js';
import { post, ApiError } from './api.js';
import { t, setLocale, translate, LOCALES } from './i18n.js';

function pickLocale() {
  const saved = localStorage.getItem('ringside.locale');
  if (saved && LOCALES[saved]) return saved;
  for (const l of navigator.languages || [navigator.language]) {
    const code = String(l).slice(0, 2).toLowerCase();
    if (LOCALES[code]) return code;
  }
  return 'en';
}

/** Only a path inside the console: never an address elsewhere. */
function nextUrl() {
  const next = new URLSearchParams(location.search).get('next') || '/app';
  return /^\/app(\/|$|\?)/.test(next) && !next.startsWith('//') ? next : '/app';
}

async function start() {
  setLocale(pickLocale());
  translate();
  const sel = $('#locale-select');
  sel.value = document.documentElement.lang;
  sel.addEventListener('change', () => {
    localStorage.setItem('ringside.locale', sel.value);
    setLocale(sel.value);
    translate();
  });

  // A browser that is signed in already never gets this page: the server
  // sends it on to the console, so nothing here asks the API (and logs a 401).

  const form = $('#login-form');
  const error = $('#login-error');
  const button = $('#login-submit');
  $('#login').focus();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    button.disabled = true;
    try {
      await post('/auth/login', { login: $('#login').value.trim(), password: $('#password').value });
      location.assign(nextUrl());
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) error.textContent = t('login.wrong');
      else if (e instanceof ApiError && e.status === 429) error.textContent = t('login.too_many');
      else error.textContent = t('common.failed', { message: e.message });
      $('#password').select();
    } finally {
      button.disabled = false;
    }
  });
  document.body.classList.add('ready');
}

start();
