// The webcare inbox: queue, case view, answers and live updates, on the
// agent API only. No framework: state in one object, views re-rendered
// from it, every API error shown with the API's own words.

import { Api, ApiError } from './api.js';
import { $, h, formatWait, formatTime, safeLink, randomHex } from './dom.js';
import { Live } from './live.js';
import { loadReplies, storeReplies, fillPlaceholders } from './replies.js';

const TOKEN_KEY = 'webcare.inbox.token';
const BRAND_KEY = 'webcare.inbox.brand';
/** A customer waiting longer than this shows in red. */
const LATE_MS = 60 * 60 * 1000;

const state = {
  api: null,
  me: null,
  live: null,
  /** 'queue' or 'search' */
  mode: 'queue',
  cases: [],
  hits: [],
  /** Case ids in the order the list shows them. */
  items: [],
  selected: -1,
  /** Ids seen in the queue so far (null before the first load). */
  known: null,
  openId: null,
  detail: null,
  /** Per case: { text, private, key } */
  drafts: new Map(),
  replies: [],
  refreshTimer: null,
  /** Bumped by every read, so a slow answer never overwrites a newer one. */
  queueSeq: 0,
  caseSeq: 0,
  pending: { queue: false, case: false },
};

// ---------------------------------------------------------------- errors

function showError(error) {
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  console.error(error);
  const box = $('#errors');
  const item = h('div', { class: 'error' },
    h('span', {}, message),
    h('button', { type: 'button', 'aria-label': 'Dismiss this error', onclick: () => item.remove() }, 'Dismiss'));
  box.append(item);
  while (box.children.length > 5) box.firstElementChild.remove();
}

function clearErrors() {
  $('#errors').replaceChildren();
}

function announce(text) {
  const region = $('#announcer');
  region.append(h('p', {}, text));
  while (region.children.length > 5) region.firstElementChild.remove();
}

/** Runs an API call from a button or form: errors shown, button locked meanwhile. */
async function guarded(control, work) {
  if (control?.disabled) return undefined;
  if (control) control.disabled = true;
  try {
    return await work();
  } catch (e) {
    showError(e);
    return undefined;
  } finally {
    if (control) control.disabled = false;
  }
}

window.addEventListener('unhandledrejection', (e) => showError(e.reason));

// ---------------------------------------------------------------- login

function showLogin(message) {
  $('#login-view').hidden = false;
  $('#desk-view').hidden = true;
  $('#logout').hidden = true;
  $('#help-button').hidden = true;
  $('#who').textContent = '';
  setLive('off', 'offline');
  if (message) showError(message);
  $('#token').focus();
}

async function login(token, brand) {
  const api = new Api(token);
  const me = await api.me();
  if (me.brand) {
    brand = me.brand;
  } else if (!brand) {
    $('#brand-field').hidden = false;
    $('#login-brand').focus();
    throw new Error('This is an agency token: enter the brand to work on.');
  }
  api.brand = brand;
  // Fails with 404 for a brand the token may not see.
  await api.cases({ limit: 1 });
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(BRAND_KEY, brand);
  state.api = api;
  state.me = me;
  startDesk();
}

function logout() {
  state.live?.stop();
  state.live = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(BRAND_KEY);
  Object.assign(state, {
    api: null, me: null, cases: [], hits: [], items: [], selected: -1,
    known: null, openId: null, detail: null, mode: 'queue',
  });
  state.drafts.clear();
  $('#queue').replaceChildren();
  closeCaseView();
  $('#token').value = '';
  $('#login-brand').value = '';
  $('#brand-field').hidden = true;
  $('#alert-banner').hidden = true;
  $('#report-view').hidden = true;
  $('#report-button').hidden = true;
  showLogin();
}

