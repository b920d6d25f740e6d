// The pages an app sends a person to: /consent (allow an app what it asks),
// /device (approve a device or script by its code) and /signout (an app asks
// to end the authd session too). Each needs a signed-in session; without one
// it goes to the sign-in page, which comes back here afterwards.

import { el, field, messageRegion, showMessage, busy, retryCountdown } from './dom.js';
import { request, api, withQuery, csrfToken } from './api.js';
import { navigate } from './router.js';
import { setTopbar, setTitle } from './layout.js';
import { authCard } from './login.js';

// What each scope lets an app see, in the words a person reads.
const SCOPE_TEXTS = {
  openid: 'Know who you are (your account id)',
  profile: 'See your name',
  email: 'See your email address',
  groups: 'See your roles in its organization',
  offline_access: 'Stay signed in while you are away',
};

function scopeList(scopes) {
  return el('ul', { class: 'scope-list', id: 'consent-scopes' },
    ...scopes.map((scope) => el('li', { 'data-scope': scope }, SCOPE_TEXTS[scope] || scope)));
}

/** Sends a visitor without a session to sign in, coming back to this page. */
function needsSession() {
  if (csrfToken()) return false;
  navigate(withQuery('/login', { return_to: location.pathname + location.search }), { replace: true });
  return true;
}

/** A 401 while loading: the session ended; sign in and come back. */
function signInAgain(err) {
  if (err.status !== 401) return false;
  navigate(withQuery('/login', { return_to: location.pathname + location.search }), { replace: true });
  return true;
}

function page(id, titleId, title, ...children) {
  return el('div', { class: 'page', id }, authCard(titleId, title, ...children));
}

/**
 * What a page shows, from `path`; null (after saying why in `errorBox`, or
 * after leaving for the sign-in page) when it could not be read.
 */
async function loadForPage(ctx, path, { body, errorBox, name, fallback }) {
  try {
    const data = await api(path, { redirectOn401: false });
    return ctx.isCurrent() ? data : null;
  } catch (err) {
    if (!ctx.isCurrent() || signInAgain(err)) return null;
    body.replaceChildren();
    showMessage(errorBox, err.message || fallback);
    ctx.ready(name);
    return null;
  }
}

/**
 * Allow and Deny buttons (`<prefix>-allow`, `<prefix>-deny`): each sends
 * the answer with `send(approve)`, errors shown in `errorBox`.
 */
function allowDeny(prefix, errorBox, send) {
  const allow = el('button', { type: 'button', class: 'btn btn-primary', id: `${prefix}-allow` }, 'Allow');
  const deny = el('button', { type: 'button', class: 'btn', id: `${prefix}-deny` }, 'Deny');
  const answer = (approve, button) => busy(button, async () => {
    showMessage(errorBox, '');
    try {
      await send(approve);
    } catch (err) {
      if (!signInAgain(err)) showMessage(errorBox, err.message || 'Something went wrong. Please try again.');
    }
  });
  allow.addEventListener('click', () => answer(true, allow));
  deny.addEventListener('click', () => answer(false, deny));
  return { allow, deny };
}

export async function renderConsent(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Allow access');
  if (needsSession()) return;
  const requestQuery = location.search.slice(1);
  const errorBox = messageRegion('consent-error', { alert: true });
  const body = el('div', { id: 'consent-body' }, el('p', { class: 'card-lead' }, 'Loading…'));
  ctx.main.append(page('consent-page', 'consent-title', 'Allow access?', errorBox, body));

  const asked = await loadForPage(ctx, `/ui/api/consent?${requestQuery}`, {
    body, errorBox, name: 'consent', fallback: 'This request could not be read.',
  });
  if (!asked) return;

  const { allow, deny } = allowDeny('consent', errorBox, async (approve) => {
    const done = await api('/ui/api/consent', {
      method: 'POST', body: { request: requestQuery, approve }, redirectOn401: false,
    });
    allow.disabled = true;
    deny.disabled = true;
    location.assign(done.redirect);
  });

  body.replaceChildren(
    el('p', { class: 'card-lead' },
      el('strong', { id: 'consent-client' }, asked.client_name),
      ` (${asked.redirect_host}) would like to:`),
    scopeList(asked.scopes || []),
    el('p', { class: 'hint' }, 'You can take this back at any time under Connected apps on your account page.'),
    el('div', { class: 'actions actions-end' }, deny, allow));
  allow.focus();
  ctx.ready('consent');
}

