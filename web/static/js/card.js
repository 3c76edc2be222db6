// The screen-pop card: who is calling, shown while the phone rings, then the
// place to write the note and disposition, set a callback and move a deal.

import { h, replace } from './dom.js';
import { post } from './api.js';
import { t, tCode, tLabel, fmtRelative, fmtMoney, fmtClock, fmtDateTime, fmtDuration } from './i18n.js';

/** One phone number with a call button. */
export function phoneLink(ctx, number, label) {
  if (!number) return null;
  return h(
    'span.phone',
    h('span.phone-number', label || number),
    h(
      'button.icon-btn.dial',
      {
        type: 'button',
        title: t('dial.title', { number }),
        'aria-label': t('dial.title', { number }),
        on: { click: () => ctx.dial(number) },
      },
      '☎',
    ),
  );
}

/**
 * What an activity says, in the agent's language: a call from its
 * direction and outcome (the card carries them as fields, the timeline in
 * the call record), anything else from its text.
 */
export function activityText(a) {
  if (a.kind === 'call') {
    const direction = a.direction ?? a.payload?.direction;
    const disposition = a.disposition ?? a.payload?.disposition;
    if (direction || disposition) {
      return [direction ? tCode('call_title', direction) : t('activity.call'), disposition ? tCode('call_result', disposition) : null]
        .filter(Boolean)
        .join(', ');
    }
  }
  return a.body;
}

export function activityList(items, { limit } = {}) {
  const list = (items || []).slice(0, limit || items?.length || 0);
  if (!list.length) return h('p.muted', t('timeline.empty'));
  return h(
    'ol.timeline',
    list.map((a) =>
      h(
        'li.timeline-item',
        { dataset: { kind: a.kind } },
        h(
          'div.timeline-head',
          h('span.badge.kind', t(`activity.${a.kind}`)),
          h('time', { datetime: a.at || a.occurred_at, title: fmtDateTime(a.at || a.occurred_at) }, fmtRelative(a.at || a.occurred_at)),
          a.author?.name || a.author_name ? h('span.muted', a.author?.name || a.author_name) : null,
        ),
        activityText(a) ? h('div.timeline-body', activityText(a)) : null,
      ),
    ),
  );
}

/** Deals with a stage picker that moves the deal (POST /deals/{id}/move). */
export function dealList(ctx, deals, onMoved) {
  if (!deals || !deals.length) return h('p.muted', t('deals.none'));
  return h(
    'ul.deals',
    deals.map((d) => {
      const stageId = d.stage?.id ?? d.stage_id;
      const pipelineId = d.pipeline?.id ?? d.pipeline_id;
      const pipeline = ctx.pipelines.find((p) => p.id === pipelineId);
      const select = h(
        'select.stage-select',
        {
          'aria-label': t('deals.stage_of', { title: d.title }),
          on: {
            change: async (ev) => {
              const sel = ev.target;
              sel.disabled = true;
              try {
                await post(`/deals/${d.id}/move`, { stage_id: Number(sel.value) });
                ctx.toast(t('deals.moved', { title: d.title, stage: sel.selectedOptions[0].textContent }));
                onMoved?.();
              } catch (e) {
                ctx.toast(e.message, 'error');
                sel.value = String(stageId);
              } finally {
                sel.disabled = false;
              }
            },
          },
        },
        (pipeline?.stages || [{ id: stageId, name: d.stage?.name ?? d.stage_name }]).map((s) =>
          h('option', { value: s.id, props: { selected: s.id === stageId } }, s.name),
        ),
      );
      const amount = d.amount ?? d.amount_minor;
      return h(
        'li.deal',
        { dataset: { dealId: d.id } },
        h('div.deal-title', d.title),
        h('div.deal-meta', amount != null ? h('span.amount', fmtMoney(amount, d.currency)) : null, select),
      );
    }),
  );
}

