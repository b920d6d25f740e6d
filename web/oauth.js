// The pages an app sends a person to: /consent (allow an app what it asks),
// /device (approve a device or script by its code) and /signout (an app asks
// to end the authd session too). Consent and device need a signed-in
// session: without one they go to the sign-in page, which comes back here
// afterwards; a session that must first enroll the org's second factor goes
// to the account page, which offers to come back. Without a session the
// sign-out page has nothing to end and says so.

import { el, field, messageRegion, showMessage, busy, retryCountdown } from './dom.js';
import { request, api, withQuery, csrfToken } from './api.js';
import { navigate } from './router.js';
import { setTopbar, setTitle, MFA_PROMPT_KEY } from './layout.js';
import { authCard, rememberReturn, forgetPendingReturn } from './login.js';

// What each scope lets an app see, in the words a person reads.
const SCOPE_TEXTS = {
  openid: 'Know who you are (your account id)',
  profile: 'See your name',
  email: 'See your email address',
  groups: 'See your roles in its organization',
  offline_access: 'Stay signed in while you are away',
};

function scopeList(id, scopes) {
  const items = scopes.length
    ? scopes.map((scope) => el('li', { 'data-scope': scope }, SCOPE_TEXTS[scope] || scope))
    : [el('li', null, 'Know which account you use')];
  return el('ul', { class: 'scope-list', id }, ...items);
}

const here = () => location.pathname + location.search;

/** To the sign-in page, coming back to `returnTo` (this page by default). */
function toSignIn(returnTo = here()) {
  navigate(withQuery('/login', { return_to: returnTo }), { replace: true });
}

/** To enroll the org's second factor; the account page offers the way back. */
function toEnrollment() {
  rememberReturn(here());
  navigate('/account#section-mfa', { replace: true });
}

/**
 * The signed-in account (GET /api/account), or null once the visitor was
 * sent on: to sign in without a live session, to enroll when the session
 * may only do that. Other failures are thrown for the page to show.
 */
async function signedInAccount(ctx) {
  if (!csrfToken()) {
    toSignIn();
    return null;
  }
  let me;
  try {
    me = await api('/api/account', { redirectOn401: false });
  } catch (err) {
    if (ctx.isCurrent() && err.status === 401) toSignIn();
    if (!ctx.isCurrent() || err.status === 401) return null;
    throw err;
  }
  if (!ctx.isCurrent()) return null;
  if (me.session && me.session.enrollment_only) {
    toEnrollment();
    return null;
  }
  return me;
}

/**
 * A failure of one of the pages' calls that means "not like this": the
 * session ended (sign in again, coming back) or must enroll a second factor
 * first. True when the visitor was sent on.
 */
function sentOn(err) {
  if (err.status === 401) {
    toSignIn();
    return true;
  }
  if (err.code === 'mfa_enrollment_required') {
    toEnrollment();
    return true;
  }
  return false;
}

/** Ends this browser's session before signing in as someone else. */
async function endSession() {
  try {
    await request('/ui/api/logout', { method: 'POST', body: {}, redirectOn401: false });
  } catch {
    // Already gone: the sign-in starts fresh either way.
  }
  sessionStorage.removeItem(MFA_PROMPT_KEY);
  forgetPendingReturn();
}

/**
 * "Signed in as … Not you?": signs out, then `then()` starts the sign-in
 * again (the way back to this request included).
 */
function signedInAs(prefix, me, then) {
  const change = el('button', { type: 'button', class: 'link-button', id: `${prefix}-switch` }, 'Not you?');
  change.addEventListener('click', () => busy(change, async () => {
    await endSession();
    then();
  }));
  return el('p', { class: 'signed-in-as', id: `${prefix}-account` },
    'Signed in as ', el('strong', { 'data-test': 'signed-in-email' }, me.email), ' ', change);
}

function page(id, titleId, title, ...children) {
  return el('div', { class: 'page', id }, authCard(titleId, title, ...children));
}

function keepDisabled(...buttons) {
  for (const button of buttons) {
    button.dataset.locked = 'true';
    button.disabled = true;
  }
}

/**
 * Allow and Deny buttons (`<prefix>-allow`, `<prefix>-deny`): each sends
 * the answer with `send(approve)`; a failure goes to `failed(err, button)`.
 */