export async function renderDevice(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Connect a device');
  if (needsSession()) return;
  const errorBox = messageRegion('device-error', { alert: true });
  const code = el('input', {
    id: 'device-code', name: 'user_code', type: 'text', autocomplete: 'off', autocapitalize: 'characters',
    spellcheck: 'false', required: true, class: 'code-input', placeholder: 'BCDF-GHJK',
  });
  code.value = ctx.query.get('user_code') || '';
  const submit = el('button', { id: 'device-submit', type: 'submit', class: 'btn btn-primary btn-block' }, 'Continue');
  const form = el('form', { id: 'device-form', novalidate: true },
    field('Code shown on the device', code), submit);
  const body = el('div', { id: 'device-body' },
    el('p', { class: 'card-lead' }, 'Type the code your device or script shows.'), form);
  ctx.main.append(page('device-page', 'device-title', 'Connect a device', errorBox, body));

  const showRequest = (asked) => {
    const { allow, deny } = allowDeny('device', errorBox, async (approve) => {
      await request('/ui/api/device', {
        method: 'POST', body: { user_code: asked.user_code, approve }, redirectOn401: false,
      });
      body.replaceChildren(el('p', { id: 'device-done', 'data-approved': String(approve) },
        approve
          ? `${asked.client_name} is connected. You can go back to the device.`
          : `${asked.client_name} was not allowed.`));
    });
    body.replaceChildren(
      el('p', { class: 'card-lead' },
        el('strong', { id: 'device-client' }, asked.client_name),
        ` asks with the code ${asked.user_code} to:`),
      scopeList(asked.scopes || []),
      el('p', { class: 'hint' }, 'Allow it only if you started this on a device of your own just now.'),
      el('div', { class: 'actions actions-end' }, deny, allow));
    allow.focus();
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!code.value.trim()) {
      showMessage(errorBox, 'Enter the code.');
      code.focus();
      return;
    }
    busy(submit, async () => {
      showMessage(errorBox, '');
      try {
        showRequest(await api(withQuery('/ui/api/device', { user_code: code.value.trim() }), { redirectOn401: false }));
      } catch (err) {
        if (signInAgain(err)) return;
        if (err.status === 429) retryCountdown(submit, errorBox, err.retryAfter);
        else if (err.status === 404) showMessage(errorBox, 'That code is not valid or has expired.');
        else showMessage(errorBox, err.message || 'Something went wrong. Please try again.');
      }
    });
  });
  code.focus();
  ctx.ready('device');
}

export async function renderSignout(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Sign out');
  if (needsSession()) return;
  const params = Object.fromEntries(new URLSearchParams(location.search));
  const errorBox = messageRegion('signout-error', { alert: true });
  const body = el('div', { id: 'signout-body' }, el('p', { class: 'card-lead' }, 'Loading…'));
  ctx.main.append(page('signout-page', 'signout-title', 'Sign out of authd?', errorBox, body));

  const view = await loadForPage(ctx, `/ui/api/end_session${location.search}`, {
    body, errorBox, name: 'signout', fallback: 'This sign-out link is not valid.',
  });
  if (!view) return;
  const confirm = el('button', { type: 'button', class: 'btn btn-primary', id: 'signout-confirm' }, 'Sign out');
  const cancel = el('a', { class: 'btn', id: 'signout-cancel', href: '/account' }, 'Stay signed in');
  confirm.addEventListener('click', () => busy(confirm, async () => {
    try {
      const done = await api('/ui/api/end_session', { method: 'POST', body: params, redirectOn401: false });
      location.assign(done.redirect);
    } catch (err) {
      showMessage(errorBox, err.message || 'Something went wrong. Please try again.');
    }
  }));
  body.replaceChildren(
    el('p', { class: 'card-lead' }, view.client_name
      ? `${view.client_name} asks to end your authd session in this browser.`
      : 'An app asks to end your authd session in this browser.'),
    el('div', { class: 'actions actions-end' }, cancel, confirm));
  confirm.focus();
  ctx.ready('signout');
}
