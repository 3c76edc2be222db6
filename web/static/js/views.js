// The console's pages: home, contact, search results, my callbacks, my leads.

import { h, replace, looksLikeNumber } from './dom.js';
import { get, post, patch, qs, ApiError } from './api.js';
import { t, tCode, fmtDateTime, fmtRelative, fmtDate, fmtDuration } from './i18n.js';
import { activityList, dealList, phoneLink, taskTitle } from './card.js';

function section(title, ...body) {
  return h('section.panel', h('h2.panel-title', title), body);
}

function loading() {
  return h('p.muted.loading', t('common.loading'));
}

function failure(e) {
  return h('p.error', t('common.failed', { message: e.message }));
}

const contactNames = new Map();

/** The contact's name for lists that only carry its id. */
async function contactName(id) {
  if (!contactNames.has(id)) {
    contactNames.set(
      id,
      get(`/contacts/${id}`).then(
        (c) => c.name,
        () => `#${id}`,
      ),
    );
  }
  return contactNames.get(id);
}

function contactLink(id) {
  const a = h('a', { href: `/app/contacts/${id}`, dataset: { route: '' } }, `#${id}`);
  contactName(id).then((name) => {
    a.textContent = name;
  });
  return a;
}

/** Callbacks, overdue first (oldest first), then by due time, undated last. */
export function sortCallbacks(tasks, now = Date.now()) {
  const due = (x) => (x.due_at ? new Date(x.due_at).getTime() : Infinity);
  return [...tasks].sort((a, b) => {
    const da = due(a);
    const db = due(b);
    const oa = da < now ? 0 : 1;
    const ob = db < now ? 0 : 1;
    return oa - ob || da - db || a.id - b.id;
  });
}

function callbackList(ctx, tasks, onChange) {
  if (!tasks.length) return h('p.muted.empty', t('callbacks.none'));
  const now = Date.now();
  return h(
    'ul.callbacks',
    sortCallbacks(tasks, now).map((task) => {
      const dueMs = task.due_at ? new Date(task.due_at).getTime() : null;
      const overdue = dueMs !== null && dueMs < now;
      const done = h(
        'button.small',
        {
          type: 'button',
          on: {
            click: async (ev) => {
              ev.currentTarget.disabled = true;
              try {
                await patch(`/tasks/${task.id}`, { done: true });
                ctx.toast(t('callbacks.marked_done', { title: taskTitle(task) }));
                onChange();
              } catch (e) {
                ctx.toast(e.message, 'error');
                ev.currentTarget.disabled = false;
              }
            },
          },
        },
        t('callbacks.done'),
      );
      return h(
        'li.callback',
        { class: overdue ? 'overdue' : '', dataset: { taskId: task.id } },
        h(
          'div.callback-main',
          h('span.callback-title', taskTitle(task)),
          task.missed_calls > 1
            ? h('span.muted.callback-missed', t('callbacks.missed_calls', { n: task.missed_calls }))
            : null,
          task.contact_id ? contactLink(task.contact_id) : null,
        ),
        h(
          'div.callback-due',
          overdue ? h('span.badge.danger', t('callbacks.overdue')) : null,
          dueMs !== null
            ? h('time', { datetime: task.due_at, title: fmtRelative(task.due_at) }, fmtDateTime(task.due_at))
            : h('span.muted', t('callbacks.no_due')),
        ),
        done,
      );
    }),
  );
}

export async function homeView(ctx, root) {
  const list = h('div', loading());
  replace(
    root,
    h(
      'div.home',
      h(
        'section.panel.idle',
        h('div.idle-icon', { 'aria-hidden': 'true' }, '☎'),
        h('h1.idle-title', t('home.waiting')),
        h('p.muted', t('home.waiting_hint')),
        h(
          'ul.shortcuts',
          [
            ['/', 'keys.search'],
            ['a', 'keys.note'],
            ['Ctrl+Enter', 'keys.save'],
            ['Esc', 'keys.close'],
            ['c', 'keys.callbacks'],
            ['l', 'keys.leads'],
            ['?', 'keys.help'],
          ].map(([k, label]) => h('li', h('kbd', k), ' ', t(label))),
        ),
      ),
      section(t('callbacks.title'), list),
    ),
  );
  const load = async () => {
    try {
      const tasks = await get('/tasks' + qs({ mine: true, done: false, limit: 100 }));
      replace(list, callbackList(ctx, tasks, load));
    } catch (e) {
      replace(list, failure(e));
    }
  };
  await load();
}

export async function callbacksView(ctx, root) {
  const list = h('div', loading());
  replace(root, section(t('callbacks.title'), list));
  const load = async () => {
    try {
      const tasks = await get('/tasks' + qs({ mine: true, done: false, limit: 200 }));
      replace(list, callbackList(ctx, tasks, load));
    } catch (e) {
      replace(list, failure(e));
    }
  };
  await load();
}

