// The operator console at /admin: asks for the admin token (kept in
// sessionStorage for this tab), then one view per section, each deep-linkable
// (/admin/users, /admin/orgs, /admin/audit, /admin/events, /admin/keys,
// /admin/approvals, /admin/clients, /admin/forward-auth; /admin is the overview). Every call sends the token as a
// Bearer token; a 401 forgets it and asks again.

import {
  el, field, checkbox, select, messageRegion, showMessage, busy, loading, badge, timeEl,
  confirmAction, setFlash, takeFlash, describeAgent, formatBytes, formatDuration, shortId, copyButton,
  loadList,
} from './dom.js';
import { api, request, withQuery, adminToken, setAdminToken } from './api.js';
import { rerender } from './router.js';
import { auditTypes } from './vocabulary.js';
import { setTopbar, setTitle, pageHeader } from './layout.js';
import { recoveryLinkPanel } from './recovery.js';
import { providersView } from './social.js';

const SECTIONS = [
  ['overview', '/admin', 'Overview'],
  ['users', '/admin/users', 'Users'],
  ['orgs', '/admin/orgs', 'Organizations'],
  ['audit', '/admin/audit', 'Audit log'],
  ['events', '/admin/events', 'Live events'],
  ['keys', '/admin/keys', 'Signing keys'],
  ['approvals', '/admin/approvals', 'Approvals'],
  ['clients', '/admin/clients', 'Clients'],
  ['providers', '/admin/providers', 'Sign-in providers'],
  ['forward-auth', '/admin/forward-auth', 'Forward-auth'],
];

const REGISTRATION = [['open', 'Open'], ['approval', 'Needs approval'], ['closed', 'Closed']];
const MFA_POLICIES = [['optional', 'Optional'], ['encouraged', 'Encouraged'], ['required', 'Required'], ['required_for_admins', 'Required for admins']];
const EVENTS_CAP = 200;
/** Audit types shown in red: failures, token replay, a lock (not an unlock). */
const DANGER_EVENT = /failed|replay|\.locked$/;

const call = (path, options = {}) => api(path, { auth: 'admin', ...options });

// ---- token ------------------------------------------------------------------

export function signOutConsole() {
  setAdminToken('');
  setFlash('You left the operator console.', 'info');
  rerender();
}

/** Called by the API layer on a 401 to an admin call. */
export function adminUnauthorized() {
  if (!adminToken()) return;
  setAdminToken('');
  setFlash('The admin token was not accepted. Enter it again.', 'error');
  if (location.pathname.startsWith('/admin')) rerender();
}

function tokenForm(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Operator console');
  const errorBox = messageRegion('admin-token-error', { alert: true });
  const input = el('input', {
    id: 'admin-token-input', type: 'password', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none',
  });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary btn-block', id: 'admin-token-submit' }, 'Open console');
  const form = el('form', { id: 'admin-token-form', novalidate: true },
    field('Admin token', input, el('span', null, 'Print it on the server with ', el('code', null, 'authd token'),
      '. It is kept in this tab only.')),
    submit);
  ctx.main.append(el('div', { class: 'page', id: 'admin-login-page' },
    el('section', { class: 'card narrow auth-card', 'aria-labelledby': 'admin-login-title' },
      el('img', { class: 'auth-logo', src: '/ui/favicon.svg', alt: '' }),
      el('h1', { id: 'admin-login-title' }, 'Operator console'),
      el('p', { class: 'card-lead' }, 'Enter the admin token to manage this authd server.'),
      errorBox, form)));
  const flash = takeFlash();
  if (flash) showMessage(errorBox, flash.text, flash.kind);
  input.focus();

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      showMessage(errorBox, 'Enter the admin token.');
      input.focus();
      return;
    }
    busy(submit, async () => {
      try {
        await request('/v1/status', { auth: 'admin', token });
        setAdminToken(token);
        rerender();
      } catch (err) {
        showMessage(errorBox, err.status === 401 ? 'That token is not valid.' : err.message);
        input.select();
      }
    });
  });
  ctx.ready('admin-login');
}

// ---- shell ------------------------------------------------------------------

let orgCache = null;

/** All orgs by id (for names in other views); `fresh` reloads. */
async function loadOrgs(fresh = false) {
  if (!orgCache || fresh) {
    orgCache = call(withQuery('/v1/orgs', { limit: 500 }))
      .then((data) => new Map(((data && data.items) || []).map((o) => [o.id, o])))
      .catch((err) => { orgCache = null; throw err; });
  }
  return orgCache;
}

/** Fills an org `<select>` with every org by slug and returns the orgs by
 * id; a failure is shown in `message` and leaves an empty map. */
async function fillOrgSelect(select, message) {
  try {
    const orgs = await loadOrgs();
    select.replaceChildren(...[...orgs.values()].map((o) => el('option', { value: o.slug }, o.name || o.slug)));
    return orgs;
  } catch (err) {
    showMessage(message, err.message);
    return new Map();
  }
}

function orgLabel(orgs, id) {
  if (!id) return el('span', { class: 'muted' }, '—');
  const org = orgs && orgs.get(id);
  return org ? el('span', { title: id }, org.slug) : el('code', { title: id }, shortId(id));
}

function table(id, headings, bodyId) {
  const tbody = el('tbody', { id: bodyId });
  return {
    tbody,
    node: el('div', { class: 'table-wrap' },
      el('table', { class: 'data', id }, el('thead', null, el('tr', null, headings.map((h) => el('th', { scope: 'col' }, h)))), tbody)),
  };
}

const cell = (label, ...content) => el('td', { 'data-label': label }, el('div', null, ...content));

function emptyRow(columns, text) {
  return el('tr', { class: 'empty-row' }, el('td', { colspan: String(columns) }, el('p', { class: 'empty' }, text)));
}

export async function renderAdmin(ctx) {
  if (!adminToken()) {
    tokenForm(ctx);
    return;
  }
  setTopbar({ mode: 'admin' });
  const name = ctx.path.split('/')[2] || 'overview';
  const section = SECTIONS.find(([key]) => key === name);
  const label = section ? section[2] : 'Not found';
  setTitle(`${label} · Operator console`);

  const flashBox = messageRegion('admin-flash');
  const content = el('div', { id: 'admin-content' });
  ctx.main.append(el('div', { class: 'page page-wide', id: 'admin-page', 'data-section': name },
    pageHeader(label),
    el('nav', { 'aria-label': 'Console sections' },
      el('div', { class: 'admin-nav', id: 'admin-nav' }, SECTIONS.map(([key, href, text]) => el('a', {
        href, 'data-test': `admin-nav-${key}`, 'aria-current': key === name ? 'page' : null,
      }, text)))),
    flashBox,
    content));
  const flash = takeFlash();
  if (flash) showMessage(flashBox, flash.text, flash.kind);

  if (!section) {
    content.append(el('p', { class: 'empty' }, 'There is no such section in the console.'));
    ctx.ready('admin-not-found');
    return;
  }
  await VIEWS[name](ctx, content);
}

// ---- overview ------------------------------------------------------------------