/**
 * A task's title in the agent's language: the callback made for a missed
 * call is stored as "Call back {who}" (for API clients) and worded here.
 */
export function taskTitle(task) {
  if (task?.kind === 'callback') {
    const m = /^Call back (.+)$/s.exec(task.title || '');
    if (m) return t('task.callback_title', { who: m[1] });
  }
  return task?.title ?? '';
}

export function taskList(ctx, tasks) {
  if (!tasks || !tasks.length) return h('p.muted', t('tasks.none'));
  const now = Date.now();
  return h(
    'ul.tasks',
    tasks.map((task) => {
      const due = task.due_at ? new Date(task.due_at).getTime() : null;
      return h(
        'li.task',
        { class: due && due < now ? 'overdue' : '' },
        h('span.task-title', taskTitle(task)),
        due ? h('time.muted', { datetime: task.due_at, title: fmtDateTime(task.due_at) }, fmtDateTime(task.due_at)) : null,
      );
    }),
  );
}

function tags(list) {
  if (!list || !list.length) return null;
  return h('div.tags', list.map((tg) => h('span.tag', tg)));
}

/** A card's numbers, whichever shape it carries them in (`phone` or `phones`). */
function phonesOf(ctx, card) {
  const list = card.phones?.length ? card.phones : card.phone ? [{ raw: card.phone, e164: null }] : [];
  return list.map((p) => phoneLink(ctx, p.e164 || p.raw, p.raw));
}

function field(label, ...value) {
  const v = value.filter((x) => x !== null && x !== undefined && x !== '' && !(Array.isArray(x) && !x.length));
  if (!v.length) return null;
  return h('div.field', h('dt', label), h('dd', v));
}

/** The party part of a card: contact, lead, company, candidates or unknown. */
function partyView(ctx, call) {
  const f = call.ring;
  const contact = call.contact || f.contact;
  if (contact) {
    return h(
      'div.party',
      h(
        'h3.party-name',
        h('a', { href: `/app/contacts/${contact.id}`, dataset: { route: '' } }, contact.name),
        contact.title ? h('span.muted.party-title', contact.title) : null,
      ),
      tags(contact.tags),
      h(
        'dl.fields',
        field(t('card.company'), contact.company?.name),
        field(t('card.owner'), contact.owner?.name),
        field(t('card.email'), contact.email),
        field(t('card.phones'), phonesOf(ctx, contact)),
      ),
      h('h4', t('card.deals')),
      dealList(ctx, contact.deals),
      h('h4', t('card.tasks')),
      taskList(ctx, contact.tasks),
      h('h4', t('card.recent')),
      activityList(contact.activities, { limit: 5 }),
    );
  }
  if (f.match === 'candidates' && f.candidates?.length) {
    return h(
      'div.party',
      h('h3.party-name', t('card.candidates')),
      h('p.muted', t('card.candidates_hint')),
      h(
        'ul.candidates',
        f.candidates.map((c) =>
          h(
            'li',
            h(
              'button.candidate',
              {
                type: 'button',
                on: {
                  click: async (ev) => {
                    ev.currentTarget.disabled = true;
                    try {
                      await post(`/calls/${encodeURIComponent(call.id)}/link`, { contact_id: c.id });
                      call.contact = c;
                      ctx.refreshCard(call);
                    } catch (e) {
                      ctx.toast(e.message, 'error');
                      ev.currentTarget.disabled = false;
                    }
                  },
                },
              },
              h('span.candidate-name', c.name),
              h('span.muted', [c.company?.name, c.owner?.name].filter(Boolean).join(' · ')),
            ),
          ),
        ),
      ),
    );
  }
  if (f.lead) {
    const l = f.lead;
    return h(
      'div.party',
      h('h3.party-name', l.name || t('card.unknown'), h('span.badge.lead', t('card.lead'))),
      h(
        'dl.fields',
        field(t('card.status'), tCode('lead_status', l.status)),
        field(t('card.source'), tCode('lead_source', l.source)),
        field(t('card.manager'), l.owner?.name),
        field(t('card.phones'), phonesOf(ctx, l)),
      ),
      h('h4', t('card.recent')),
      activityList(l.activities, { limit: 5 }),
    );
  }
  if (f.company) {
    const c = f.company;
    return h(
      'div.party',
      h('h3.party-name', c.name, h('span.badge', t('card.company'))),
      h('dl.fields', field(t('card.owner'), c.owner?.name), field(t('card.phones'), phonesOf(ctx, c))),
      h('h4', t('card.deals')),
      dealList(ctx, c.deals),
      h('h4', t('card.recent')),
      activityList(c.activities, { limit: 5 }),
    );
  }
  const reason = f.reason?.code ? t(`reason.${f.reason.code}`) : null;
  return h('div.party', h('h3.party-name', t('card.unknown')), reason ? h('p.muted', reason) : null);
}