function startDesk() {
  $('#login-view').hidden = true;
  $('#desk-view').hidden = false;
  $('#logout').hidden = false;
  $('#help-button').hidden = false;
  $('#token').value = '';
  clearErrors();
  const { me, api } = state;
  $('#who').textContent = `${me.name} (${me.role.replace('_', ' ')}) · brand ${api.brand}`;
  state.brandReplies = [];
  renderSavedReplies();
  loadBrandReplies();
  loadAlerts();
  $('#report-button').hidden = false;
  loadQueue();
  state.live = new Live({
    url: api.eventsUrl(),
    headers: () => api.headers(),
    onEvent: onLiveEvent,
    onState: (s, detail) => {
      const text = {
        connecting: 'connecting…',
        live: 'live',
        reconnecting: `reconnecting${detail ? ` (${detail})` : '…'}`,
        failed: `offline: ${detail ?? 'refused'}`,
      }[s] ?? s;
      setLive(s, text);
      if (s === 'failed') showError(`Live updates stopped: ${detail}`);
    },
  });
  state.live.start();
  $('#queue').focus();
}

function setLive(s, text) {
  const el = $('#live');
  el.dataset.state = s;
  el.textContent = text;
}

// ---------------------------------------------------------------- live

function onLiveEvent(name, data) {
  let event = {};
  try {
    event = data ? JSON.parse(data) : {};
  } catch {
    event = {};
  }
  switch (name) {
    case 'open': // (re)connected: events may have been missed
    case 'resync':
    case 'messages':
      scheduleRefresh(true, true);
      break;
    case 'case':
      scheduleRefresh(true, event.case_id === state.openId);
      break;
    case 'alert':
      loadAlerts();
      break;
    default:
      break;
  }
}

/** Coalesces bursts of events into one re-read. */
function scheduleRefresh(queue, openCase) {
  state.pending.queue ||= queue;
  state.pending.case ||= openCase;
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => {
    const { queue: q, case: c } = state.pending;
    state.pending = { queue: false, case: false };
    if (q && state.mode === 'queue') loadQueue();
    if (c && state.openId !== null) loadCase();
  }, 150);
}

// ---------------------------------------------------------------- queue

function queueFilter() {
  const status = $('#filter-status').value;
  const owner = $('#filter-owner').value;
  const filter = { limit: 200 };
  if (status && status !== 'active') filter.status = status;
  if (owner === 'mine') filter.assignee = state.me.name;
  if (owner === 'unassigned') filter.unassigned = true;
  return { filter, activeOnly: status === 'active' };
}

async function loadQueue() {
  if (!state.api) return;
  const { filter, activeOnly } = queueFilter();
  const seq = ++state.queueSeq;
  let cases;
  try {
    ({ cases } = await state.api.cases(filter));
  } catch (e) {
    showError(e);
    return;
  }
  if (seq !== state.queueSeq) return;
  if (activeOnly) cases = cases.filter((c) => c.status !== 'closed');
  const fresh = [];
  if (state.known) {
    for (const c of cases) if (!state.known.has(c.id)) fresh.push(c);
  }
  state.known ??= new Set();
  for (const c of cases) state.known.add(c.id);
  state.cases = cases;
  if (state.mode !== 'queue') return;
  renderQueue(new Set(fresh.map((c) => c.id)));
  if (fresh.length === 1) {
    announce(`New case from ${fresh[0].author}: ${fresh[0].preview}`);
  } else if (fresh.length > 1) {
    announce(`${fresh.length} new cases`);
  }
}

function renderQueue(fresh = new Set()) {
  const list = $('#queue');
  const selectedId = state.items[state.selected];
  state.items = state.cases.map((c) => c.id);
  list.replaceChildren(...state.cases.map((c) => queueItem(c, fresh.has(c.id))));
  $('#queue-summary').textContent = state.cases.length === 0
    ? 'No cases here.'
    : `${state.cases.length} case${state.cases.length === 1 ? '' : 's'}, most urgent first`;
  restoreSelection(selectedId);
  tick();
}

