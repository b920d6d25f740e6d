// Signing in through upstream providers (Google, GitHub, …): the sign-in
// page's buttons and the second-factor step a provider sign-in may hand to
// it, the account page's linked identities, and the operator console's
// "Sign-in providers" page. The other pages call in with one line each.

import { el, field, checkbox, select, messageRegion, showMessage, busy, loadList, confirmAction, timeEl, badge } from './dom.js';
import { api, withQuery } from './api.js';

const KIND_LABELS = {
  google: 'Google', microsoft: 'Microsoft', apple: 'Apple', github: 'GitHub', oidc: 'OpenID Connect', oauth2: 'OAuth 2.0',
};

/** How a provider's button reads: its kind's name for presets, its own name otherwise. */
function providerLabel(provider) {
  const preset = ['google', 'microsoft', 'apple', 'github'].includes(provider.kind);
  return preset ? KIND_LABELS[provider.kind] : provider.name;
}

/**
 * The sign-in page's "Continue with …" buttons for the org's enabled
 * providers: plain links to /oauth/authorize?provider=…, which the server
 * answers with a redirect to the provider. Hidden when there are none.
 */
export function providerButtons(org, returnTo) {
  const list = el('div', { class: 'social-providers', id: 'social-providers', hidden: true });
  api(withQuery('/ui/api/providers', { org }), { auth: 'public' }).then((data) => {
    const items = (data && data.items) || [];
    if (!items.length) return;
    list.replaceChildren(
      el('p', { class: 'divider muted' }, 'or'),
      ...items.map((provider) => el('a', {
        class: 'btn btn-block social-button', 'data-provider': provider.name, 'data-test': 'social-sign-in',
        href: withQuery('/oauth/authorize', { provider: provider.name, org, return_to: returnTo }),
      }, `Continue with ${providerLabel(provider)}`)));
    list.hidden = false;
  }).catch(() => { /* No buttons: the password form still works. */ });
  return list;
}

const MFA_COOKIES = ['__Secure-authd_social_mfa', 'authd_social_mfa'];

/**
 * A provider sign-in that needs the account's second factor comes back to
 * the sign-in page with ?mfa=<methods> and the step's token in a short-lived
 * cookie; this takes (and clears) it and answers the challenge the MFA view
 * expects, or null.
 */
export function takeSocialMfa(query) {
  const methods = query.get('mfa');
  if (!methods) return null;
  const cookies = document.cookie.split(';').map((c) => c.trim());
  for (const name of MFA_COOKIES) {
    const entry = cookies.find((c) => c.startsWith(`${name}=`));
    if (!entry) continue;
    const secure = name.startsWith('__Secure-') ? '; Secure' : '';
    document.cookie = `${name}=; Path=/; Max-Age=0; SameSite=Lax${secure}`;
    return { mfa_required: true, mfa_token: entry.slice(name.length + 1), methods: methods.split(',') };
  }
  return null;
}