export async function leadsView(ctx, root) {
  const body = h('div', loading());
  replace(root, section(t('leads.title'), body));
  try {
    const leads = await get('/leads' + qs({ manager_id: ctx.me.id, limit: 200 }));
    if (!leads.length) {
      replace(body, h('p.muted.empty', t('leads.none')));
      return;
    }
    replace(
      body,
      h(
        'table.grid',
        h(
          'thead',
          h('tr', ['leads.name', 'leads.phone', 'leads.status', 'leads.source', 'leads.created'].map((k) => h('th', t(k)))),
        ),
        h(
          'tbody',
          leads.map((l) =>
            h(
              'tr',
              // data-label: the column's name, shown beside the value where the table stacks (phones).
              h('td', { dataset: { label: t('leads.name') } }, l.name),
              h('td', { dataset: { label: t('leads.phone') } }, phoneLink(ctx, l.phone_e164 || l.phone_raw, l.phone_raw)),
              h('td', { dataset: { label: t('leads.status') } }, h('span.badge', tCode('lead_status', l.status))),
              h('td', { dataset: { label: t('leads.source') } }, tCode('lead_source', l.source)),
              h('td', { dataset: { label: t('leads.created') } }, h('time', { datetime: l.created_at, title: fmtDateTime(l.created_at) }, fmtDate(l.created_at))),
            ),
          ),
        ),
      ),
    );
  } catch (e) {
    replace(body, failure(e));
  }
}