function queueItem(c, isFresh) {
  return h('li', {
    id: `case-${c.id}`,
    role: 'option',
    tabindex: '-1',
    'aria-selected': 'false',
    class: `queue-item${isFresh ? ' fresh' : ''}`,
    dataset: { id: c.id, bucket: c.bucket, status: c.status },
    onclick: () => { select(state.items.indexOf(c.id)); openCase(c.id); },
  },
  h('div', { class: 'line1' },
    h('span', { class: `badge bucket-${c.bucket}`, title: `priority ${c.priority}` }, `${c.bucket} ${c.priority}`),
    h('span', { class: 'badge status' }, c.status),
    h('span', { class: 'author' }, c.author),
    slaClock(c.waiting_since)),
  h('div', { class: 'preview' }, c.preview),
  h('div', { class: 'line3' },
    h('span', {}, `#${c.id}`),
    h('span', { class: 'assignee' }, c.assignee ? `owner ${c.assignee}` : 'unassigned'),
    h('span', { class: 'team' }, c.team ? `team ${c.team}` : 'shared queue'),
    h('span', {}, c.channel),
    c.escalation && !c.escalation.answer ? h('span', {}, `escalated to ${c.escalation.team}`) : null));
}

function slaClock(waitingSince) {
  if (waitingSince === null || waitingSince === undefined) {
    return h('span', { class: 'sla', title: 'nothing waits for an answer' }, '—');
  }
  return h('span', {
    class: 'sla',
    title: `waiting since ${formatTime(waitingSince)}`,
    dataset: { waitingSince },
    'aria-label': 'customer waiting',
  }, formatWait(Date.now() - waitingSince));
}

/** Updates every SLA clock on the page, once a second. */
function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll('[data-waiting-since]')) {
    const since = Number(el.dataset.waitingSince);
    el.textContent = formatWait(now - since);
    el.classList.toggle('late', now - since > LATE_MS);
  }
}

function restoreSelection(id) {
  let index = id === undefined ? -1 : state.items.indexOf(id);
  if (index < 0 && state.items.length > 0) index = Math.min(Math.max(state.selected, 0), state.items.length - 1);
  select(index, false);
}

function select(index, focus = true) {
  const list = $('#queue');
  for (const el of list.querySelectorAll('[aria-selected="true"]')) el.setAttribute('aria-selected', 'false');
  state.selected = index;
  if (index < 0 || index >= state.items.length) {
    list.removeAttribute('aria-activedescendant');
    return;
  }
  const el = list.children[index];
  el.setAttribute('aria-selected', 'true');
  list.setAttribute('aria-activedescendant', el.id);
  if (focus) {
    el.focus();
    el.scrollIntoView({ block: 'nearest' });
  }
}

function move(delta) {
  if (state.items.length === 0) return;
  const next = state.selected < 0 ? 0 : Math.min(state.items.length - 1, Math.max(0, state.selected + delta));
  select(next);
}

// ---------------------------------------------------------------- search

async function search(q) {
  if (!q.trim()) {
    backToQueue();
    return;
  }
  const { hits } = await state.api.search(q);
  state.mode = 'search';
  state.hits = hits;
  state.items = hits.map((hit) => hit.case_id);
  $('#search-clear').hidden = false;
  $('#queue-summary').textContent = hits.length === 0
    ? `Nothing found for “${q}”.`
    : `${hits.length} case${hits.length === 1 ? '' : 's'} found for “${q}”, best first`;
  $('#queue').replaceChildren(...hits.map((hit) => h('li', {
    id: `case-${hit.case_id}`,
    role: 'option',
    tabindex: '-1',
    'aria-selected': 'false',
    class: 'queue-item',
    dataset: { id: hit.case_id },
    onclick: () => { select(state.items.indexOf(hit.case_id)); openCase(hit.case_id); },
  },
  h('div', { class: 'line1' },
    h('span', { class: 'badge status' }, hit.status),
    h('span', { class: 'author' }, `#${hit.case_id}`),
    h('span', {}, `in a ${hit.source}`),
    h('span', { class: 'sla' }, formatTime(hit.at))),
  h('div', { class: 'preview' }, hit.snippet))));
  select(hits.length > 0 ? 0 : -1);
}

function backToQueue() {
  state.mode = 'queue';
  state.hits = [];
  $('#search').value = '';
  $('#search-clear').hidden = true;
  renderQueue();
  loadQueue();
}

// ---------------------------------------------------------------- case view

function closeCaseView() {
  state.openId = null;
  state.detail = null;
  $('#case-title').textContent = 'No case open';
  $('#case-empty').hidden = false;
  $('#case-body').hidden = true;
}

