// Account recovery pages: "Forgot password?" (/forgot-password), choosing a
// new password from a reset link (/reset-password#token=…, mailed or handed
// over by the operator), and confirming an email address
// (/verify-email#token=…). The token travels in the fragment, which the
// browser never sends to a server; the page takes it out of the address
// bar at once and posts it.

import { el, field, messageRegion, showMessage, busy, retryCountdown, markInvalid, setFlash, badge, copyButton, svgDataUrl } from './dom.js';
import { request, fetchInfo, withQuery, ApiError } from './api.js';
import { navigate } from './router.js';
import { setTopbar, setTitle, passwordProblems } from './layout.js';
import { authCard } from './login.js';

/** The link's token from the fragment, removed from the address bar. */
function takeToken(ctx) {
  const token = new URLSearchParams(ctx.hash).get('token') || '';
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  return token;
}

function backToSignIn(org) {
  return el('p', { class: 'auth-footer' },
    el('a', { id: 'recovery-login-link', href: withQuery('/login', { org }) }, 'Back to sign in'));
}

/** GET /forgot-password: asks for the email, or says whom to ask. */
export async function renderForgot(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Forgot password');
  const org = ctx.query.get('org') || '';
  const message = messageRegion('forgot-message');
  const body = el('div', { id: 'forgot-body' });
  ctx.main.append(el('div', { class: 'page', id: 'forgot-page' },
    authCard('forgot-title', 'Forgot your password?', message, body, backToSignIn(org))));

  let info = null;
  try {
    info = await fetchInfo(org || undefined);
  } catch {
    // Without the flag, offer the form: the server answers the same either way.
  }
  if (!ctx.isCurrent()) return;
  if (info && info.self_service_recovery === false) {
    body.append(el('p', { class: 'card-lead', id: 'forgot-ask-operator' },
      'This server does not send mail, so a password cannot be reset from here. ',
      'Ask the person who runs it for a recovery link.'));
    ctx.ready('forgot-password');
    return;
  }

  const email = el('input', {
    id: 'forgot-email', name: 'email', type: 'email', autocomplete: 'username',
    autocapitalize: 'none', spellcheck: 'false', required: true,
  });
  const hint = ctx.query.get('login_hint');
  if (hint) email.value = hint;
  const submit = el('button', { id: 'forgot-submit', type: 'submit', class: 'btn btn-primary btn-block' }, 'Send me a link');
  const form = el('form', { id: 'forgot-form', novalidate: true }, field('Email', email), submit);
  body.append(
    el('p', { class: 'card-lead' }, 'Enter the email of your account and we will mail you a link to choose a new password.'),
    form);
  email.focus();

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const empty = !email.value.trim();
    markInvalid(email, empty);
    if (empty) {
      showMessage(message, 'Enter your email.');
      email.focus();
      return;
    }
    busy(submit, async () => {
      try {
        const { data } = await request('/password/forgot', {
          method: 'POST', auth: 'public', body: { email: email.value.trim(), org: org || undefined },
        });
        form.hidden = true;
        showMessage(message, `${data.message} Check your inbox (and the spam folder).`, 'success');
      } catch (err) {
        if (err instanceof ApiError && err.status === 429) retryCountdown(submit, message, err.retryAfter);
        else showMessage(message, err.message);
      }
    });
  });
  ctx.ready('forgot-password');
}