export async function contactView(ctx, root, id) {
  replace(root, loading());
  let contact;
  try {
    contact = await get(`/contacts/${id}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) {
      replace(
        root,
        section(
          t('nav.contact'),
          h('p.forbidden', t('contact.forbidden')),
          h('p', h('a', { href: '/app', dataset: { route: '' } }, t('common.back_to_console'))),
        ),
      );
    } else {
      replace(root, failure(e));
    }
    return;
  }
  contactNames.set(contact.id, Promise.resolve(contact.name));
  const timeline = h('div', loading());
  const deals = h('div', loading());
  const tasks = h('div', loading());
  const calls = h('div', loading());
  const callsPanel = section(t('contact.calls'), calls);
  const note = h('textarea', { rows: 2, maxlength: 4000, 'aria-label': t('contact.add_note'), placeholder: t('contact.add_note') });
  const noteForm = h(
    'form.note-form',
    {
      on: {
        submit: async (ev) => {
          ev.preventDefault();
          if (!note.value.trim()) return;
          try {
            await post('/notes', { body: note.value.trim(), contact_id: contact.id });
            note.value = '';
            loadTimeline();
          } catch (e) {
            ctx.toast(e.message, 'error');
          }
        },
      },
    },
    note,
    h('button', { type: 'submit' }, t('contact.save_note')),
  );
  note.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      noteForm.requestSubmit();
    }
  });
  replace(
    root,
    h(
      'div.contact-page',
      h(
        'header.contact-head',
        h('h1', contact.name),
        contact.tags?.length ? h('div.tags', contact.tags.map((tg) => h('span.tag', tg))) : null,
      ),
      h(
        'div.contact-grid',
        h(
          'div.contact-side',
          section(
            t('contact.details'),
            h(
              'dl.fields',
              contact.company_name ? h('div.field', h('dt', t('card.company')), h('dd', contact.company_name)) : null,
              contact.owner_name ? h('div.field', h('dt', t('card.owner')), h('dd', contact.owner_name)) : null,
              contact.email ? h('div.field', h('dt', t('card.email')), h('dd', h('a', { href: `mailto:${contact.email}` }, contact.email))) : null,
              h(
                'div.field',
                h('dt', t('card.phones')),
                h('dd', (contact.phones || []).map((p) => h('div', phoneLink(ctx, p.e164 || p.raw, p.raw), p.kind ? h('span.muted', ` ${t(`phone.${p.kind}`)}`) : null))),
              ),
              contact.notes ? h('div.field', h('dt', t('contact.notes')), h('dd.pre', contact.notes)) : null,
              h('div.field', h('dt', t('contact.since')), h('dd', fmtDate(contact.created_at))),
            ),
          ),
          section(t('card.deals'), deals),
          section(t('card.tasks'), tasks),
          callsPanel,
        ),
        h('div.contact-main', section(t('contact.timeline'), noteForm, timeline)),
      ),
    ),
  );
  let before = null;
  async function loadTimeline(more = false) {
    try {
      const page = await get(`/contacts/${contact.id}/activities` + qs({ limit: 30, before: more ? before : null }));
      before = page.next;
      const items = page.items || [];
      const list = activityList(items);
      const moreBtn = page.next
        ? h('button.small.more', { type: 'button', on: { click: () => loadTimeline(true) } }, t('common.more'))
        : null;
      if (more) {
        timeline.querySelector('.more')?.remove();
        timeline.append(list, moreBtn || '');
      } else {
        replace(timeline, list, moreBtn);
      }
    } catch (e) {
      replace(timeline, failure(e));
    }
  }
  const loadDeals = async () => {
    try {
      const all = await get('/deals' + qs({ contact_id: contact.id }));
      const open = all.filter((d) => !d.status || d.status === 'open');
      replace(deals, dealList(ctx, open, loadDeals));
    } catch (e) {
      replace(deals, failure(e));
    }
  };
  const loadTasks = async () => {
    try {
      const list = await get('/tasks' + qs({ contact_id: contact.id, done: false }));
      replace(
        tasks,
        list.length
          ? h(
              'ul.tasks',
              sortCallbacks(list).map((x) =>
                h(
                  'li.task',
                  { class: x.due_at && new Date(x.due_at) < Date.now() ? 'overdue' : '' },
                  h('span.task-title', taskTitle(x)),
                  x.due_at ? h('time.muted', { datetime: x.due_at }, fmtDateTime(x.due_at)) : null,
                ),
              ),
            )
          : h('p.muted', t('tasks.none')),
      );
    } catch (e) {
      replace(tasks, failure(e));
    }
  };
  const loadCalls = async () => {
    try {
      // A page of the call log: `{items, next}`.
      const page = await get('/calls' + qs({ contact_id: contact.id, limit: 20 }));
      const list = Array.isArray(page) ? page : page?.items || [];
      replace(calls, list.length ? h('ul.call-history', list.map(callRow)) : h('p.muted', t('contact.no_calls')));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) callsPanel.remove();
      else replace(calls, failure(e));
    }
  };
  await Promise.all([loadTimeline(), loadDeals(), loadTasks(), loadCalls()]);
}

/** One logged call: when, which way, who talked, how long, how it ended. */
function callRow(c) {
  const started = c.started_at || c.at;
  const talk = Number(c.talk_s);
  return h(
    'li.call-row',
    h('time', { datetime: started, title: fmtRelative(started) }, fmtDateTime(started)),
    h(
      'span.muted',
      [
        c.direction ? t(`direction.${c.direction}`) : null,
        c.agent ? t('call.on_ext', { ext: c.agent }) : null,
        Number.isFinite(talk) && talk > 0 ? fmtDuration(talk) : null,
      ]
        .filter(Boolean)
        .join(' · '),
    ),
    c.disposition ? h('span.badge', t(`disposition.${c.disposition}`)) : null,
  );
}

function contactRow(ctx, c) {
  const company = c.company_name || c.company?.name;
  if (c.limited) {
    // Another team's contact: who it is and whose, no link (it would answer 403).
    const owner = c.owner_name || c.owner?.name;
    return h(
      'li.result.result-limited',
      h('span.result-name', c.name),
      company ? h('span.muted', company) : null,
      owner ? h('span.muted', `${t('card.owner')}: ${owner}`) : null,
      h('span.muted.limited-note', t('search.other_team')),
    );
  }
  return h(
    'li.result',
    h('a.result-name', { href: `/app/contacts/${c.id}`, dataset: { route: '' } }, c.name),
    company ? h('span.muted', company) : null,
    (c.phones || []).map((p) => phoneLink(ctx, p.e164 || p.raw, p.raw)),
  );
}

export async function searchView(ctx, root, query) {
  const q = (query || '').trim();
  const body = h('div', loading());
  replace(root, section(t('search.results_for', { q }), body));
  if (!q) {
    replace(body, h('p.muted', t('search.hint')));
    return;
  }
  try {
    const results = [];
    const extra = [];
    if (looksLikeNumber(q)) {
      let found = null;
      try {
        found = await get('/lookup' + qs({ number: q }));
      } catch (e) {
        if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 400)) throw e;
      }
      if (found) {
        if (found.contact) results.push(found.contact);
        for (const c of found.candidates || []) if (!results.some((r) => r.id === c.id)) results.push(c);
        if (found.lead) {
          const l = found.lead;
          const p = l.phones?.[0];
          extra.push(
            h(
              'li.result',
              { class: l.limited ? 'result-limited' : '' },
              h('span.result-name', l.name || t('card.unknown')),
              h('span.badge.lead', t('card.lead')),
              l.limited ? h('span.muted.limited-note', t('search.other_team')) : null,
              p || l.phone ? phoneLink(ctx, p ? p.e164 || p.raw : l.phone, p ? p.raw : l.phone) : null,
            ),
          );
        }
        if (found.company) extra.push(h('li.result', h('span.result-name', found.company.name), h('span.badge', t('card.company'))));
      }
      if (!results.length) {
        try {
          for (const c of await get('/contacts' + qs({ phone: q }))) results.push(c);
        } catch (e) {
          if (!(e instanceof ApiError) || e.status !== 400) throw e;
        }
      }
    } else {
      for (const c of await get('/contacts' + qs({ q, limit: 50 }))) results.push(c);
    }
    if (!results.length && !extra.length) {
      replace(body, h('p.muted.empty', t('search.none')));
      return;
    }
    replace(body, h('ul.results', results.map((c) => contactRow(ctx, c)), extra));
    if (results.length === 1 && !extra.length && looksLikeNumber(q)) {
      body.querySelector('a')?.focus();
    }
  } catch (e) {
    replace(body, failure(e));
  }
}