async function openCase(id) {
  if (id === undefined || id === null) return;
  saveDraft();
  state.openId = id;
  state.detail = null;
  restoreDraft();
  await loadCase();
}

async function loadCase() {
  const id = state.openId;
  if (id === null) return;
  const seq = ++state.caseSeq;
  let detail;
  try {
    detail = await state.api.detail(id);
  } catch (e) {
    showError(e);
    return;
  }
  // Another case was opened, or a newer read started, meanwhile.
  if (state.openId !== id || seq !== state.caseSeq) return;
  state.detail = detail;
  renderCase();
}

function renderCase() {
  const { case: c, messages, events, actions } = state.detail;
  const me = state.me;
  $('#case-empty').hidden = true;
  $('#case-body').hidden = false;
  $('#case-title').textContent = `Case #${c.id}: ${customerName()}`;
  $('#case-body').dataset.status = c.status;

  $('#case-meta').replaceChildren(
    h('span', { class: `badge bucket-${c.bucket}` }, `${c.bucket} ${c.priority}`),
    h('span', { class: 'badge status', id: 'case-status' }, c.status),
    h('span', { id: 'case-assignee' }, c.assignee ? `owner ${c.assignee}` : 'unassigned'),
    h('span', {}, c.team ? `team ${c.team}` : 'shared queue'),
    h('span', {}, `${c.channel} (${c.connector})`),
    h('span', {}, 'waiting: ', slaClock(c.waiting_since)),
    ...(c.first_response_at ? [h('span', {}, `first answer ${formatTime(c.first_response_at)}`)] : []),
  );

  const closed = c.status === 'closed';
  $('#act-claim').disabled = closed || c.assignee === me.name;
  $('#act-release').disabled = !c.assignee || (c.assignee !== me.name && me.role !== 'admin');
  $('#act-close').disabled = closed;
  $('#act-reopen').disabled = !closed;

  $('#case-reasons').replaceChildren(...(c.reasons.length === 0 ? [] : [
    h('h3', {}, 'Why this priority'),
    h('ul', {}, c.reasons.map((r) => h('li', {}, r.points ? `${r.text} (${r.points > 0 ? '+' : ''}${r.points})` : r.text))),
  ]));

  const esc = c.escalation;
  $('#case-escalation').replaceChildren(...(esc ? [
    h('h3', {}, 'Escalation'),
    h('div', { class: 'box' },
      h('p', {}, `To ${esc.team}: ${esc.question}`),
      h('p', { class: 'hint' }, `asked by ${esc.asked_by}, ${formatTime(esc.asked_at)}`),
      esc.answer
        ? h('p', {}, `Answer from ${esc.answered_by} (${formatTime(esc.answered_at)}): ${esc.answer}`)
        : h('p', { class: 'hint' }, 'waiting for the answer')),
  ] : []));
  // Only the second line and admins answer escalations.
  $('#answer-form').hidden = !(esc && !esc.answer && me.role !== 'agent');

  $('#conversation').replaceChildren(...messages.map(messageItem));
  $('#actions').replaceChildren(...(actions.length === 0
    ? [h('li', { class: 'hint' }, 'Nothing sent yet.')]
    : actions.map(actionItem)));
  $('#audit').replaceChildren(...events.map((e) => h('li', {},
    `${formatTime(e.at)} · ${e.actor} · ${e.kind.replaceAll('_', ' ')}`,
    describeDetail(e))));
  tick();
}

function messageItem(stored) {
  const m = stored.message;
  const inbound = m.direction === 'inbound';
  const flags = [stored.edited && 'edited', stored.deleted && 'deleted on the channel', stored.hidden && 'hidden'].filter(Boolean);
  const link = m.permalink ? safeLink(m.permalink, 'open on the channel') : null;
  return h('li', {
    class: `${inbound ? 'inbound' : 'outbound'} ${m.visibility}`,
    dataset: { direction: m.direction, visibility: m.visibility },
  },
  h('div', { class: 'head' },
    h('strong', {}, inbound ? '⇠ from the customer' : '⇢ from the brand'),
    h('span', {}, `${m.visibility} ${m.kind.replaceAll('_', ' ')}`),
    h('span', {}, m.author.display_name || m.author.handle, m.author.handle && m.author.display_name ? ` (${m.author.handle})` : ''),
    h('span', {}, formatTime(m.created_at)),
    flags.length ? h('span', {}, flags.join(', ')) : null,
    link),
  m.subject ? h('div', { class: 'subject' }, m.subject) : null,
  h('div', { class: 'text' }, m.text));
}