/** The account page's card: linked identities, unlink, link another. */
export function identitiesSection(card, state) {
  const message = messageRegion('identities-message');
  const list = el('ul', { class: 'list', id: 'linked-identities' });
  const linkBox = el('div', { class: 'actions', id: 'identity-link-buttons' });
  const section = card('section-identities', 'Sign-in providers',
    'Accounts elsewhere that sign you in here. You cannot unlink the last way to sign in.',
    message, list, linkBox);

  const row = (identity) => {
    const unlink = el('button', {
      type: 'button', class: 'btn btn-small btn-danger', 'data-test': 'identity-unlink',
      'aria-label': `Unlink ${identity.provider}`,
    }, 'Unlink');
    unlink.addEventListener('click', async () => {
      if (!(await confirmAction(`You will no longer sign in with this ${identity.provider} account.`, {
        title: `Unlink ${identity.provider}?`, confirmLabel: 'Unlink',
      }))) return;
      busy(unlink, async () => {
        try {
          await api(`/api/account/identities/${encodeURIComponent(identity.id)}`, { method: 'DELETE' });
          await load();
          showMessage(message, `${identity.provider} is unlinked.`, 'success');
        } catch (err) {
          showMessage(message, err.message);
        }
      });
    });
    return el('li', { 'data-identity-id': identity.id },
      el('div', { class: 'list-main' },
        el('div', { class: 'list-title' }, identity.provider, identity.kind ? badge(KIND_LABELS[identity.kind] || identity.kind) : null),
        el('div', { class: 'list-meta' }, identity.email || '', ' · linked ', timeEl(identity.linked_at))),
      el('div', { class: 'list-actions' }, unlink));
  };

  const load = () => loadList({
    section, container: list, message, row,
    fetch: () => api('/api/account/identities'),
    empty: () => el('li', { class: 'empty' }, 'No provider is linked.'),
  });

  const org = state && state.info && state.info.org ? state.info.org.slug : undefined;
  api(withQuery('/ui/api/providers', { org }), { auth: 'public' }).then((data) => {
    linkBox.replaceChildren(...((data && data.items) || []).map((provider) => {
      const button = el('button', { type: 'button', class: 'btn btn-small', 'data-test': 'identity-link', 'data-provider': provider.name },
        `Link ${providerLabel(provider)}`);
      button.addEventListener('click', () => busy(button, async () => {
        try {
          const answer = await api('/api/account/identities/link', { method: 'POST', body: { provider: provider.name } });
          location.assign(answer.redirect);
        } catch (err) {
          showMessage(message, err.message);
        }
      }));
      return button;
    }));
  }).catch(() => {});
  load();
  return section;
}

/**
 * The console's "Sign-in providers" page. `tools` are the console's own
 * helpers: call (admin API), fillOrgSelect, table, cell, emptyRow.
 */