function allowDeny(prefix, errorBox, send, failed) {
  const allow = el('button', { type: 'button', class: 'btn btn-primary', id: `${prefix}-allow` }, 'Allow');
  const deny = el('button', { type: 'button', class: 'btn', id: `${prefix}-deny` }, 'Deny');
  const answer = (approve, button) => busy(button, async () => {
    showMessage(errorBox, '');
    try {
      await send(approve, { allow, deny });
    } catch (err) {
      failed(err, button);
    }
  });
  allow.addEventListener('click', () => answer(true, allow));
  deny.addEventListener('click', () => answer(false, deny));
  return { allow, deny };
}

export async function renderConsent(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Allow access');
  if (!csrfToken()) {
    toSignIn();
    return;
  }
  const requestQuery = location.search.slice(1);
  const errorBox = messageRegion('consent-error', { alert: true });
  const body = el('div', { id: 'consent-body' }, el('p', { class: 'card-lead' }, 'Loading…'));
  ctx.main.append(page('consent-page', 'consent-title', 'Allow access?', errorBox, body));

  const failed = (err) => {
    if (!ctx.isCurrent() || sentOn(err)) return;
    body.replaceChildren();
    showMessage(errorBox, err.status === 400
      ? 'This request is not valid. Go back to the app and try again.'
      : err.message || 'This request could not be read.');
    ctx.ready('consent');
  };

  let me;
  let asked;
  try {
    me = await signedInAccount(ctx);
    if (!me) return;
    asked = await api(`/ui/api/consent?${requestQuery}`, { redirectOn401: false });
  } catch (err) {
    failed(err);
    return;
  }
  if (!ctx.isCurrent()) return;

  const { allow, deny } = allowDeny('consent', errorBox, async (approve, buttons) => {
    const done = await api('/ui/api/consent', {
      method: 'POST', body: { request: requestQuery, approve }, redirectOn401: false,
    });
    keepDisabled(buttons.allow, buttons.deny);
    location.assign(done.redirect);
  }, (err) => {
    if (sentOn(err)) return;
    showMessage(errorBox, err.status === 400
      ? 'This request is not valid any more. Go back to the app and try again.'
      : err.message || 'Something went wrong. Please try again.');
  });
  body.replaceChildren(
    el('p', { class: 'card-lead' },
      el('strong', { id: 'consent-client' }, asked.client_name),
      asked.redirect_host ? ` (${asked.redirect_host})` : '', ' would like to:'),
    scopeList('consent-scopes', asked.scopes || []),
    // Another person: sign out, then the app's request again (it knows
    // which organization to sign in to).
    signedInAs('consent', me, () => location.assign(`/oauth/authorize?${requestQuery}`)),
    el('p', { class: 'hint' }, 'You can take this back at any time under Connected apps on your account page.'),
    el('div', { class: 'actions actions-end' }, deny, allow));
  allow.focus();
  ctx.ready('consent');
}

export async function renderDevice(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Connect a device');
  if (!csrfToken()) {
    toSignIn();
    return;
  }
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
  const who = el('div', { id: 'device-who' });
  ctx.main.append(page('device-page', 'device-title', 'Connect a device', errorBox, body, who));

  let me;
  try {
    me = await signedInAccount(ctx);
    if (!me) return;
  } catch (err) {
    if (!ctx.isCurrent()) return;
    showMessage(errorBox, err.message || 'Something went wrong. Please try again.');
    ctx.ready('device');
    return;
  }
  const typed = () => code.value.trim();
  // Another person, or the same with their second factor: sign out, sign
  // in, and come back with the code typed so far.
  const signInAgain = () => toSignIn(withQuery('/device', { user_code: typed() }));
  who.append(signedInAs('device', me, signInAgain));

  /** The answers that need more than a message. */
  const answerFailed = (err, button) => {
    if (sentOn(err)) return;
    if (err.status === 429) {
      retryCountdown(button, errorBox, err.retryAfter);
    } else if (err.status === 404) {
      showMessage(errorBox, 'That code is not valid or has expired.');
    } else if (err.code === 'mfa_required') {
      const again = el('button', { type: 'button', class: 'link-button', id: 'device-reauth' }, 'Sign in again');
      again.addEventListener('click', () => busy(again, async () => {
        await endSession();
        signInAgain();
      }));
      showMessage(errorBox, ['This app’s organization asks for a second factor. ', again, ' and confirm with yours.']);
    } else if (err.status === 403) {
      showMessage(errorBox, 'Your account may not use this app.');
    } else {
      showMessage(errorBox, err.message || 'Something went wrong. Please try again.');
    }
  };

  const showRequest = (asked) => {
    const { allow, deny } = allowDeny('device', errorBox, async (approve) => {
      await request('/ui/api/device', {
        method: 'POST', body: { user_code: asked.user_code, approve }, redirectOn401: false,
      });
      who.replaceChildren();
      body.replaceChildren(el('p', { id: 'device-done', 'data-approved': String(approve), class: 'card-lead' },
        approve
          ? `${asked.client_name} is connected. You can go back to the device.`
          : `${asked.client_name} was not allowed. You can close this page.`));
    }, answerFailed);
    body.replaceChildren(
      el('p', { class: 'card-lead' },
        el('strong', { id: 'device-client' }, asked.client_name),
        ' asks with the code ', el('span', { class: 'user-code', id: 'device-shown-code' }, asked.user_code), ' to:'),
      scopeList('device-scopes', asked.scopes || []),
      el('p', { class: 'hint' }, 'Allow it only if you started this on a device of your own just now.'),
      el('div', { class: 'actions actions-end' }, deny, allow));
    allow.focus();
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!typed()) {
      showMessage(errorBox, 'Enter the code.');
      code.focus();
      return;
    }
    busy(submit, async () => {
      showMessage(errorBox, '');
      try {
        showRequest(await api(withQuery('/ui/api/device', { user_code: typed() }), { redirectOn401: false }));
      } catch (err) {
        answerFailed(err, submit);
      }
    });
  });
  // A code from the device's link only needs a confirming Enter.
  (code.value ? submit : code).focus();
  ctx.ready('device');
}