function actionLabel(action) {
  switch (action.kind) {
    case 'reply': return ['public reply', action.value.text];
    case 'private_reply': return ['private reply', action.value.text];
    case 'react': return ['reaction', action.value];
    case 'hide': return ['hide', ''];
    case 'unhide': return ['unhide', ''];
    default: return [action.kind, ''];
  }
}

function actionItem(a) {
  const [label, text] = actionLabel(a.action);
  const retry = a.state === 'failed'
    ? h('button', {
      type: 'button',
      'aria-label': `Retry action ${a.id}`,
      onclick: (ev) => guarded(ev.currentTarget, async () => {
        await state.api.retry(a.id);
        announce(`Action ${a.id} sent`);
        await Promise.all([loadCase(), loadQueue()]);
      }),
    }, 'Retry')
    : null;
  const link = a.result?.permalink ? safeLink(a.result.permalink, 'view') : null;
  return h('li', { dataset: { actionId: a.id, state: a.state } },
    h('span', { class: `state state-${a.state}` }, a.state),
    h('span', {}, label),
    h('span', { class: 'text' }, text),
    h('span', { class: 'hint' }, `by ${a.requested_by}, ${formatTime(a.updated_at)}${a.attempts > 1 ? `, ${a.attempts} attempts` : ''}`),
    a.error ? h('span', { class: 'state-failed' }, a.error) : null,
    link,
    retry);
}

function describeDetail(e) {
  const d = e.detail ?? {};
  const parts = [];
  for (const key of ['text', 'team', 'question', 'answer', 'reason', 'error', 'agent']) {
    if (typeof d[key] === 'string' && d[key]) parts.push(`${key}: ${d[key]}`);
  }
  if (d.action_id !== undefined) parts.push(`action ${d.action_id}`);
  if (e.channel) parts.push(`via ${e.channel}`);
  return parts.length ? ` — ${parts.join('; ')}` : '';
}

// ---------------------------------------------------------------- case actions

function requireCase() {
  if (state.openId === null) {
    showError('Open a case first (j/k and Enter).');
    return false;
  }
  return true;
}

async function caseOp(button, op, done) {
  if (!requireCase()) return;
  const id = state.openId;
  const result = await guarded(button, () => op(id));
  if (result !== undefined) {
    if (done) announce(done);
    await Promise.all([loadCase(), loadQueue()]);
  }
}

// Drafts: one per case; each keeps the idempotency key it was given when
// it was started, so sending it twice (a double click, a retry after a
// dropped connection) sends once.

function currentDraft() {
  if (state.openId === null) return null;
  let draft = state.drafts.get(state.openId);
  if (!draft) {
    draft = { text: '', private: false, key: `inbox-${randomHex()}` };
    state.drafts.set(state.openId, draft);
  }
  return draft;
}

function saveDraft() {
  const draft = currentDraft();
  if (!draft) return;
  draft.text = $('#reply-text').value;
  draft.private = $('#reply-private').checked;
}

function restoreDraft() {
  const draft = currentDraft();
  $('#reply-text').value = draft?.text ?? '';
  $('#reply-private').checked = draft?.private ?? false;
  showReplyMode();
}

function showReplyMode() {
  const priv = $('#reply-private').checked;
  $('#reply-form').classList.toggle('private-mode', priv);
  $('#reply-mode').textContent = priv ? 'This reply goes out in private.' : 'This reply is public.';
}