export async function providersView(ctx, content, { call, fillOrgSelect, table, cell, emptyRow }) {
  const message = messageRegion('providers-message');
  const input = (id, attrs = {}) => el('input', { id, type: 'text', spellcheck: 'false', ...attrs });
  const name = input('provider-name', { required: true, maxlength: '40', pattern: '[a-z0-9][a-z0-9_-]*' });
  const org = el('select', { id: 'provider-org' });
  const kind = select('provider-kind', Object.entries(KIND_LABELS), 'google');
  const clientId = input('provider-client-id', { required: true });
  const clientSecret = el('input', { id: 'provider-client-secret', type: 'password', autocomplete: 'new-password' });
  const discovery = input('provider-discovery-url', { type: 'url' });
  const authorizeUrl = input('provider-authorize-url', { type: 'url' });
  const tokenUrl = input('provider-token-url', { type: 'url' });
  const userinfoUrl = input('provider-userinfo-url', { type: 'url' });
  const tenant = input('provider-tenant', { placeholder: 'common' });
  const teamId = input('provider-team-id');
  const keyId = input('provider-key-id');
  const privateKey = el('textarea', { id: 'provider-private-key', rows: '4', spellcheck: 'false' });
  const scopes = input('provider-scopes', { placeholder: 'the kind’s defaults' });
  const linkByEmail = checkbox('provider-link-by-email', 'Link to an account with the same verified email');
  const createUsers = checkbox('provider-create-users', 'Create accounts (as the org’s registration allows)');
  const create = el('button', { type: 'submit', class: 'btn btn-primary', id: 'provider-create' }, 'Add provider');
  const fields = {
    secret: field('Client secret', clientSecret, 'Write-only: stored sealed, never shown again.'),
    discovery: field('Discovery URL', discovery, 'oidc: required. Google, Microsoft, Apple: only to override the real one.'),
    authorize: field('Authorize URL', authorizeUrl), token: field('Token URL', tokenUrl), userinfo: field('Userinfo URL', userinfoUrl),
    tenant: field('Tenant', tenant, 'A tenant id or domain, or common, organizations, consumers.'),
    team: field('Team ID', teamId), key: field('Key ID', keyId),
    privateKey: field('Private key (.p8)', privateKey, 'Write-only: stored sealed.'),
  };
  const shown = {
    google: ['secret', 'discovery'], microsoft: ['secret', 'tenant', 'discovery'], apple: ['team', 'key', 'privateKey', 'discovery'],
    github: ['secret', 'authorize', 'token', 'userinfo'], oidc: ['secret', 'discovery'], oauth2: ['secret', 'authorize', 'token', 'userinfo'],
  };
  const showFields = () => {
    for (const [key, node] of Object.entries(fields)) node.hidden = !shown[kind.value].includes(key);
  };
  kind.addEventListener('change', showFields);
  showFields();
  const form = el('form', { id: 'provider-create-form', novalidate: true },
    field('Name', name, 'Lowercase; the callback is /oauth/callback/<name>.'), field('Organization', org), field('Kind', kind),
    field('Client ID', clientId), ...Object.values(fields),
    field('Scopes', scopes, 'Space-separated.'), linkByEmail, createUsers, create);
  const { node, tbody } = table('providers-table', ['Name', 'Kind', 'Organization', 'Callback URL', 'Options', ''], 'providers-list');
  const section = el('section', { class: 'card', id: 'admin-providers', 'data-ready': 'false' }, el('h2', null, 'Sign-in providers'), node);
  content.append(el('section', { class: 'card', id: 'admin-provider-create' }, el('h2', null, 'New provider'), message, form), section);

  const orgs = await fillOrgSelect(org, message);

  const row = (provider) => {
    const toggle = el('button', { type: 'button', class: 'btn btn-small', 'data-test': 'provider-toggle' }, provider.enabled ? 'Disable' : 'Enable');
    toggle.addEventListener('click', () => busy(toggle, async () => {
      try {
        await call(`/v1/providers/${encodeURIComponent(provider.name)}`, { method: 'PATCH', body: { enabled: !provider.enabled } });
        await load();
      } catch (err) {
        showMessage(message, err.message);
      }
    }));
    const remove = el('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-test': 'provider-delete' }, 'Delete');
    remove.addEventListener('click', async () => {
      if (!(await confirmAction(`Accounts linked through ${provider.name} are unlinked.`, { title: 'Delete this provider?', confirmLabel: 'Delete' }))) return;
      busy(remove, async () => {
        try {
          await call(`/v1/providers/${encodeURIComponent(provider.name)}`, { method: 'DELETE' });
          await load();
        } catch (err) {
          showMessage(message, err.message);
        }
      });
    });
    const org = orgs.get(provider.org_id);
    return el('tr', { 'data-provider': provider.name },
      cell('Name', provider.name, provider.enabled ? null : badge('disabled')),
      cell('Kind', KIND_LABELS[provider.kind] || provider.kind),
      cell('Organization', org ? org.slug : provider.org_id),
      cell('Callback URL', el('code', null, provider.callback_url)),
      cell('Options', [provider.link_by_email ? 'links by email' : null, provider.create_users ? 'creates accounts' : null].filter(Boolean).join(', ') || '—'),
      el('td', { class: 'actions-cell' }, el('div', { class: 'actions' }, toggle, remove)));
  };

  const load = () => loadList({
    section, container: tbody, message, row,
    fetch: () => call('/v1/providers'),
    empty: () => emptyRow(6, 'No providers yet. Add one to offer “Continue with …” on the sign-in page.'),
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(create, async () => {
      showMessage(message, '');
      const text = (node) => (node.value.trim() || undefined);
      const visible = (key, node) => (shown[kind.value].includes(key) ? text(node) : undefined);
      try {
        const created = await call('/v1/providers', {
          method: 'POST',
          body: {
            name: name.value.trim(), org: org.value || undefined, kind: kind.value, client_id: clientId.value.trim(),
            client_secret: visible('secret', clientSecret), discovery_url: visible('discovery', discovery),
            authorize_url: visible('authorize', authorizeUrl), token_url: visible('token', tokenUrl),
            userinfo_url: visible('userinfo', userinfoUrl), tenant: visible('tenant', tenant),
            team_id: visible('team', teamId), key_id: visible('key', keyId), private_key: visible('privateKey', privateKey),
            scopes: scopes.value.trim() ? scopes.value.trim().split(/\s+/) : undefined,
            link_by_email: linkByEmail.querySelector('input').checked,
            create_users: createUsers.querySelector('input').checked,
          },
        });
        showMessage(message, `${created.name} was added. Register ${created.callback_url} as its redirect URI.`, 'success');
        form.reset();
        showFields();
        await load();
      } catch (err) {
        showMessage(message, err.message);
      }
    });
  });

  await load();
  ctx.ready('admin-providers');
}