function statusText(call) {
  switch (call.status) {
    case 'ringing':
      return t('call.ringing');
    case 'mine':
      return t('call.on_call');
    case 'elsewhere':
      return t('call.answered_by', { agent: call.answeredBy || '?' });
    case 'handed':
      return t('call.handed');
    case 'ended':
      return t(`disposition.${call.disposition || 'answered'}`);
    default:
      return '';
  }
}

/** Seconds shown on the card: ringing time, then talk time, frozen at the end. */
function elapsed(call, now = Date.now()) {
  const from = call.answeredAt || call.startedAt;
  const to = call.handedAt || call.endedAt || now;
  return (to - from) / 1000;
}

export function tickCard(call) {
  const clock = call.el?.querySelector('.call-clock');
  if (clock) clock.textContent = fmtClock(elapsed(call));
}

function headerView(ctx, call) {
  const f = call.ring;
  const caller = f.caller || {};
  const number = caller.e164 || caller.number;
  // The number as the card writes it (`+7 916 123-45-67`) reads better than
  // the PBX's digits; unknown callers keep what the PBX sent.
  const written = (f.contact?.phones || []).find((p) => p.e164 && p.e164 === caller.e164)?.raw;
  return [
    h(
      'div.call-status',
      h('span.pill', { class: `pill-${call.status}` }, statusText(call)),
      h('span.call-clock', { 'aria-label': t('call.duration') }, fmtClock(elapsed(call))),
      h(
        'button.icon-btn.close',
        { type: 'button', title: t('card.close'), 'aria-label': t('card.close'), on: { click: () => ctx.closeCard(call) } },
        '×',
      ),
    ),
    h(
      'div.call-caller',
      h('span.caller-number', phoneLink(ctx, number, written || caller.number || number)),
      caller.name ? h('span.caller-name', caller.name) : null,
    ),
    call.transferTo || call.transferFrom
      ? h(
          'p.call-transfer',
          call.transferTo
            ? t('call.transferred_to', { ext: call.transferTo })
            : t('call.transferred_from', { ext: call.transferFrom }),
        )
      : null,
    h(
      'div.call-route',
      f.queue ? h('span.badge', t('call.queue', { queue: f.queue })) : null,
      f.did ? h('span.muted', t('call.did', { did: f.did })) : null,
      h('span.muted', t('call.on_ext', { ext: f.agent })),
    ),
  ];
}