export async function renderSignout(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Sign out');
  const params = Object.fromEntries(new URLSearchParams(location.search));
  const errorBox = messageRegion('signout-error', { alert: true });
  const body = el('div', { id: 'signout-body' }, el('p', { class: 'card-lead' }, 'Loading…'));
  const root = page('signout-page', 'signout-title', 'Sign out of authd?', errorBox, body);
  ctx.main.append(root);

  // Where to go after, checked by the server (needs no session), and who
  // is signed in here, if anyone.
  let view;
  let me = null;
  try {
    view = await api(withQuery('/ui/api/end_session', params), { auth: 'public' });
    if (csrfToken()) {
      me = await api('/api/account', { redirectOn401: false }).catch((err) => {
        if (err.status === 401) return null;
        throw err;
      });
    }
  } catch (err) {
    if (!ctx.isCurrent()) return;
    body.replaceChildren();
    root.dataset.state = 'error';
    showMessage(errorBox, err.status === 400
      ? 'This sign-out link is not valid. Go back to the app.'
      : err.message || 'This sign-out link is not valid.');
    ctx.ready('signout');
    return;
  }
  if (!ctx.isCurrent()) return;
  const goOn = el('a', { class: 'btn btn-primary', id: 'signout-continue', href: view.redirect },
    view.client_name ? `Back to ${view.client_name}` : 'Continue');

  if (!me) {
    // Nothing to end here: the app has signed itself out already.
    root.dataset.state = 'signed-out';
    document.getElementById('signout-title').textContent = 'You are signed out';
    body.replaceChildren(
      el('p', { class: 'card-lead', id: 'signout-message' }, 'You are not signed in to authd in this browser.'),
      el('div', { class: 'actions actions-end' }, goOn));
    goOn.focus();
    ctx.ready('signout');
    return;
  }

  root.dataset.state = 'ask';
  const confirm = el('button', { type: 'button', class: 'btn btn-primary', id: 'signout-confirm' }, 'Sign out');
  const cancel = el('a', { class: 'btn', id: 'signout-cancel', href: '/account' }, 'Stay signed in');
  confirm.addEventListener('click', () => busy(confirm, async () => {
    showMessage(errorBox, '');
    let redirect = view.redirect;
    try {
      redirect = (await api('/ui/api/end_session', { method: 'POST', body: params, redirectOn401: false })).redirect;
    } catch (err) {
      // 401: the session ended meanwhile, which is what was asked.
      if (err.status !== 401) {
        showMessage(errorBox, err.message || 'Something went wrong. Please try again.');
        return;
      }
    }
    keepDisabled(confirm);
    sessionStorage.removeItem(MFA_PROMPT_KEY);
    forgetPendingReturn();
    location.assign(redirect);
  }));
  body.replaceChildren(
    el('p', { class: 'card-lead', id: 'signout-message' },
      `${view.client_name || 'An app'} asks to end your authd session in this browser.`),
    el('p', { class: 'signed-in-as', id: 'signout-account' },
      'Signed in as ', el('strong', { 'data-test': 'signed-in-email' }, me.email)),
    el('p', { class: 'hint' }, 'If you stay signed in, your other apps can still sign you in without asking.'),
    el('div', { class: 'actions actions-end' }, cancel, confirm));
  confirm.focus();
  ctx.ready('signout');
}
