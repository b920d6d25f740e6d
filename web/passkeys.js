// Passkeys: signing in with one alone (a "Sign in with a passkey" button,
// and the browser's autofill of the email field — conditional mediation),
// a passkey as the proof an account without a password gives before a
// change, and the enrollment page an operator's link opens (/enroll#token).
// The sign-in page calls offerPasskeySignIn(); the rest of it is login.js's.

import { el, field, messageRegion, showMessage, busy, retryCountdown } from './dom.js';
import { request, api, ApiError } from './api.js';
import { setTopbar, setTitle } from './layout.js';
import { webauthnAvailable, creationOptions, requestOptions, credentialJSON, ceremonyError } from './webauthn.js';

/** A fresh anonymous sign-in ceremony: its handle and the browser's options. */
async function signInOptions() {
  const options = await api('/webauthn/login/options', { auth: 'public', method: 'POST', body: {} });
  return { ceremonyId: options.ceremony_id, publicKey: requestOptions(options.publicKey) };
}

/** Whether this browser offers passkeys in the email field's autofill. */
async function autofillAvailable() {
  try {
    return typeof PublicKeyCredential.isConditionalMediationAvailable === 'function'
      && await PublicKeyCredential.isConditionalMediationAvailable();
  } catch {
    return false;
  }
}

/**
 * Adds passkey sign-in to the sign-in page: a button under `after`, and
 * passkeys in the autofill of `email` (its autocomplete must include
 * "webauthn"). `onSignedIn(data)` gets /ui/api/passkey's answer; errors go
 * to `errorBox`. One browser request runs at a time: the button's takes
 * over from the autofill's, which starts again when the button's ends.
 */
export function offerPasskeySignIn(ctx, { after, errorBox, org, onSignedIn }) {
  if (!webauthnAvailable()) return;
  const button = el('button', { id: 'passkey-signin', type: 'button', class: 'btn btn-block' }, 'Sign in with a passkey');
  after.after(el('div', { class: 'passkey-signin', id: 'passkey-signin-area' },
    el('p', { class: 'auth-or', 'aria-hidden': 'true' }, 'or'), button));

  let autofill = null;
  const stopAutofill = () => {
    if (autofill) autofill.abort();
    autofill = null;
  };
  ctx.onLeave(stopAutofill);

  const finish = async (ceremonyId, credential) => {
    const body = { ceremony_id: ceremonyId, credential: credentialJSON(credential) };
    if (org) body.org = org;
    const response = await request('/ui/api/passkey', { auth: 'public', method: 'POST', body });
    stopAutofill();
    onSignedIn(response.data);
  };

  const failed = (err, retryButton) => {
    if (!(err instanceof ApiError)) showMessage(errorBox, ceremonyError(err));
    else if (err.status === 429) retryCountdown(retryButton, errorBox, err.retryAfter);
    else if (err.status === 401) showMessage(errorBox, 'That passkey was not accepted.');
    else showMessage(errorBox, err.message);
  };

  const startAutofill = async () => {
    if (!ctx.isCurrent() || !(await autofillAvailable())) return;
    stopAutofill();
    const controller = new AbortController();
    autofill = controller;
    let ceremony;
    let credential;
    try {
      ceremony = await signInOptions();
      if (controller.signal.aborted) return;
      credential = await navigator.credentials.get({
        mediation: 'conditional', publicKey: ceremony.publicKey, signal: controller.signal,
      });
    } catch (err) {
      // Aborted for the button, or the page was left: nothing to say.
      if (!controller.signal.aborted && err instanceof ApiError) failed(err, button);
      return;
    }
    if (controller.signal.aborted || !credential) return;
    try {
      await finish(ceremony.ceremonyId, credential);
    } catch (err) {
      failed(err, button);
      startAutofill();
    }
  };

  button.addEventListener('click', () => busy(button, async () => {
    showMessage(errorBox, '');
    stopAutofill();
    try {
      const ceremony = await signInOptions();
      const credential = await navigator.credentials.get({ publicKey: ceremony.publicKey });
      if (credential) await finish(ceremony.ceremonyId, credential);
    } catch (err) {
      failed(err, button);
      startAutofill();
    }
  }));

  startAutofill();
}

/**
 * The proof an account without a password gives before changing its keys:
 * one of its passkeys, asked for now. Throws what the browser throws.
 */
export async function passkeyProof() {
  const ceremony = await signInOptions();
  const credential = await navigator.credentials.get({ publicKey: ceremony.publicKey });
  return { passkey: { ceremony_id: ceremony.ceremonyId, credential: credentialJSON(credential) } };
}

/** /enroll#<token>: adds the first passkey to the account the link is for. */
export function renderEnroll(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Set up your passkey');
  // The token stays in the fragment: it is never sent in a request line.
  const token = location.hash.slice(1);
  const message = messageRegion('enroll-message', { alert: true });
  const name = el('input', { id: 'enroll-name', type: 'text', value: 'Passkey', maxlength: '64' });
  const submit = el('button', { id: 'enroll-submit', type: 'submit', class: 'btn btn-primary btn-block' }, 'Create passkey');
  const form = el('form', { id: 'enroll-form', novalidate: true },
    field('Name for this passkey', name, 'For example the device it is on.'), submit);
  ctx.main.append(el('div', { class: 'page' },
    el('section', { class: 'card narrow auth-card', id: 'enroll-page', 'aria-labelledby': 'enroll-title' },
      el('img', { class: 'auth-logo', src: '/ui/favicon.svg', alt: '' }),
      el('h1', { id: 'enroll-title' }, 'Set up your passkey'),
      el('p', { class: 'card-lead' }, 'Your account signs in with a passkey: this device or a security key keeps it, unlocked by your fingerprint, face or PIN.'),
      message, form)));

  if (!token || !webauthnAvailable()) {
    showMessage(message, token ? 'This browser cannot create passkeys.' : 'This link is incomplete. Ask for a new one.');
    submit.disabled = true;
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    showMessage(message, '');
    busy(submit, async () => {
      try {
        const start = await api('/webauthn/enroll/options', { auth: 'public', method: 'POST', body: { token } });
        let credential;
        try {
          credential = await navigator.credentials.create({ publicKey: creationOptions(start.publicKey) });
        } catch (err) {
          showMessage(message, ceremonyError(err));
          return;
        }
        await api('/webauthn/enroll', {
          auth: 'public',
          method: 'POST',
          body: { token, ceremony_id: start.ceremony_id, name: name.value.trim() || 'Passkey', credential: credentialJSON(credential) },
        });
        history.replaceState(null, '', '/enroll');
        form.replaceWith(el('div', { id: 'enroll-done' },
          el('p', null, 'Your passkey is ready. Sign in with it now.'),
          el('a', { class: 'btn btn-primary btn-block', id: 'enroll-signin', href: '/login' }, 'Go to sign-in')));
      } catch (err) {
        if (err.status === 429) retryCountdown(submit, message, err.retryAfter);
        else showMessage(message, err instanceof ApiError ? err.message : ceremonyError(err));
      }
    });
  });
  ctx.ready('enroll');
}
