// Translations and locale-aware formatting (Intl) for the console.

import en from '../i18n/en.js';
import ru from '../i18n/ru.js';
import uk from '../i18n/uk.js';
import de from '../i18n/de.js';

export const LOCALES = { en, ru, uk, de };
export const LOCALE_NAMES = { en: 'English', ru: 'Русский', uk: 'Українська', de: 'Deutsch' };

let current = 'en';
let dict = en;

export function locale() {
  return current;
}

export function setLocale(code) {
  current = LOCALES[code] ? code : 'en';
  dict = LOCALES[current];
  document.documentElement.lang = current;
}

/** The phrase for `key`, with `{name}` placeholders filled from `vars`. */
export function t(key, vars) {
  let s = dict[key] ?? en[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

/** The phrase for a code the server sends (`lead_status`, `new`), or the code itself when it has none. */
export function tCode(prefix, code) {
  if (code === null || code === undefined || code === '') return '';
  const key = `${prefix}.${code}`;
  return key in en ? t(key) : String(code);
}

/**
 * A label the server sends for a code: the built-in English label is
 * translated, a configured one (data) is shown as it is.
 */
export function tLabel(prefix, code, label) {
  const key = `${prefix}.${code}`;
  return key in en && (!label || label === en[key]) ? t(key) : label || String(code);
}

/** Fills every [data-i18n] (text), [data-i18n-placeholder], [data-i18n-title] and [data-i18n-label] under root. */
export function translate(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
}

function toDate(v) {
  const d = v instanceof Date ? v : new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function fmtDate(v) {
  const d = toDate(v);
  return d ? new Intl.DateTimeFormat(current, { dateStyle: 'medium' }).format(d) : '';
}

export function fmtDateTime(v) {
  const d = toDate(v);
  return d ? new Intl.DateTimeFormat(current, { dateStyle: 'medium', timeStyle: 'short' }).format(d) : '';
}

export function fmtTime(v) {
  const d = toDate(v);
  return d ? new Intl.DateTimeFormat(current, { timeStyle: 'short' }).format(d) : '';
}

/** "5 minutes ago", "in 2 hours", "yesterday". */
export function fmtRelative(v, now = Date.now()) {
  const d = toDate(v);
  if (!d) return '';
  const secs = Math.round((d.getTime() - now) / 1000);
  const rtf = new Intl.RelativeTimeFormat(current, { numeric: 'auto' });
  const abs = Math.abs(secs);
  if (abs < 45) return rtf.format(0, 'second');
  if (abs < 3600) return rtf.format(Math.round(secs / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(secs / 3600), 'hour');
  if (abs < 86400 * 30) return rtf.format(Math.round(secs / 86400), 'day');
  return fmtDate(d);
}

export function fmtNumber(n) {
  return new Intl.NumberFormat(current).format(n);
}

/** Money from minor units: 1234500, "RUB" → "12 345,00 ₽". */
export function fmtMoney(minor, currency) {
  try {
    return new Intl.NumberFormat(current, { style: 'currency', currency: currency || 'EUR' }).format(minor / 100);
  } catch {
    return `${fmtNumber(minor / 100)} ${currency || ''}`.trim();
  }
}

/** A duration in seconds: "1 min, 5 sec" / "1 мин 5 с". */
export function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const parts = { hours: Math.floor(s / 3600), minutes: Math.floor((s % 3600) / 60), seconds: s % 60 };
  if (typeof Intl.DurationFormat === 'function') {
    if (!parts.hours) delete parts.hours;
    if (!parts.hours && !parts.minutes) delete parts.minutes;
    return new Intl.DurationFormat(current, { style: 'short' }).format(parts);
  }
  const unit = (value, u) => new Intl.NumberFormat(current, { style: 'unit', unit: u, unitDisplay: 'short' }).format(value);
  const out = [];
  if (parts.hours) out.push(unit(parts.hours, 'hour'));
  if (parts.hours || parts.minutes) out.push(unit(parts.minutes, 'minute'));
  out.push(unit(parts.seconds, 'second'));
  return out.join(' ');
}

/** A running clock for a call: 0:07, 12:45, 1:02:03. */
export function fmtClock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const nf = new Intl.NumberFormat(current, { minimumIntegerDigits: 2 });
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h ? `${h}:${nf.format(m)}:${nf.format(r)}` : `${m}:${nf.format(r)}`;
}