async function sendReply() {
  if (!requireCase()) return;
  saveDraft();
  const id = state.openId;
  const draft = currentDraft();
  const button = $('#reply-send');
  if (button.disabled) return;
  button.disabled = true;
  try {
    const action = await state.api.reply(id, draft.text, draft.private, draft.key);
    state.drafts.delete(id);
    if (state.openId === id) restoreDraft();
    announce(`${draft.private ? 'Private reply' : 'Reply'} ${action.state}`);
  } catch (e) {
    // A failed send is recorded (Retry it from the list); a new draft
    // starts. Anything else leaves the draft and its key as they were.
    if (e instanceof ApiError && e.body?.action) {
      state.drafts.delete(id);
      if (state.openId === id) restoreDraft();
    }
    showError(e);
  } finally {
    button.disabled = false;
  }
  await Promise.all([state.openId === id ? loadCase() : null, loadQueue()]);
}

function focusReply(isPrivate) {
  if (!requireCase()) return;
  $('#reply-private').checked = isPrivate;
  saveDraft();
  showReplyMode();
  $('#reply-text').focus();
}

// ---------------------------------------------------------------- saved replies

/** The brand's own replies ([brand.replies] in the host's config), listed
 * before this browser's; they cannot be changed from here. */
async function loadBrandReplies() {
  try {
    const { replies } = await state.api.request('GET', `/brands/${encodeURIComponent(state.api.brand)}/replies`);
    state.brandReplies = replies.map((r) => ({ title: `${r.name} (brand)`, text: r.text, brand: true }));
    renderSavedReplies();
  } catch (e) {
    showError(`Brand replies: ${e.message}`);
  }
}

function renderSavedReplies() {
  state.replies = [...(state.brandReplies ?? []), ...loadReplies()];
  const select = $('#saved-replies');
  select.replaceChildren(...state.replies.map((r, i) => h('option', { value: i }, r.title)));
  $('#saved-insert').disabled = state.replies.length === 0;
  $('#saved-delete').disabled = state.replies.length === 0;
}

function customerName() {
  const messages = state.detail?.messages ?? [];
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    const m = messages[i].message;
    if (m.direction === 'inbound') return m.author.display_name || m.author.handle;
  }
  return state.detail?.case.author ?? '';
}

function customerHandle() {
  const messages = state.detail?.messages ?? [];
  const first = messages.find((m) => m.message.direction === 'inbound');
  return first?.message.author.handle ?? '';
}

function insertSavedReply() {
  if (!requireCase()) return;
  const reply = state.replies[Number($('#saved-replies').value)];
  if (!reply) return;
  const text = fillPlaceholders(reply.text, {
    name: customerName(),
    handle: customerHandle(),
    agent: state.me.name,
  });
  const box = $('#reply-text');
  const start = box.selectionStart ?? box.value.length;
  const end = box.selectionEnd ?? box.value.length;
  box.setRangeText(text, start, end, 'end');
  saveDraft();
  box.focus();
}

function saveSavedReply() {
  const text = $('#reply-text').value.trim();
  const title = $('#saved-title').value.trim();
  if (!text || !title) {
    showError('To save a reply, write its text in the reply box and give it a title.');
    return;
  }
  const replies = loadReplies().filter((r) => r.title !== title);
  replies.push({ title, text });
  storeReplies(replies);
  $('#saved-title').value = '';
  renderSavedReplies();
  announce(`Saved reply “${title}” stored`);
}

function deleteSavedReply() {
  const chosen = state.replies[Number($('#saved-replies').value)];
  if (chosen?.brand) {
    showError('Brand replies are set in the host configuration ([brand.replies]); they cannot be deleted here.');
    return;
  }
  const index = Number($('#saved-replies').value) - (state.brandReplies?.length ?? 0);
  const replies = loadReplies();
  if (!replies[index]) return;
  const [gone] = replies.splice(index, 1);
  storeReplies(replies);
  renderSavedReplies();
  announce(`Saved reply “${gone.title}” deleted`);
}

// ---------------------------------------------------------------- keyboard

function isTyping(el) {
  return el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement;
}