async function overview(ctx, content) {
  const section = el('section', { id: 'admin-overview', 'data-ready': 'false' }, loading());
  content.append(section);
  try {
    const [status, pending] = await Promise.all([
      call('/v1/status'),
      call(withQuery('/v1/approvals', { status: 'pending' })).catch(() => null),
    ]);
    const stat = (key, text, value) => el('div', { class: 'stat', 'data-key': key },
      el('div', { class: 'stat-label' }, text), el('div', { class: 'stat-value' }, value));
    const db = status.database || {};
    const pendingCount = pending && Array.isArray(pending.items) ? pending.items.length : null;
    const known = new Set(['version', 'uptime_seconds', 'database', 'admin_token_source']);
    const extra = Object.entries(status).filter(([key]) => !known.has(key));
    section.replaceChildren(
      el('div', { class: 'stat-grid', id: 'admin-status' },
        stat('version', 'Version', status.version || '—'),
        stat('uptime', 'Uptime', formatDuration(status.uptime_seconds)),
        stat('database-size', 'Database size', db.size_bytes === undefined ? '—' : formatBytes(db.size_bytes)),
        stat('schema-version', 'Schema version', db.schema_version ?? '—'),
        stat('pending-approvals', 'Pending approvals', pendingCount === null ? '—'
          : el('a', { href: '/admin/approvals', id: 'admin-pending-link' }, String(pendingCount)))),
      el('div', { class: 'card' },
        el('h2', null, 'Server'),
        el('dl', { class: 'kv', id: 'admin-status-details' },
          el('dt', null, 'Database file'), el('dd', null, el('code', null, db.path || '—')),
          el('dt', null, 'Admin token from'), el('dd', null, status.admin_token_source || '—'),
          extra.map(([key, value]) => [
            el('dt', null, key.replace(/_/g, ' ')),
            el('dd', null, value && typeof value === 'object'
              ? Object.entries(value).map(([k, v]) => `${k.replace(/_/g, ' ')}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ')
              : String(value)),
          ]))));
  } catch (err) {
    section.replaceChildren(el('div', { class: 'msg msg-error', role: 'alert' }, err.message));
  }
  section.dataset.ready = 'true';
  ctx.ready('admin-overview');
}

// ---- users ------------------------------------------------------------------

async function users(ctx, content) {
  const filters = { q: ctx.query.get('q') || '', org: ctx.query.get('org') || '' };
  const message = messageRegion('admin-users-message');
  const search = el('input', { id: 'admin-user-search', type: 'search', value: filters.q, autocomplete: 'off', spellcheck: 'false' });
  const orgSelect = select('admin-user-org', [['', 'All organizations']], '');
  const submit = el('button', { type: 'submit', class: 'btn btn-primary', id: 'admin-user-search-submit' }, 'Search');
  const form = el('form', { id: 'admin-user-search-form', class: 'form-grid', role: 'search', novalidate: true },
    field('Email or name', search), field('Organization', orgSelect), el('div', { class: 'field field-button' }, submit));
  const { node, tbody } = table('admin-user-table', ['User', 'Organizations', 'Status', 'Created', 'Actions'], 'admin-user-list');
  const more = el('button', { type: 'button', class: 'btn', id: 'admin-users-more', hidden: true }, 'Load more');
  const section = el('section', { class: 'card', id: 'admin-users', 'data-ready': 'false' },
    form, message, node, el('div', { class: 'load-more' }, more));
  content.append(section);

  let orgs = new Map();
  try { orgs = await loadOrgs(); } catch { /* names fall back to ids */ }
  for (const org of orgs.values()) orgSelect.append(el('option', { value: org.id }, `${org.name} (${org.slug})`));
  const chosen = [...orgs.values()].find((o) => o.id === filters.org || o.slug === filters.org);
  orgSelect.value = chosen ? chosen.id : '';

  let cursor = null;
  const matches = (user) => {
    const q = filters.q.trim().toLowerCase();
    return !q || String(user.email).toLowerCase().includes(q) || String(user.name || '').toLowerCase().includes(q);
  };

  const detailRowOf = (id) => tbody.querySelector(`tr.detail-row[data-user-id="${CSS.escape(id)}"]`);

  const loadSessions = async (user, detailCell) => {
    detailCell.dataset.ready = 'false';
    detailCell.replaceChildren(loading('Loading sessions…'));
    try {
      const [data, detail] = await Promise.all([
        call(`/v1/users/${encodeURIComponent(user.id)}/sessions`),
        call(`/v1/users/${encodeURIComponent(user.id)}`),
      ]);
      const items = (data && data.items) || [];
      const keys = (detail && detail.webauthn) || [];
      detailCell.replaceChildren(
        el('h3', null, `Sessions of ${user.email}`),
        items.length
          ? el('ul', { class: 'list', 'data-test': 'user-session-list' }, items.map((s) => el('li', { 'data-session-id': s.id },
            el('div', { class: 'list-main' },
              el('div', { class: 'list-title' }, el('span', { title: s.user_agent || '' }, describeAgent(s.user_agent)),
                s.mfa_verified ? badge('2-step verified', 'success') : null),
              el('div', { class: 'list-meta' }, s.ip || '—', ' · ', orgLabel(orgs, s.org_id), ' · signed in ', timeEl(s.created_at),
                ' · active ', timeEl(s.last_active, { relativeTo: true }))))))
          : el('p', { class: 'empty' }, 'No active sessions.'),
        el('h3', null, `Passkeys and security keys of ${user.email}`),
        keys.length
          ? el('ul', { class: 'list', 'data-test': 'user-key-list' }, keys.map((k) => el('li', { 'data-credential-id': k.id },
            el('div', { class: 'list-main' },
              el('div', { class: 'list-title' }, k.name, ' ', badge(k.kind === 'passkey' ? 'Passkey' : 'Security key', k.kind === 'passkey' ? 'accent' : null, 'user-key-kind')),
              el('div', { class: 'list-meta' }, 'added ', timeEl(k.created_at), ' · ',
                k.last_used_at ? ['used ', timeEl(k.last_used_at, { relativeTo: true })] : 'never used')))))
          : el('p', { class: 'muted', 'data-test': 'user-key-empty' }, 'None.'));
      detailCell.dataset.ready = 'true';
    } catch (err) {
      detailCell.replaceChildren(el('p', { class: 'msg msg-error' }, err.message));
      detailCell.dataset.ready = 'true';
    }
  };

  const row = (user) => {
    const tr = el('tr', { 'data-user-id': user.id, 'data-email': user.email });
    const replaceWith = async (result, focusTest) => {
      const fresh = result && result.id ? result : await call(`/v1/users/${encodeURIComponent(user.id)}`);
      const next = row(fresh);
      tr.replaceWith(next);
      const target = next.querySelector(`[data-test="${focusTest}"]`) || next.querySelector('button');
      if (target) target.focus();
    };
    const action = (test, text, kind, handler) => {
      const button = el('button', {
        type: 'button', class: ['btn', 'btn-small', kind === 'danger' && 'btn-danger'], 'data-test': test,
        'aria-label': `${text}: ${user.email}`,
      }, text);
      button.addEventListener('click', () => handler(button));
      return button;
    };
    const run = (button, work) => busy(button, async () => {
      showMessage(message, '');
      try {
        await work();
      } catch (err) {
        showMessage(message, `${user.email}: ${err.message}`);
      }
    });

    const lockButton = user.locked
      ? action('user-unlock', 'Unlock', null, (b) => run(b, async () => {
        const result = await call(`/v1/users/${encodeURIComponent(user.id)}/unlock`, { method: 'POST', body: {} });
        showMessage(message, `Unlocked ${user.email}.`, 'success');
        await replaceWith(result, 'user-lock');
      }))
      : action('user-lock', 'Lock', null, (b) => run(b, async () => {
        const result = await call(`/v1/users/${encodeURIComponent(user.id)}/lock`, { method: 'POST', body: {} });
        showMessage(message, `Locked ${user.email}.`, 'success');
        await replaceWith(result, 'user-unlock');
        // Locking signs the user out everywhere: the open list is stale.
        const open = detailRowOf(user.id);
        if (open) loadSessions(user, open.firstElementChild);
      }));

    const sessionsButton = action('user-sessions', 'Sessions', null, (b) => {
      const open = detailRowOf(user.id);
      if (open) {
        open.remove();
        b.setAttribute('aria-expanded', 'false');
        return;
      }
      const detailCell = el('td', { colspan: '5', id: `user-sessions-${user.id}`, 'data-ready': 'false' });
      tr.after(el('tr', { class: 'detail-row', 'data-user-id': user.id }, detailCell));
      b.setAttribute('aria-expanded', 'true');
      b.setAttribute('aria-controls', detailCell.id);
      loadSessions(user, detailCell);
    });
    sessionsButton.setAttribute('aria-expanded', detailRowOf(user.id) ? 'true' : 'false');

    const revokeButton = action('user-revoke-sessions', 'Revoke sessions', 'danger', async (b) => {
      if (!(await confirmAction(`${user.email} will be signed out on every device.`, {
        title: 'Revoke all sessions?', confirmLabel: 'Revoke sessions',
      }))) return;
      run(b, async () => {
        const result = await call(`/v1/users/${encodeURIComponent(user.id)}/sessions/revoke`, { method: 'POST', body: {} });
        const n = result && typeof result.revoked === 'number' ? result.revoked : null;
        showMessage(message, n === null ? `Signed ${user.email} out everywhere.`
          : `Signed ${user.email} out of ${n} session${n === 1 ? '' : 's'}.`, 'success');
        const open = detailRowOf(user.id);
        if (open) loadSessions(user, open.firstElementChild);
      });
    });

    const resetButton = user.mfa_enrolled ? action('user-reset-mfa', 'Reset MFA', 'danger', async (b) => {
      if (!(await confirmAction(`${user.email} will sign in with the password alone until they set up two-step verification again. Their recovery codes stop working.`, {
        title: 'Reset two-step verification?', confirmLabel: 'Reset MFA',
      }))) return;
      run(b, async () => {
        const result = await call(`/v1/users/${encodeURIComponent(user.id)}/mfa`, { method: 'DELETE' });
        showMessage(message, `Two-step verification of ${user.email} was reset.`, 'success');
        await replaceWith(result, 'user-sessions');
      });
    }) : null;

    // A single-use link with which the person adds a passkey (the way in
    // for an account without a password); shown once, to copy.
    const passkeyLinkButton = action('user-passkey-link', 'Passkey link', null, (b) => run(b, async () => {
      const link = await call(`/v1/users/${encodeURIComponent(user.id)}/passkey-link`, { method: 'POST', body: {} });
      showMessage(message, el('div', { id: 'passkey-link-result' },
        el('p', null, `Give ${user.email} this link to add a passkey. It works once, until `, timeEl(link.expires_at), '.'),
        el('code', { class: 'secret', id: 'passkey-link-url' }, link.url),
        el('div', { class: 'actions' }, copyButton(() => link.url, { id: 'passkey-link-copy' }))), 'success');
    }));

    // A single-use password-reset link for a person without mail (web/recovery.js).
    const recoveryButton = action('user-recovery-link', 'Recovery link', null, (b) => run(b, async () => {
      const link = await call(`/v1/users/${encodeURIComponent(user.id)}/recovery-link`, { method: 'POST', body: {} });
      showMessage(message, recoveryLinkPanel(user.email, link), 'success');
    }));

    const badges = [
      user.passkeys_only ? badge('Passkeys only', 'accent', 'badge-passwordless') : null,
      user.locked ? badge('Locked', 'danger', 'badge-locked') : null,
      user.disabled ? badge('Disabled', 'danger', 'badge-disabled') : null,
      user.pending_approval ? badge('Pending approval', 'warning', 'badge-pending') : null,
      user.mfa_enrolled ? badge('MFA', 'success', 'badge-mfa') : null,
      user.email_verified ? badge('Email verified', 'success', 'badge-email-verified') : null,
    ].filter(Boolean);

    tr.append(
      cell('User', el('div', { class: 'list-title' }, user.email), user.name ? el('div', { class: 'muted small' }, user.name) : null),
      cell('Orgs', el('div', null, (user.memberships || []).map((m) => el('div', { 'data-org-id': m.org_id },
        orgLabel(orgs, m.org_id), ' ', badge(m.role, m.role === 'admin' ? 'accent' : null))))),
      cell('Status', el('div', { class: 'badges' }, badges.length ? badges : badge('Active', null, 'badge-active'))),
      cell('Created', timeEl(user.created_at, { onlyDate: true })),
      el('td', { 'data-label': 'Actions', class: 'actions-cell' },
        el('div', { class: 'cell-actions' }, lockButton, sessionsButton, revokeButton, resetButton, passkeyLinkButton, recoveryButton)));
    return tr;
  };

  const load = async (reset) => {
    section.dataset.ready = 'false';
    try {
      const data = await call(withQuery('/v1/users', {
        q: filters.q.trim(), org: filters.org, cursor: reset ? null : cursor, limit: 50,
      }));
      const items = ((data && data.items) || []).filter(matches);
      if (reset) tbody.replaceChildren();
      tbody.append(...items.map(row));
      if (!tbody.querySelector('tr[data-user-id]')) tbody.replaceChildren(emptyRow(5, 'No users match.'));
      cursor = data && data.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      showMessage(message, err.message);
    } finally {
      section.dataset.ready = 'true';
    }
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    filters.q = search.value;
    filters.org = orgSelect.value;
    history.replaceState(null, '', withQuery('/admin/users', { q: filters.q.trim(), org: filters.org }));
    showMessage(message, '');
    busy(submit, () => load(true));
  });
  more.addEventListener('click', () => busy(more, () => load(false)));

  await load(true);
  ctx.ready('admin-users');
}

// ---- orgs ------------------------------------------------------------------

async function orgsView(ctx, content) {
  const createMessage = messageRegion('org-create-message');
  const slug = el('input', { id: 'org-create-slug', type: 'text', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
  const name = el('input', { id: 'org-create-name', type: 'text', autocomplete: 'off' });
  const registration = select('org-create-registration', REGISTRATION, 'open');
  const mfaPolicy = select('org-create-mfa-policy', MFA_POLICIES, 'optional');
  const createButton = el('button', { type: 'submit', class: 'btn btn-primary', id: 'org-create-submit' }, 'Create organization');
  const createForm = el('form', { id: 'org-create-form', novalidate: true },
    el('div', { class: 'form-grid' },
      field('Slug', slug, 'Lowercase letters, digits, - and _.'),
      field('Name', name),
      field('Registration', registration),
      field('MFA policy', mfaPolicy)),
    createButton);

  const message = messageRegion('admin-orgs-message');
  const { node, tbody } = table('admin-org-table', ['Organization', 'Registration', 'MFA policy', 'Max sessions', 'Created', 'Actions'], 'admin-org-list');
  const listCard = el('section', { class: 'card', id: 'admin-orgs', 'data-ready': 'false' },
    el('h2', null, 'Organizations'), message, node);
  content.append(
    el('section', { class: 'card', id: 'admin-org-create' }, el('h2', null, 'New organization'), createMessage, createForm),
    listCard);

  const labelOf = (options, value) => (options.find(([v]) => v === value) || [value, value])[1];

  const editor = (org, tr) => {
    const formMessage = messageRegion('org-edit-message');
    const editName = el('input', { id: 'org-edit-name', type: 'text', value: org.name });
    const editRegistration = select('org-edit-registration', REGISTRATION, org.registration);
    const editMfa = select('org-edit-mfa-policy', MFA_POLICIES, org.mfa_policy);
    const maxSessions = el('input', {
      id: 'org-edit-max-sessions', type: 'number', min: '1', step: '1', inputmode: 'numeric',
      value: org.max_sessions_per_user === null || org.max_sessions_per_user === undefined ? '' : String(org.max_sessions_per_user),
    });
    const policy = { ...(org.password_policy || {}) };
    const numbers = ['min_length', 'max_length', 'history_count'].map((key) => el('input', {
      id: `org-edit-pp-${key}`, type: 'number', min: '0', step: '1', inputmode: 'numeric', 'data-key': key,
      value: policy[key] === undefined ? '' : String(policy[key]),
    }));
    const flags = ['require_uppercase', 'require_lowercase', 'require_digit', 'require_special', 'reject_common', 'reject_user_info']
      .map((key) => checkbox(`org-edit-pp-${key}`, key.replace(/_/g, ' '), { checked: !!policy[key], 'data-key': key }));
    const passwordless = checkbox('org-edit-allow-passwordless', 'Allow accounts with passkeys and no password', { checked: !!org.allow_passwordless });
    const save = el('button', { type: 'submit', class: 'btn btn-primary', id: 'org-edit-submit' }, 'Save changes');
    const cancel = el('button', { type: 'button', class: 'btn', id: 'org-edit-cancel' }, 'Cancel');
    const numberLabels = { min_length: 'Minimum length', max_length: 'Maximum length', history_count: 'Password history' };
    const form = el('form', { id: 'org-edit-form', novalidate: true },
      el('h3', null, `Edit ${org.name}`),
      formMessage,
      el('div', { class: 'form-grid' },
        field('Name', editName), field('Registration', editRegistration), field('MFA policy', editMfa),
        field('Max sessions per user', maxSessions, 'Empty for no limit.')),
      el('div', { class: 'check-grid' }, passwordless),
      el('fieldset', null, el('legend', null, 'Password policy'),
        el('div', { class: 'form-grid' }, numbers.map((input) => field(numberLabels[input.dataset.key], input))),
        el('div', { class: 'check-grid' }, flags)),
      el('div', { class: 'actions' }, save, cancel));
    const detail = el('tr', { class: 'detail-row', id: 'org-edit-row', 'data-org-id': org.id }, el('td', { colspan: '6' }, form));
    const close = () => {
      detail.remove();
      const edit = tr.querySelector('[data-test="org-edit"]');
      if (edit) { edit.setAttribute('aria-expanded', 'false'); edit.focus(); }
    };
    cancel.addEventListener('click', close);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const toNumber = (input) => (/^\d+$/.test(input.value.trim()) ? Number(input.value.trim()) : input.value.trim());
      const passwordPolicy = { ...policy };
      for (const input of numbers) if (input.value.trim() !== '') passwordPolicy[input.dataset.key] = toNumber(input);
      for (const label of flags) {
        const box = label.querySelector('input');
        passwordPolicy[box.dataset.key] = box.checked;
      }
      const body = {
        name: editName.value.trim(),
        registration: editRegistration.value,
        mfa_policy: editMfa.value,
        password_policy: passwordPolicy,
        max_sessions_per_user: maxSessions.value.trim() === '' ? null : toNumber(maxSessions),
        allow_passwordless: passwordless.querySelector('input').checked,
      };
      busy(save, async () => {
        try {
          const updated = await call(`/v1/orgs/${encodeURIComponent(org.id)}`, { method: 'PATCH', body });
          orgCache = null;
          detail.remove();
          const next = row(updated || { ...org, ...body });
          tr.replaceWith(next);
          showMessage(message, `Saved ${body.name || org.name}.`, 'success');
          next.querySelector('[data-test="org-edit"]').focus();
        } catch (err) {
          showMessage(formMessage, err.message);
        }
      });
    });
    return detail;
  };

  const row = (org) => {
    const edit = el('button', {
      type: 'button', class: 'btn btn-small', 'data-test': 'org-edit', 'aria-expanded': 'false', 'aria-label': `Edit ${org.name}`,
    }, 'Edit');
    const tr = el('tr', { 'data-org-id': org.id, 'data-slug': org.slug },
      cell('Org', el('div', { class: 'list-title' }, org.name), el('code', { class: 'small' }, org.slug)),
      cell('Registration', badge(labelOf(REGISTRATION, org.registration), org.registration === 'open' ? 'success' : org.registration === 'closed' ? null : 'warning')),
      cell('MFA policy', labelOf(MFA_POLICIES, org.mfa_policy)),
      cell('Max sessions', org.max_sessions_per_user ? String(org.max_sessions_per_user) : el('span', { class: 'muted' }, 'No limit')),
      cell('Created', timeEl(org.created_at, { onlyDate: true })),
      el('td', { 'data-label': 'Actions', class: 'actions-cell' }, el('div', { class: 'cell-actions' }, edit)));
    edit.addEventListener('click', () => {
      const open = document.getElementById('org-edit-row');
      const wasThis = open && open.dataset.orgId === org.id;
      if (open) {
        open.remove();
        tbody.querySelectorAll('[data-test="org-edit"]').forEach((b) => b.setAttribute('aria-expanded', 'false'));
      }
      if (wasThis) return;
      const detail = editor(org, tr);
      tr.after(detail);
      edit.setAttribute('aria-expanded', 'true');
      document.getElementById('org-edit-name').focus();
    });
    return tr;
  };

  createForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!slug.value.trim() || !name.value.trim()) {
      showMessage(createMessage, 'Enter a slug and a name.');
      (slug.value.trim() ? name : slug).focus();
      return;
    }
    showMessage(createMessage, '');
    busy(createButton, async () => {
      try {
        const org = await call('/v1/orgs', {
          method: 'POST',
          body: { slug: slug.value.trim(), name: name.value.trim(), registration: registration.value, mfa_policy: mfaPolicy.value },
        });
        orgCache = null;
        const placeholder = tbody.querySelector('tr.empty-row');
        if (placeholder) placeholder.remove();
        tbody.append(row(org));
        createForm.reset();
        showMessage(createMessage, `Created ${org.name} (${org.slug}).`, 'success');
      } catch (err) {
        showMessage(createMessage, err.message);
      }
    });
  });

  try {
    const orgs = await loadOrgs(true);
    tbody.replaceChildren(...(orgs.size ? [...orgs.values()].map(row) : [emptyRow(6, 'No organizations.')]));
  } catch (err) {
    showMessage(message, err.message);
  }
  listCard.dataset.ready = 'true';
  ctx.ready('admin-orgs');
}

// ---- audit ------------------------------------------------------------------

function toUnix(localValue) {
  if (!localValue) return '';
  const ms = new Date(localValue).getTime();
  return Number.isNaN(ms) ? '' : String(Math.floor(ms / 1000));
}

async function audit(ctx, content) {
  const q = ctx.query;
  const message = messageRegion('audit-message');
  const type = el('input', { id: 'audit-type', type: 'text', list: 'audit-type-options', value: q.get('type') || '', autocomplete: 'off', spellcheck: 'false' });
  const user = el('input', { id: 'audit-user', type: 'text', value: q.get('user') || '', autocomplete: 'off', spellcheck: 'false' });
  const org = select('audit-org', [['', 'All organizations']], '');
  const since = el('input', { id: 'audit-since', type: 'datetime-local', value: q.get('since') || '' });
  const until = el('input', { id: 'audit-until', type: 'datetime-local', value: q.get('until') || '' });
  const limit = el('input', { id: 'audit-limit', type: 'number', min: '1', max: '500', step: '1', value: q.get('limit') || '50', inputmode: 'numeric' });
  const apply = el('button', { type: 'submit', class: 'btn btn-primary', id: 'audit-filter-submit' }, 'Apply filters');
  const clear = el('button', { type: 'button', class: 'btn', id: 'audit-filter-reset' }, 'Clear');
  const form = el('form', { id: 'audit-filter-form', novalidate: true },
    el('datalist', { id: 'audit-type-options' }, auditTypes().map((t) => el('option', { value: t }))),
    el('div', { class: 'form-grid' },
      field('Event type', type), field('User ID', user), field('Organization', org),
      field('Since', since), field('Until', until), field('Page size', limit)),
    el('div', { class: 'actions' }, apply, clear));
  const { node, tbody } = table('audit-table', ['Time', 'Type', 'User', 'Org', 'IP', 'Reason'], 'audit-list');
  const more = el('button', { type: 'button', class: 'btn', id: 'audit-more', hidden: true }, 'Load more');
  const section = el('section', { class: 'card', id: 'admin-audit', 'data-ready': 'false' },
    form, message, node, el('div', { class: 'load-more' }, more));
  content.append(section);

  let orgs = new Map();
  try { orgs = await loadOrgs(); } catch { /* ids instead of slugs */ }
  for (const o of orgs.values()) org.append(el('option', { value: o.id }, `${o.name} (${o.slug})`));
  org.value = q.get('org') || '';

  let cursor = null;
  const filters = () => ({
    type: type.value.trim(), user: user.value.trim(), org: org.value,
    since: toUnix(since.value), until: toUnix(until.value), limit: limit.value.trim(),
  });

  const row = (record) => {
    const details = record.details && typeof record.details === 'object' && Object.keys(record.details).length
      ? el('div', { class: 'muted small mono' }, JSON.stringify(record.details)) : null;
    const userCell = record.user_id
      ? el('button', {
        type: 'button', class: 'link-button mono', title: `Show only ${record.user_id}`, 'data-test': 'audit-filter-user',
        onClick: () => { user.value = record.user_id; form.requestSubmit(); },
      }, shortId(record.user_id))
      : el('span', { class: 'muted' }, '—');
    return el('tr', { 'data-audit-id': record.id, 'data-type': record.type },
      cell('Time', timeEl(record.at)),
      cell('Type', badge(record.type, DANGER_EVENT.test(record.type) ? 'danger' : null)),
      cell('User', userCell),
      cell('Org', orgLabel(orgs, record.org_id)),
      cell('IP', el('span', { title: record.user_agent || '' }, record.ip || '—')),
      cell('Reason', record.reason || (details ? '' : el('span', { class: 'muted' }, '—')), details));
  };

  const load = async (reset) => {
    section.dataset.ready = 'false';
    try {
      const data = await call(withQuery('/v1/audit', { ...filters(), cursor: reset ? null : cursor }));
      const items = (data && data.items) || [];
      if (reset) tbody.replaceChildren();
      tbody.append(...items.map(row));
      if (!tbody.querySelector('tr[data-audit-id]')) tbody.replaceChildren(emptyRow(6, 'No events match.'));
      cursor = data && data.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      showMessage(message, err.message);
    } finally {
      section.dataset.ready = 'true';
    }
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    showMessage(message, '');
    history.replaceState(null, '', withQuery('/admin/audit', {
      type: type.value.trim(), user: user.value.trim(), org: org.value, since: since.value, until: until.value,
      limit: limit.value.trim() === '50' ? '' : limit.value.trim(),
    }));
    busy(apply, () => load(true));
  });
  clear.addEventListener('click', () => {
    form.reset();
    type.value = ''; user.value = ''; org.value = ''; since.value = ''; until.value = ''; limit.value = '50';
    form.requestSubmit();
  });
  more.addEventListener('click', () => busy(more, () => load(false)));

  await load(true);
  ctx.ready('admin-audit');
}

// ---- live events ---------------------------------------------------------------

async function events(ctx, content) {
  let orgs = new Map();
  try { orgs = await loadOrgs(); } catch { /* ids instead of slugs */ }
  if (!ctx.isCurrent()) return;

  const status = el('span', { class: 'status-dot', id: 'events-status', 'data-state': 'connecting' }, 'Connecting…');
  const pause = el('button', { type: 'button', class: 'btn btn-small', id: 'events-pause', 'aria-pressed': 'false' }, 'Pause');
  const clear = el('button', { type: 'button', class: 'btn btn-small', id: 'events-clear' }, 'Clear');
  const reconnect = el('button', { type: 'button', class: 'btn btn-small', id: 'events-reconnect', hidden: true }, 'Reconnect');
  const waiting = el('p', { class: 'muted small', id: 'events-buffered', role: 'status' });
  const empty = el('p', { class: 'empty', id: 'events-empty' }, 'Waiting for events. Sign in somewhere to see one arrive.');
  const list = el('ul', { class: 'events', id: 'events-list', 'aria-live': 'off' });
  const section = el('section', { class: 'card', id: 'admin-events', 'data-ready': 'false' },
    el('div', { class: 'card-head' }, status, el('div', { class: 'actions' }, pause, clear, reconnect)),
    waiting, empty, list);
  content.append(section);

  let source = null;
  let paused = false;
  let buffer = [];

  const setStatus = (state, text) => {
    status.dataset.state = state;
    status.textContent = text;
  };

  const item = (record) => el('li', { 'data-event-id': record.id || '', 'data-type': record.type || '', class: 'fresh' },
    el('div', null, timeEl(record.at)),
    el('div', null, badge(record.type || 'event', DANGER_EVENT.test(record.type || '') ? 'danger' : 'accent')),
    el('div', { class: 'small' },
      record.user_id ? ['user ', el('code', { title: record.user_id }, shortId(record.user_id)), ' · '] : null,
      record.org_id ? ['org ', orgLabel(orgs, record.org_id), ' · '] : null,
      record.ip || 'no IP',
      record.reason ? [' · ', record.reason] : null));

  const show = (nodes) => {
    empty.hidden = true;
    list.prepend(...nodes);
    while (list.children.length > EVENTS_CAP) list.lastElementChild.remove();
  };

  const receive = (record) => {
    if (paused) {
      buffer.unshift(record);
      if (buffer.length > EVENTS_CAP) buffer.length = EVENTS_CAP;
      waiting.textContent = `${buffer.length} new event${buffer.length === 1 ? '' : 's'} while paused.`;
      return;
    }
    show([item(record)]);
  };

  const connect = () => {
    if (source) source.close();
    reconnect.hidden = true;
    setStatus('connecting', 'Connecting…');
    source = new EventSource(`/v1/events/stream?token=${encodeURIComponent(adminToken())}`);
    source.addEventListener('open', () => {
      setStatus(paused ? 'paused' : 'open', paused ? 'Paused' : 'Live');
      section.dataset.ready = 'true';
    });
    const onData = (event) => {
      try { receive(JSON.parse(event.data)); } catch { /* not an audit record */ }
    };
    source.addEventListener('audit', onData);
    source.addEventListener('message', onData);
    source.addEventListener('lagged', (event) => {
      show([el('li', { class: 'fresh', 'data-type': 'lagged' },
        el('div', null, '—'), el('div', null, badge('missed', 'warning')),
        el('div', { class: 'small' }, `The stream fell behind and skipped ${event.data} events; the audit log has them all.`))]);
    });
    source.addEventListener('error', async () => {
      if (!source || source.readyState !== EventSource.CLOSED) {
        setStatus('connecting', 'Reconnecting…');
        return;
      }
      setStatus('error', 'Disconnected');
      reconnect.hidden = false;
      section.dataset.ready = 'true';
      // A rejected token closes the stream for good: check it, so a 401 asks again.
      try { await call('/v1/status'); } catch { /* handled centrally */ }
    });
  };

  pause.addEventListener('click', () => {
    paused = !paused;
    pause.setAttribute('aria-pressed', String(paused));
    pause.textContent = paused ? 'Resume' : 'Pause';
    if (paused) {
      setStatus('paused', 'Paused');
    } else {
      if (buffer.length) show(buffer.map(item));
      buffer = [];
      waiting.textContent = '';
      if (source && source.readyState === EventSource.OPEN) setStatus('open', 'Live');
    }
  });
  clear.addEventListener('click', () => {
    list.replaceChildren();
    buffer = [];
    waiting.textContent = '';
    empty.hidden = false;
  });
  reconnect.addEventListener('click', connect);

  ctx.onLeave(() => {
    if (source) source.close();
    source = null;
  });
  connect();
  ctx.ready('admin-events');
}

// ---- keys ------------------------------------------------------------------

async function keys(ctx, content) {
  const message = messageRegion('keys-message');
  const alg = select('keys-alg', [['', 'Keep the current algorithm'], ['RS256', 'RS256'], ['EdDSA', 'EdDSA (Ed25519)']], '');
  const rotate = el('button', { type: 'submit', class: 'btn btn-primary', id: 'keys-rotate' }, 'Rotate signing key');
  const form = el('form', { id: 'keys-rotate-form', novalidate: true },
    el('p', { class: 'card-lead' }, 'A new key signs tokens from now on. The old key stays in the JWKS until the tokens it signed have expired, so nothing breaks.'),
    field('Algorithm', alg), rotate);
  const { node, tbody } = table('keys-table', ['Key ID', 'Algorithm', 'Status', 'Created', 'Rotated out', 'Leaves JWKS'], 'keys-list');
  const section = el('section', { class: 'card', id: 'admin-keys', 'data-ready': 'false' }, el('h2', null, 'Keys'), node);
  content.append(el('section', { class: 'card', id: 'admin-keys-rotate' }, el('h2', null, 'Rotate'), message, form), section);

  const row = (key) => el('tr', { 'data-kid': key.kid, 'data-active': key.active ? 'true' : 'false' },
    cell('Key ID', el('code', null, key.kid)),
    cell('Algorithm', key.alg),
    cell('Status', key.active ? badge('Signing', 'success', 'key-active') : badge(key.rotated_out_at ? 'Verifying only' : 'Inactive')),
    cell('Created', timeEl(key.created_at)),
    cell('Rotated out', timeEl(key.rotated_out_at)),
    cell('Leaves JWKS', timeEl(key.retire_after)));

  const load = () => loadList({
    section, container: tbody, message, row,
    fetch: () => call('/v1/keys'),
    empty: () => emptyRow(6, 'No keys yet.'),
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!(await confirmAction('New tokens will be signed with a new key. Resource servers pick it up from the JWKS.', {
      title: 'Rotate the signing key?', confirmLabel: 'Rotate',
    }))) return;
    busy(rotate, async () => {
      try {
        const key = await call(withQuery('/v1/keys/rotate', { alg: alg.value }), { method: 'POST', body: {} });
        showMessage(message, key && key.kid ? `New signing key ${key.kid} (${key.alg}).` : 'The signing key was rotated.', 'success');
        await load();
      } catch (err) {
        showMessage(message, err.message);
      }
    });
  });

  await load();
  ctx.ready('admin-keys');
}

// ---- approvals ------------------------------------------------------------------

async function approvals(ctx, content) {
  const message = messageRegion('approvals-message');
  const initial = ctx.query.has('status') ? ctx.query.get('status') : 'pending';
  const statusSelect = select('approvals-status',
    [['pending', 'Pending'], ['approved', 'Approved'], ['denied', 'Denied'], ['expired', 'Expired'], ['', 'All']], initial);
  const { node, tbody } = table('approvals-table', ['Requested', 'User', 'Organization', 'Requested from', 'Status', 'Actions'], 'approvals-list');
  const section = el('section', { class: 'card', id: 'admin-approvals', 'data-ready': 'false' },
    el('form', { class: 'form-grid', novalidate: true, onSubmit: (e) => e.preventDefault() }, field('Show', statusSelect)),
    message, node);
  content.append(section);

  let orgs = new Map();
  try { orgs = await loadOrgs(); } catch { /* ids instead of slugs */ }

  const statusBadge = (status) => badge(status, { pending: 'warning', approved: 'success', denied: 'danger' }[status] || null, 'approval-status');

  const row = (approval) => {
    // The approval names who asks (email and name) while the account exists.
    const subject = approval.subject;
    const who = el('span', { 'data-test': 'approval-user', title: approval.subject_user_id || '' },
      subject ? subject.email
        : approval.subject_user_id ? el('code', null, shortId(approval.subject_user_id)) : '—');
    const tr = el('tr', { 'data-approval-id': approval.id, 'data-status': approval.status });
    const resolve = (approved, button) => busy(button, async () => {
      showMessage(message, '');
      const label = tr.dataset.email || approval.subject_user_id || approval.id;
      try {
        const result = await call(`/v1/approvals/${encodeURIComponent(approval.id)}/resolve`, { method: 'POST', body: { approved } });
        showMessage(message, `${approved ? 'Approved' : 'Denied'} ${label}.`, 'success');
        if (statusSelect.value === 'pending') {
          tr.remove();
          if (!tbody.querySelector('tr[data-approval-id]')) tbody.replaceChildren(emptyRow(6, 'Nothing is waiting for approval.'));
        } else {
          tr.replaceWith(row({ ...approval, ...(result || {}), status: (result && result.status) || (approved ? 'approved' : 'denied') }));
        }
      } catch (err) {
        showMessage(message, err.status === 409 ? `${label} was already resolved.` : err.message);
        if (err.status === 409) load();
      }
    });
    const actions = approval.status === 'pending' ? [
      el('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-test': 'approval-approve', onClick: (e) => resolve(true, e.currentTarget) }, 'Approve'),
      el('button', {
        type: 'button', class: 'btn btn-small btn-danger', 'data-test': 'approval-deny',
        onClick: async (e) => {
          const button = e.currentTarget;
          if (await confirmAction('The request is refused and the pending account is removed.', { title: 'Deny this sign-up?', confirmLabel: 'Deny' })) {
            resolve(false, button);
          }
        },
      }, 'Deny'),
    ] : [];
    tr.append(
      cell('Requested', timeEl(approval.requested_at), approval.links && approval.links.expires_at && approval.status === 'pending'
        ? el('div', { class: 'muted small' }, 'expires ', timeEl(approval.links.expires_at, { relativeTo: true })) : null),
      cell('User', who, el('div', { class: 'muted small', 'data-test': 'approval-name' },
        subject && subject.name ? `${subject.name} · ${approval.kind || ''}` : approval.kind || '')),
      cell('Org', orgLabel(orgs, approval.org_id)),
      cell('From', approval.requested_by_ip || '—', approval.requested_by_user_agent
        ? el('div', { class: 'muted small', title: approval.requested_by_user_agent }, describeAgent(approval.requested_by_user_agent)) : null),
      cell('Status', statusBadge(approval.status), approval.resolved_at ? el('div', { class: 'muted small' }, timeEl(approval.resolved_at)) : null),
      el('td', { 'data-label': 'Actions', class: 'actions-cell' }, el('div', { class: 'cell-actions' }, actions)));

    if (subject) tr.dataset.email = subject.email;
    return tr;
  };

  const load = () => loadList({
    section, container: tbody, message, row,
    fetch: () => call(withQuery('/v1/approvals', { status: statusSelect.value })),
    empty: () => emptyRow(6, statusSelect.value === 'pending' ? 'Nothing is waiting for approval.' : 'No approvals match.'),
  });

  statusSelect.addEventListener('change', () => {
    history.replaceState(null, '', statusSelect.value === 'pending' ? '/admin/approvals' : withQuery('/admin/approvals', { status: statusSelect.value || 'all' }));
    showMessage(message, '');
    load();
  });
  if (initial === 'all') statusSelect.value = '';

  await load();
  ctx.ready('admin-approvals');
}

// ---- clients (apps that sign in through authd) ---------------------------------

const GRANTS = [
  ['authorization_code', 'Authorization code'],
  ['refresh_token', 'Refresh token'],
  ['client_credentials', 'Client credentials'],
  ['urn:ietf:params:oauth:grant-type:device_code', 'Device code'],
];
const lines = (text) => text.split('\n').map((l) => l.trim()).filter(Boolean);

/** The secret, shown once after creating a client or issuing a new secret. */
function secretOnce(box, clientId, secret) {
  const value = el('code', { id: 'client-secret-value' }, secret);
  box.replaceChildren(el('div', { class: 'msg msg-success', id: 'client-secret-once', 'data-client-id': clientId },
    el('p', null, el('strong', null, 'Client secret — copy it now: it is not shown again.')),
    el('p', null, value),
    el('div', { class: 'actions' }, copyButton(() => secret, { id: 'client-secret-copy' }))));
}

async function clients(ctx, content) {
  const message = messageRegion('clients-message');
  const secretBox = el('div', { id: 'client-secret-box' });
  const name = el('input', { id: 'client-name', type: 'text', required: true, maxlength: '100' });
  const org = el('select', { id: 'client-org' });
  const kind = select('client-type', [['confidential', 'Confidential (has a secret)'], ['public', 'Public (PKCE, no secret)']], 'confidential');
  const redirects = el('textarea', { id: 'client-redirect-uris', rows: '3', spellcheck: 'false' });
  const logouts = el('textarea', { id: 'client-post-logout-uris', rows: '2', spellcheck: 'false' });
  const consent = select('client-consent', [['explicit', 'Ask each person once'], ['implicit', 'Do not ask (a first-party app)']], 'explicit');
  const roles = el('input', { id: 'client-allowed-roles', type: 'text', placeholder: 'admin, member' });
  const grants = GRANTS.map(([value, label]) => checkbox(`client-grant-${value.split(':').pop()}`, label,
    { value, checked: value === 'authorization_code' || value === 'refresh_token' }));
  const create = el('button', { type: 'submit', class: 'btn btn-primary', id: 'client-create' }, 'Create client');
  const form = el('form', { id: 'client-create-form', novalidate: true },
    field('Name', name), field('Organization', org, 'Only its members may sign in to the app.'),
    field('Type', kind),
    field('Redirect URIs', redirects, 'One per line, matched exactly. http only for 127.0.0.1, [::1] or localhost.'),
    field('Post-logout redirect URIs', logouts, 'One per line (RP-initiated logout).'),
    field('Consent', consent),
    field('Allowed roles', roles, 'Comma-separated; empty: every member.'),
    el('fieldset', { class: 'field', id: 'client-grants' }, el('legend', null, 'Grant types'), ...grants),
    create);
  const { node, tbody } = table('clients-table', ['Name', 'Client ID', 'Organization', 'Type', 'Redirect URIs', ''], 'clients-list');
  const editor = el('div', { id: 'client-editor' });
  const section = el('section', { class: 'card', id: 'admin-clients', 'data-ready': 'false' },
    el('h2', null, 'Clients'), node, editor);
  content.append(
    el('section', { class: 'card', id: 'admin-client-create' }, el('h2', null, 'New client'), message, secretBox, form),
    section);

  const orgs = await fillOrgSelect(org, message);

  const edit = (client) => {
    const uris = el('textarea', { id: 'client-edit-redirect-uris', rows: '3', spellcheck: 'false' });
    uris.value = (client.redirect_uris || []).join('\n');
    const after = el('textarea', { id: 'client-edit-post-logout-uris', rows: '2', spellcheck: 'false' });
    after.value = (client.post_logout_redirect_uris || []).join('\n');
    const save = el('button', { type: 'submit', class: 'btn btn-primary', id: 'client-edit-save' }, 'Save');
    const cancel = el('button', { type: 'button', class: 'btn', id: 'client-edit-cancel' }, 'Cancel');
    const editMessage = messageRegion('client-edit-message');
    const editForm = el('form', { id: 'client-edit-form', 'data-client-id': client.client_id, novalidate: true },
      el('h3', null, `Edit ${client.name}`), editMessage,
      field('Redirect URIs', uris), field('Post-logout redirect URIs', after),
      el('div', { class: 'actions' }, save, cancel));
    cancel.addEventListener('click', () => editor.replaceChildren());
    editForm.addEventListener('submit', (event) => {
      event.preventDefault();
      busy(save, async () => {
        try {
          await call(`/v1/clients/${encodeURIComponent(client.client_id)}`, {
            method: 'PATCH', body: { redirect_uris: lines(uris.value), post_logout_redirect_uris: lines(after.value) },
          });
          editor.replaceChildren();
          showMessage(message, `${client.name} was saved.`, 'success');
          await load();
        } catch (err) {
          showMessage(editMessage, err.message);
        }
      });
    });
    editor.replaceChildren(editForm);
    uris.focus();
  };

  const row = (client) => {
    const editButton = el('button', { type: 'button', class: 'btn btn-small', 'data-test': 'client-edit' }, 'Edit');
    editButton.addEventListener('click', () => edit(client));
    const rotate = el('button', { type: 'button', class: 'btn btn-small', 'data-test': 'client-rotate' }, 'New secret');
    rotate.hidden = client.type !== 'confidential';
    rotate.addEventListener('click', async () => {
      if (!(await confirmAction(`The current secret of ${client.name} stops working at once.`, {
        title: 'Issue a new secret?', confirmLabel: 'New secret',
      }))) return;
      busy(rotate, async () => {
        try {
          const issued = await call(`/v1/clients/${encodeURIComponent(client.client_id)}/secret`, { method: 'POST', body: {} });
          secretOnce(secretBox, client.client_id, issued.client_secret);
        } catch (err) {
          showMessage(message, err.message);
        }
      });
    });
    const remove = el('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-test': 'client-delete' }, 'Delete');
    remove.addEventListener('click', async () => {
      if (!(await confirmAction(`${client.name} can no longer sign anyone in, and its tokens end.`, {
        title: 'Delete this client?', confirmLabel: 'Delete',
      }))) return;
      busy(remove, async () => {
        try {
          await call(`/v1/clients/${encodeURIComponent(client.client_id)}`, { method: 'DELETE' });
          const shown = secretBox.querySelector('#client-secret-once');
          if (shown && shown.dataset.clientId === client.client_id) secretBox.replaceChildren();
          showMessage(message, `${client.name} was deleted.`, 'success');
          await load();
        } catch (err) {
          showMessage(message, err.message);
        }
      });
    });
    return el('tr', { 'data-client-id': client.client_id },
      cell('Name', client.name),
      cell('Client ID', el('code', null, client.client_id)),
      cell('Organization', orgLabel(orgs, client.org_id)),
      cell('Type', client.type),
      cell('Redirect URIs', ...(client.redirect_uris || []).map((u) => el('div', null, el('code', null, u)))),
      el('td', { class: 'actions-cell' }, el('div', { class: 'actions' }, editButton, rotate, remove)));
  };

  const load = () => loadList({
    section, container: tbody, message, row,
    fetch: () => call(withQuery('/v1/clients', { limit: 500 })),
    empty: () => emptyRow(6, 'No clients yet. Create one for each app that signs in through authd.'),
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(create, async () => {
      showMessage(message, '');
      try {
        const created = await call('/v1/clients', {
          method: 'POST',
          body: {
            name: name.value.trim(),
            org: org.value || undefined,
            type: kind.value,
            redirect_uris: lines(redirects.value),
            post_logout_redirect_uris: lines(logouts.value),
            consent: consent.value,
            allowed_roles: roles.value.split(',').map((r) => r.trim()).filter(Boolean),
            grant_types: grants.map((g) => g.querySelector('input')).filter((i) => i.checked).map((i) => i.value),
          },
        });
        if (created.client_secret) secretOnce(secretBox, created.client_id, created.client_secret);
        else secretBox.replaceChildren();
        showMessage(message, `${created.name} was created: client ID ${created.client_id}.`, 'success');
        form.reset();
        for (const input of grants.map((g) => g.querySelector('input'))) {
          input.checked = input.value === 'authorization_code' || input.value === 'refresh_token';
        }
        await load();
      } catch (err) {
        showMessage(message, err.message);
      }
    });
  });

  await load();
  ctx.ready('admin-clients');
}

// ---- forward-auth -----------------------------------------------------------------

async function forwardAuth(ctx, content) {
  const message = messageRegion('forward-auth-message');
  const summary = el('p', { class: 'card-lead', id: 'forward-auth-summary' });
  const { node, tbody } = table('forward-auth-rules', ['#', 'Hosts', 'Paths', 'Policy', 'Orgs', 'Roles'], 'forward-auth-rule-list');
  const section = el('section', { class: 'card', id: 'admin-forward-auth', 'data-ready': 'false' },
    el('h2', null, 'Rules'), message, summary, node,
    el('p', { class: 'hint' }, 'First match wins. The rules live in the config file ([forward_auth]).'));
  const userId = el('input', { id: 'forward-auth-user', type: 'text', spellcheck: 'false', placeholder: 'User ID' });
  const check = el('button', { type: 'submit', class: 'btn', id: 'forward-auth-check' }, 'Show');
  const reach = el('div', { id: 'forward-auth-reachable' });
  const lookup = el('form', { id: 'forward-auth-user-form', novalidate: true }, field('User', userId), check);
  content.append(section, el('section', { class: 'card', id: 'admin-forward-auth-user' },
    el('h2', null, 'Who may reach what'), lookup, reach));

  const list = (items) => (items && items.length ? items.join(', ') : '—');
  try {
    const rules = await call('/v1/forward-auth/rules');
    summary.textContent = `Default for hosts no rule names: ${rules.default_policy}. Cookie domain: ${rules.cookie_domain || 'authd’s own host'}.`;
    tbody.replaceChildren(...(rules.rules.length ? rules.rules.map((rule, index) => el('tr', { 'data-policy': rule.policy },
      cell('#', String(index + 1)), cell('Hosts', list(rule.hosts)), cell('Paths', list(rule.paths)),
      cell('Policy', badge(rule.policy, rule.policy === 'deny' ? 'danger' : null)),
      cell('Orgs', list(rule.orgs)), cell('Roles', list(rule.roles))))
      : [emptyRow(6, 'No rules: every request gets the default.')]));
  } catch (err) {
    showMessage(message, err.message);
  } finally {
    section.dataset.ready = 'true';
  }

  const show = async (id) => {
    reach.replaceChildren(loading());
    try {
      const data = await call(`/v1/users/${encodeURIComponent(id)}/forward-auth`);
      reach.replaceChildren(el('ul', { id: 'forward-auth-reachable-list' }, ...((data && data.items) || []).map((rule) =>
        el('li', { 'data-allowed': String(!!rule.allowed) },
          `${list(rule.hosts)}${rule.paths && rule.paths.length ? ` ${list(rule.paths)}` : ''}: `,
          badge(rule.allowed ? 'may reach' : 'may not', rule.allowed ? 'success' : 'danger')))));
    } catch (err) {
      reach.replaceChildren(el('p', { class: 'empty' }, err.message));
    }
  };
  lookup.addEventListener('submit', (event) => {
    event.preventDefault();
    if (userId.value.trim()) busy(check, () => show(userId.value.trim()));
  });
  if (ctx.query.get('user')) {
    userId.value = ctx.query.get('user');
    await show(userId.value);
  }
  ctx.ready('admin-forward-auth');
}

const VIEWS = {
  overview, users, orgs: orgsView, audit, events, keys, approvals, clients, 'forward-auth': forwardAuth,
  providers: (ctx, content) => providersView(ctx, content, { call, fillOrgSelect, table, cell, emptyRow }),
};