/** GET /reset-password#token=…: a new password, then sign in with it. */
export function renderReset(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Choose a new password');
  const token = takeToken(ctx);
  const message = messageRegion('reset-message', { alert: true });
  const password = el('input', { id: 'reset-password', type: 'password', autocomplete: 'new-password', required: true });
  const again = el('input', { id: 'reset-password-again', type: 'password', autocomplete: 'new-password', required: true });
  const submit = el('button', { id: 'reset-submit', type: 'submit', class: 'btn btn-primary btn-block' }, 'Set the new password');
  const form = el('form', { id: 'reset-form', novalidate: true },
    field('New password', password), field('New password again', again), submit);
  ctx.main.append(el('div', { class: 'page', id: 'reset-page' },
    authCard('reset-title', 'Choose a new password',
      el('p', { class: 'card-lead' }, 'Every place you are signed in will be signed out. Your second factors stay as they are.'),
      message, form, backToSignIn(''))));

  const deadLink = () => showMessage(message, [
    'This link is invalid, expired or already used. ',
    el('a', { id: 'reset-new-link', href: '/forgot-password' }, 'Ask for a new one'), '.',
  ]);
  if (!token) {
    form.hidden = true;
    deadLink();
    ctx.ready('reset-password');
    return;
  }
  password.focus();

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    markInvalid(password, !password.value);
    markInvalid(again, password.value !== again.value);
    if (!password.value) {
      showMessage(message, 'Enter a new password.');
      password.focus();
      return;
    }
    if (password.value !== again.value) {
      showMessage(message, 'The two passwords differ.');
      again.focus();
      return;
    }
    busy(submit, async () => {
      try {
        await request('/password/reset', {
          method: 'POST', auth: 'public', body: { token, new_password: password.value },
        });
        setFlash('Your password is changed. Sign in with the new one.', 'success');
        navigate('/login', { replace: true });
      } catch (err) {
        if (err.code === 'invalid_link') {
          form.hidden = true;
          deadLink();
        } else if (err.code === 'invalid_password') {
          markInvalid(password, true);
          showMessage(message, passwordProblems(err, 'reset-violations'));
          password.focus();
        } else {
          showMessage(message, err.message);
        }
      }
    });
  });
  ctx.ready('reset-password');
}

/** GET /verify-email#token=…: one button that confirms the address. */
export function renderVerifyEmail(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Confirm your email');
  const token = takeToken(ctx);
  const message = messageRegion('verify-message');
  const confirm = el('button', { id: 'verify-submit', type: 'button', class: 'btn btn-primary btn-block' }, 'Confirm my email');
  ctx.main.append(el('div', { class: 'page', id: 'verify-page' },
    authCard('verify-title', 'Confirm your email',
      el('p', { class: 'card-lead' }, 'Confirm that this email address belongs to your account.'),
      message, confirm, backToSignIn(''))));
  if (!token) {
    confirm.hidden = true;
    showMessage(message, 'This link is incomplete. Open the link from the mail again.');
    ctx.ready('verify-email');
    return;
  }
  confirm.addEventListener('click', () => busy(confirm, async () => {
    try {
      await request('/email/verify', { method: 'POST', auth: 'public', body: { token } });
      confirm.hidden = true;
      showMessage(message, 'Your email is confirmed. Thank you.', 'success');
    } catch (err) {
      showMessage(message, err.code === 'invalid_link'
        ? 'This link is invalid, expired or already used. Ask for a new one from your account page.'
        : err.message);
    }
  }));
  ctx.ready('verify-email');
}

/**
 * The account page's "Email verified" value: a badge, and for an
 * unverified email a button that mails another link.
 */
export function emailVerification(profile) {
  const holder = el('span', { id: 'profile-email-verified' });
  if (profile.email_verified) {
    holder.append(badge('Verified', 'success'));
    return holder;
  }
  const message = messageRegion('verify-request-message');
  const send = el('button', { id: 'verify-request', type: 'button', class: 'btn btn-small' }, 'Send a confirmation mail');
  send.addEventListener('click', () => busy(send, async () => {
    try {
      await request('/api/account/email/verify-request', { method: 'POST', body: {} });
      send.hidden = true;
      showMessage(message, 'Sent. Open the link in the mail to confirm your email.', 'success');
    } catch (err) {
      if (err.status === 429) retryCountdown(send, message, err.retryAfter);
      else showMessage(message, err.message);
    }
  }));
  holder.append(badge('Not verified'), ' ', send, message);
  return holder;
}

/**
 * The operator console's answer to "Recovery link": the single-use URL,
 * shown once, with a copy button and a QR code to scan from the screen.
 */
export function recoveryLinkPanel(email, link) {
  return el('div', { id: 'recovery-link-once' },
    el('p', null, el('strong', null, `Recovery link for ${email} — hand it over now: it is not shown again.`)),
    el('p', null, 'It sets a new password once, until ', el('time', { datetime: link.expires_at }, new Date(link.expires_at).toLocaleString()),
      '. Second factors stay as they are.'),
    el('p', null, el('code', { id: 'recovery-link-url' }, link.url)),
    el('img', {
      id: 'recovery-link-qr', class: 'qr', src: svgDataUrl(link.qr_svg || ''), width: '200', height: '200',
      alt: 'QR code of the recovery link',
    }),
    el('div', { class: 'actions' }, copyButton(() => link.url, { id: 'recovery-link-copy' })));
}