function wrapupForm(ctx, call) {
  const note = h('textarea.note', {
    rows: 3,
    placeholder: t('wrapup.note_placeholder'),
    'aria-label': t('wrapup.note'),
    maxlength: 4000,
  });
  const disposition = h(
    'select.disposition',
    { 'aria-label': t('wrapup.disposition'), required: true },
    h('option', { value: '' }, t('wrapup.choose')),
    ctx.dispositions.map((d) => h('option', { value: d.code }, tLabel('wrapup_code', d.code, d.label))),
  );
  const status = h('span.form-status', { role: 'status' });
  const save = h('button.primary', { type: 'submit' }, t('wrapup.save'));
  const form = h(
    'form.wrapup',
    {
      on: {
        submit: async (ev) => {
          ev.preventDefault();
          if (!note.value.trim() && !disposition.value) {
            status.textContent = t('wrapup.empty');
            note.focus();
            return;
          }
          save.disabled = true;
          status.textContent = t('common.saving');
          try {
            const body = {};
            if (note.value.trim()) body.note = note.value.trim();
            if (disposition.value) body.disposition = disposition.value;
            await post(`/calls/${encodeURIComponent(call.id)}/wrapup`, body);
            call.saved = true;
            status.textContent = t('wrapup.saved');
            form.classList.add('saved');
            ctx.onWrapup?.(call);
          } catch (e) {
            status.textContent = e.message;
          } finally {
            save.disabled = false;
          }
        },
      },
    },
    h('label.label', t('wrapup.note'), note),
    h('div.row', h('label.label', t('wrapup.disposition'), disposition), save),
    h('div.row', status, h('span.kbd-hint.muted', t('wrapup.hint'))),
  );
  note.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  disposition.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  return form;
}

function taskForm(ctx, call) {
  const title = h('input', { type: 'text', required: true, maxlength: 200, 'aria-label': t('task.title') });
  const due = h('input', { type: 'datetime-local', 'aria-label': t('task.due') });
  const inOneHour = new Date(Date.now() + 3600e3);
  inOneHour.setMinutes(0, 0, 0);
  due.value = new Date(inOneHour.getTime() - inOneHour.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
  title.value = t('task.default_title');
  return h(
    'details.task-form',
    h('summary', t('task.create')),
    h(
      'form.row',
      {
        on: {
          submit: async (ev) => {
            ev.preventDefault();
            const contact = call.contact || call.ring.contact;
            const body = { title: title.value.trim(), assignee_id: ctx.me.id };
            if (due.value) body.due_at = new Date(due.value).toISOString();
            if (contact) body.contact_id = contact.id;
            else if (call.ring.lead) body.lead_id = call.ring.lead.id;
            try {
              await post('/tasks', body);
              ctx.toast(t('task.created', { title: body.title }));
              ev.target.closest('details').open = false;
            } catch (e) {
              ctx.toast(e.message, 'error');
            }
          },
        },
      },
      h('label.label.grow', t('task.title'), title),
      h('label.label', t('task.due'), due),
      h('button', { type: 'submit' }, t('task.add')),
    ),
  );
}

/** Builds (or rebuilds) the card element of a call. The wrap-up form survives rebuilds. */
export function renderCard(ctx, call) {
  if (!call.el) {
    call.el = h('article.call-card', { tabindex: -1, dataset: { callId: call.id }, 'aria-live': 'polite' });
    call.headEl = h('header.call-head');
    call.partyEl = h('div.call-party');
    call.formEl = h('div.call-forms', wrapupForm(ctx, call), taskForm(ctx, call));
    call.el.append(call.headEl, call.partyEl, call.formEl);
  }
  call.el.className = `call-card status-${call.status}`;
  replace(call.headEl, headerView(ctx, call));
  replace(call.partyEl, partyView(ctx, call));
  return call.el;
}

/** A one-line entry for a finished call in "Recent calls". */
export function recentEntry(ctx, call, onOpen) {
  const f = call.ring;
  const who = (call.contact || f.contact)?.name || f.lead?.name || f.caller?.name || f.caller?.number || '?';
  const talk = call.answeredAt && call.endedAt ? fmtDuration((call.endedAt - call.answeredAt) / 1000) : null;
  return h(
    'li.recent',
    h(
      'button.recent-open',
      { type: 'button', on: { click: () => onOpen(call) } },
      h('span.recent-who', who),
      h('span.muted', [statusText(call), talk, fmtRelative(call.startedAt)].filter(Boolean).join(' · ')),
    ),
  );
}