function onKey(e) {
  if (!state.api) return;
  const target = e.target;
  if (isTyping(target)) {
    if (e.key === 'Escape') target.blur();
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      const form = target.closest('form');
      if (form) {
        e.preventDefault();
        form.requestSubmit();
      }
    }
    return;
  }
  if ($('#help').open || e.ctrlKey || e.metaKey || e.altKey) return;
  const onButton = target instanceof HTMLButtonElement || target instanceof HTMLAnchorElement;
  const keys = {
    j: () => move(1),
    k: () => move(-1),
    Enter: () => { if (!onButton) openCase(state.items[state.selected]); },
    c: () => caseOp($('#act-claim'), (id) => state.api.claim(id), 'Claimed'),
    r: () => focusReply(false),
    p: () => focusReply(true),
    e: () => { if (requireCase()) $('#escalate-team').focus(); },
    n: () => { if (requireCase()) $('#note-text').focus(); },
    x: () => caseOp($('#act-close'), (id) => state.api.close(id), 'Closed'),
    '/': () => $('#search').focus(),
    g: () => showReport(),
    '?': () => $('#help').showModal(),
  };
  const action = keys[e.key];
  if (!action || (e.key === 'Enter' && onButton)) return;
  e.preventDefault();
  action();
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('#login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    const token = $('#token').value.trim();
    if (!token) {
      showError('Paste your API token first.');
      return;
    }
    const button = e.submitter ?? $('#login-form button');
    await guarded(button, () => login(token, $('#login-brand').value.trim()));
  });
  $('#logout').addEventListener('click', logout);
  $('#help-button').addEventListener('click', () => $('#help').showModal());
  $('#help-close').addEventListener('click', () => $('#help').close());
  $('#filters').addEventListener('change', () => { if (state.mode === 'queue') loadQueue(); else backToQueue(); });
  $('#filters').addEventListener('submit', (e) => e.preventDefault());
  $('#search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    guarded(e.submitter ?? null, () => search($('#search').value));
  });
  $('#search-clear').addEventListener('click', backToQueue);

  $('#act-claim').addEventListener('click', (e) => caseOp(e.currentTarget, (id) => state.api.claim(id), 'Claimed'));
  $('#act-release').addEventListener('click', (e) => caseOp(e.currentTarget, (id) => state.api.release(id), 'Released'));
  $('#act-close').addEventListener('click', (e) => caseOp(e.currentTarget, (id) => state.api.close(id), 'Closed'));
  $('#act-reopen').addEventListener('click', (e) => caseOp(e.currentTarget, (id) => state.api.reopen(id), 'Reopened'));

  $('#reply-form').addEventListener('submit', (e) => { e.preventDefault(); sendReply(); });
  $('#reply-text').addEventListener('input', saveDraft);
  $('#reply-private').addEventListener('change', () => { saveDraft(); showReplyMode(); });
  $('#saved-insert').addEventListener('click', insertSavedReply);
  $('#saved-save').addEventListener('click', saveSavedReply);
  $('#saved-delete').addEventListener('click', deleteSavedReply);

  $('#escalate-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const team = $('#escalate-team').value.trim();
    const question = $('#escalate-question').value.trim();
    await caseOp(e.submitter, async (id) => {
      const result = await state.api.escalate(id, team, question);
      $('#escalate-team').value = '';
      $('#escalate-question').value = '';
      return result;
    }, `Escalated to ${team}`);
  });
  $('#answer-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const answer = $('#answer-text').value.trim();
    await caseOp(e.submitter, async (id) => {
      const result = await state.api.answerEscalation(id, answer);
      $('#answer-text').value = '';
      return result;
    }, 'Escalation answered');
  });
  $('#note-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = $('#note-text').value;
    await caseOp(e.submitter, async (id) => {
      const result = await state.api.note(id, text);
      $('#note-text').value = '';
      return result;
    }, 'Note added');
  });

  document.addEventListener('keydown', onKey);
  setInterval(tick, 1000);
}

async function boot() {
  wire();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    showLogin();
    return;
  }
  try {
    await login(token, sessionStorage.getItem(BRAND_KEY));
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(e);
  }
}

boot();

// ---------------------------------------------------------------- crisis alerts

/** Shows the brand's crisis alerts of the last 24 hours as a banner, with
 * the messages behind the newest one. */
