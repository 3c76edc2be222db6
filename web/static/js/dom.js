// Building DOM nodes without HTML strings. Text always goes through
// textContent / text nodes, so data from the network can never become markup.

/**
 * h('div.card.ringing', {attrs}, child, ...) → Element.
 * attrs: plain keys become attributes (on* names are refused), `on` is a map
 * of event listeners, `dataset` a map of data-* values, `props` sets
 * properties (value, checked, disabled, ...). Children: strings become text
 * nodes, null/false are skipped, arrays are flattened.
 */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
    } else if (k === 'props') {
      Object.assign(el, v);
    } else if (k === 'class') {
      el.className = [el.className, v].filter(Boolean).join(' ');
    } else {
      if (/^on/i.test(k)) throw new Error('event handler attributes are not allowed');
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** True when keyboard focus is in a field that takes text. */
export function typing(target = document.activeElement) {
  if (!target) return false;
  const tag = target.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || target.isContentEditable;
}

/** Digits of a number as typed, for tel: links and dialing. */
export function looksLikeNumber(s) {
  const t = String(s).trim();
  return /^[+()\d\s.\-/]{3,}$/.test(t) && (t.match(/\d/g) || []).length >= 3;
}