async function loadAlerts() {
  let alerts = [];
  try {
    ({ alerts } = await state.api.request('GET', `/brands/${encodeURIComponent(state.api.brand)}/alerts`));
  } catch (e) {
    showError(`Alerts: ${e.message}`);
    return;
  }
  const banner = $('#alert-banner');
  if (alerts.length === 0) {
    banner.hidden = true;
    banner.replaceChildren();
    return;
  }
  const newest = alerts[0];
  const what = newest.kind === 'negative' ? 'negative messages' : 'messages';
  const team = newest.team ? ` for ${newest.team}` : '';
  banner.replaceChildren(
    h('strong', {}, `Crisis alert${team}: ${newest.observed} ${what} in ${minutes(newest.window_to - newest.window_from)} min, `
      + `about ${Math.max(1, Math.round(newest.expected))} expected`),
    h('span', {}, ` (raised ${new Date(newest.raised_at).toLocaleTimeString()}; ${alerts.length} alert(s) in 24 h)`),
    h('ul', {}, ...newest.messages.slice(0, 5).map((m) => h('li', {}, `${m.author}: ${m.text}`))),
  );
  banner.hidden = false;
  announce(`Crisis alert: ${newest.observed} ${what}`);
}

function minutes(ms) {
  return Math.round(ms / 60000);
}

// ---------------------------------------------------------------- report

/** The brand's report for the last 7 days: figures per channel, and
 * sentiment and volume per day as bar charts (SVG). */
async function showReport() {
  let report;
  try {
    report = await state.api.request('GET', `/brands/${encodeURIComponent(state.api.brand)}/report`);
  } catch (e) {
    showError(`Report: ${e.message}`);
    return;
  }
  const pct = (x) => (x == null ? '–' : `${Math.round(x * 100)} %`);
  const dur = (ms) => (ms == null ? '–' : ms < 3600000 ? `${Math.round(ms / 60000)} min` : `${(ms / 3600000).toFixed(1)} h`);
  const row = (label, f) => h('tr', {},
    h('td', {}, label), h('td', {}, String(f.cases)), h('td', {}, String(f.inbound_messages)),
    h('td', {}, pct(f.response_rate)), h('td', {}, dur(f.first_response.median_ms)),
    h('td', {}, dur(f.first_response.p90_ms)), h('td', {}, dur(f.resolution.median_ms)));
  const table = h('table', {},
    h('thead', {}, h('tr', {}, ...['channel', 'cases', 'messages', 'answered', 'first response (median)', 'p90', 'resolution (median)'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, row('all channels', report.totals), ...report.channels.map((c) => row(c.connector, c))));
  const days = report.sentiment;
  const body = $('#report-body');
  body.replaceChildren(
    table,
    h('h3', {}, 'Messages per day'),
    barChart(days.map((d) => ({ label: d.day.slice(5), value: d.messages })), false, 'messages per day'),
    h('h3', {}, 'Share of negative messages per day'),
    barChart(days.map((d) => ({ label: d.day.slice(5), value: Math.round((d.negative_share ?? 0) * 100) })), true, 'percent negative per day'),
    h('h3', {}, 'What customers wrote about'),
    h('p', {}, report.top_keywords.map((k) => `${k.word} (${k.count})`).join(', ') || '–'),
  );
  $('#report-view').hidden = false;
  $('#report-close').focus();
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A bar chart of `points` ({label, value}); its numbers are also in the
 * bars' titles for screen readers. */
function barChart(points, negative, label) {
  const width = Math.max(200, points.length * 36);
  const height = 120;
  const max = Math.max(1, ...points.map((p) => p.value));
  const chart = svg('svg', { width, height: height + 18, role: 'img', 'aria-label': label });
  points.forEach((p, i) => {
    const barHeight = Math.round((p.value / max) * height);
    const bar = svg('rect', {
      class: negative ? 'bar negative' : 'bar',
      x: i * 36 + 4, y: height - barHeight, width: 28, height: barHeight,
    });
    bar.append(svg('title', {}, `${p.label}: ${p.value}${negative ? ' %' : ''}`));
    chart.append(bar, svg('text', { class: 'axis', x: i * 36 + 4, y: height + 14 }, p.label));
  });
  return chart;
}

$('#report-button').addEventListener('click', showReport);
$('#report-close').addEventListener('click', () => {
  $('#report-view').hidden = true;
});
