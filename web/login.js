// The sign-in page (password, then the MFA step when the server asks for it)
// and the registration page. Both honour ?org=<slug> in the page URL; the
// sign-in also ?login_hint= (the email) and ?return_to= (where to go after:
// an app's request at authd, or a protected app the server vouches for).

import { el, field, messageRegion, showMessage, busy, retryCountdown, markInvalid, takeFlash } from './dom.js';
import { request, api, fetchInfo, withQuery, csrfToken, ApiError } from './api.js';
import { navigate } from './router.js';
import { setTopbar, setTitle, MFA_PROMPT_KEY, passwordProblems } from './layout.js';
import { webauthnAvailable, requestOptions, credentialJSON, ceremonyError } from './webauthn.js';
import { offerPasskeySignIn } from './passkeys.js';
import { providerButtons, takeSocialMfa } from './social.js';

const METHOD_LABELS = { totp: 'Authenticator app', webauthn: 'Security key', recovery_code: 'Recovery code' };
const METHOD_ORDER = ['totp', 'webauthn', 'recovery_code'];

export function authCard(titleId, title, ...children) {
  return el('section', { class: 'card narrow auth-card', 'aria-labelledby': titleId },
    el('img', { class: 'auth-logo', src: '/ui/favicon.svg', alt: '' }),
    el('h1', { id: titleId }, title),
    ...children);
}

/** Marks empty inputs invalid and returns the first one, if any. */
function firstEmpty(inputs) {
  let first = null;
  for (const input of inputs) {
    const empty = !input.value.trim();
    markInvalid(input, empty);
    if (empty && !first) first = input;
  }
  return first;
}

// The pages of authd itself a sign-in may return to: an app's authorization
// request and the pages it leads to.
const RETURN_PATHS = ['/oauth/authorize', '/consent', '/device', '/signout'];

/** The page URL's return_to, as given. */
function returnToParam() {
  return new URLSearchParams(location.search).get('return_to');
}

/**
 * Where a finished sign-in may go back to, or null: one of authd's own
 * pages above, or an absolute http(s) URL the server vouches for (a host
 * its forward-auth rules protect). Never anywhere else: no open redirect.
 */
async function returnTarget(raw) {
  if (!raw) return null;
  if (raw.startsWith('/')) {
    if (raw.startsWith('//') || raw.includes('\\')) return null;
    const url = new URL(raw, location.origin);
    if (url.origin !== location.origin || !RETURN_PATHS.includes(url.pathname)) return null;
    return { url: url.pathname + url.search, secondFactorRequired: false };
  }
  try {
    const answer = await api(withQuery('/ui/api/return', { url: raw }), { auth: 'public' });
    const url = new URL(answer.url);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
    return { url: answer.url, secondFactorRequired: !!answer.second_factor_required };
  } catch {
    return null;
  }
}

// A sign-in that had to stop on the account page (the org requires a second
// factor, or a protected app asks for one) keeps where it was going here, in
// this tab only, so that the account page can offer to continue.
const PENDING_RETURN_KEY = 'authd.pendingReturn';
const PENDING_RETURN_MS = 30 * 60 * 1000;

/** Remembers a checked return URL (from returnTarget) for the account page. */
export function rememberReturn(url) {
  sessionStorage.setItem(PENDING_RETURN_KEY, JSON.stringify({ url, at: Date.now() }));
}

export function forgetPendingReturn() {
  sessionStorage.removeItem(PENDING_RETURN_KEY);
}

function pendingReturn() {
  try {
    const kept = JSON.parse(sessionStorage.getItem(PENDING_RETURN_KEY) || 'null');
    if (kept && typeof kept.url === 'string' && Date.now() - kept.at < PENDING_RETURN_MS) return kept.url;
  } catch {
    // Unreadable: forgotten below.
  }
  forgetPendingReturn();
  return null;
}

/** Where a return URL leads, in words: the protected app's host, or what authd's page does. */
function destinationName(url) {
  if (!url.startsWith('/')) return new URL(url).host;
  return url.startsWith('/device') ? 'connect a device' : 'an app';
}

/**
 * On the account page, after a sign-in that stopped for a second factor:
 * a banner offering to go on where the sign-in was going. Called by the
 * route table once the account page is drawn; the banner comes after the
 * sections the account page redraws and stays in view at the bottom of the
 * window while the person enrolls.
 */
export function offerPendingReturn(ctx) {
  const url = pendingReturn();
  const accountPage = document.getElementById('account-page');
  if (!url || !ctx.isCurrent() || !accountPage) return;
  const banner = el('div', { class: 'banner banner-info return-banner', id: 'return-banner', role: 'status' },
    el('p', null, `You were on your way to ${destinationName(url)}. `,
      'Continue once two-step verification is on.'),
    el('div', { class: 'actions' },
      el('a', {
        class: 'btn btn-primary btn-small', id: 'return-continue', href: url,
        onClick: (event) => {
          forgetPendingReturn();
          // authd's own app pages are answered by the server, not the router.
          if (url.startsWith('/oauth/')) return;
          event.preventDefault();
          location.assign(url);
        },
      }, 'Continue'),
      el('button', {
        type: 'button', class: 'btn btn-small', id: 'return-dismiss',
        onClick: () => { forgetPendingReturn(); banner.remove(); },
      }, 'Not now')));
  accountPage.append(banner);
}

/** The step-up notice: this app asks for a second factor the account lacks. */
function stepUpNotice(main, url) {
  rememberReturn(url);
  main.replaceChildren(el('div', { class: 'page' },
    authCard('step-up-title', 'A second factor is needed',
      el('p', { id: 'step-up-message' },
        `This app (${destinationName(url)}) asks for a second factor. `,
        'Set one up on your account page; you can continue to the app from there.'),
      el('a', { class: 'btn btn-primary btn-block', id: 'step-up-link', href: '/account#section-mfa' },
        'Set up a second factor'))));
  document.body.dataset.page = 'step-up';
}

/**
 * After a complete sign-in: remember what the org wants about MFA, then go
 * back where the sign-in was asked for, or to the account.
 */
async function finishLogin(data) {
  // Whether the session may only enroll, the account page asks the server.
  const encouraged = !!(data && data.mfa_enrollment_encouraged);
  if (encouraged) sessionStorage.setItem(MFA_PROMPT_KEY, 'encouraged');
  else sessionStorage.removeItem(MFA_PROMPT_KEY);
  forgetPendingReturn();
  if (data && data.mfa_enrollment_required) {
    // The org requires a factor first: enroll, then the account page offers
    // to go on where this sign-in was going.
    const target = await returnTarget(returnToParam());
    if (target) rememberReturn(target.url);
    navigate('/account#section-mfa');
    return;
  }
  const profile = (data && data.profile) || {};
  // A sign-in with an enrolled factor went through the MFA step.
  if (await goBack(profile, !!profile.mfa_enrolled) === 'gone') return;
  navigate('/account');
}

/**
 * Leaves for the page's return_to when it may. Answers 'gone' (left, or the
 * step-up notice is showing), 'second-factor' (the app asks for a second
 * factor this session did not give, and the account has one: sign in
 * again) or null (no return_to it may follow).
 */
async function goBack(profile, mfaVerified) {
  const target = await returnTarget(returnToParam());
  if (!target) return null;
  if (target.secondFactorRequired && !mfaVerified) {
    // With a factor enrolled, signing in again passes the MFA step.
    if (profile.mfa_enrolled) return 'second-factor';
    stepUpNotice(document.getElementById('main'), target.url);
    return 'gone';
  }
  // A full load: the server answers these URLs, not the page's router.
  location.assign(target.url);
  return 'gone';
}

/** "Forgot password?" (web/recovery.js), carrying the org and the typed email. */
function forgotPasswordLink(org, email) {
  const link = el('a', { id: 'forgot-link', href: withQuery('/forgot-password', { org }) }, 'Forgot password?');
  link.addEventListener('click', () => {
    link.href = withQuery('/forgot-password', { org, login_hint: email.value.trim() });
  });
  return el('p', { class: 'forgot-link' }, link);
}

export async function renderLogin(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Sign in');
  const org = ctx.query.get('org') || '';

  const flashBox = messageRegion('login-flash');
  const errorBox = messageRegion('login-error', { alert: true });
  const lead = el('p', { class: 'card-lead', id: 'login-lead' }, 'Welcome back. Sign in with your email and password.');
  const email = el('input', {
    id: 'login-email', name: 'email', type: 'email', autocomplete: 'username webauthn',
    autocapitalize: 'none', spellcheck: 'false', required: true,
  });
  const password = el('input', {
    id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true,
  });
  const submit = el('button', { id: 'login-submit', type: 'submit', class: 'btn btn-primary btn-block' }, 'Sign in');
  const form = el('form', { id: 'login-form', novalidate: true },
    field('Email', email), field('Password', password), forgotPasswordLink(org, email), submit);
  const footer = el('p', { class: 'auth-footer', id: 'login-footer', hidden: true },
    'New here? ', el('a', { id: 'register-link', href: withQuery('/register', { org }) }, 'Create an account'));
  const passwordStep = el('div', { id: 'login-password-step' }, lead, errorBox, form,
    providerButtons(org || undefined, ctx.query.get('return_to') || undefined), footer);
  const mfaStep = el('div', { id: 'mfa-step', hidden: true });
  const page = el('div', { class: 'page', id: 'login-page', 'data-step': 'password' },
    authCard('login-title', 'Sign in', flashBox, passwordStep, mfaStep));
  ctx.main.append(page);

  const flash = takeFlash();
  if (flash) showMessage(flashBox, flash.text, flash.kind);
  const hint = ctx.query.get('login_hint');
  if (hint) email.value = hint;
  (hint ? password : email).focus();

  if (!flash && ctx.query.get('signed_out')) showMessage(flashBox, 'You are signed out.', 'info');

  // Already signed in: go straight on. Except to /oauth/authorize, which
  // sends a signed-in person here only to sign in again (prompt=login,
  // max_age, a second factor its org requires): for that the form stays.
  const returnTo = ctx.query.get('return_to');
  if (returnTo && csrfToken()) {
    try {
      const me = await api('/api/account', { redirectOn401: false });
      const session = (me && me.session) || {};
      if (!ctx.isCurrent()) return;
      if (session.enrollment_only) {
        // Sign in below; the org's enrollment follows, then the way back.
      } else if (returnTo.startsWith('/') && new URL(returnTo, location.origin).pathname === '/oauth/authorize') {
        showMessage(flashBox, 'Sign in again to continue to the app.', 'info');
      } else {
        const outcome = await goBack(me, !!session.mfa_verified);
        if (outcome === 'gone' || !ctx.isCurrent()) return;
        if (outcome === 'second-factor') {
          showMessage(flashBox, 'This app asks for a second factor. Sign in again and confirm with yours.', 'info');
        }
      }
    } catch {
      // No live session: sign in below.
    }
    if (!ctx.isCurrent()) return;
  }

  let info = null;
  try {
    info = await fetchInfo(org || undefined);
  } catch (err) {
    if (org && err.status === 404) showMessage(errorBox, `There is no organization called “${org}”.`);
  }
  if (!ctx.isCurrent()) return;
  if (info && info.org) {
    if (org) lead.textContent = `Sign in to ${info.org.name}.`;
    footer.hidden = info.org.registration === 'closed';
  }
  const webauthnOn = !!(info && info.webauthn) && webauthnAvailable();
  if (webauthnOn) offerPasskeySignIn(ctx, { after: form, errorBox, org, onSignedIn: finishLogin });

  const backToPassword = (message) => {
    page.dataset.step = 'password';
    mfaStep.hidden = true;
    mfaStep.replaceChildren();
    passwordStep.hidden = false;
    password.value = '';
    showMessage(errorBox, message || '');
    (email.value ? password : email).focus();
  };

  const startMfa = (challenge) => {
    page.dataset.step = 'mfa';
    passwordStep.hidden = true;
    showMessage(flashBox, '');
    mfaStep.replaceChildren(mfaView(challenge, {
      email: email.value.trim(),
      webauthnOn,
      onExpired: () => backToPassword('This sign-in expired, start again.'),
      onCancel: () => backToPassword(''),
    }));
    mfaStep.hidden = false;
    const first = mfaStep.querySelector('[role="tabpanel"]:not([hidden]) input, [role="tabpanel"]:not([hidden]) button, input');
    if (first) first.focus();
  };

  // A provider sign-in that needs the account's second factor continues here.
  const socialChallenge = takeSocialMfa(ctx.query);
  if (socialChallenge) startMfa(socialChallenge);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showMessage(flashBox, '');
    const empty = firstEmpty([email, password]);
    if (empty) {
      showMessage(errorBox, 'Enter your email and password.');
      empty.focus();
      return;
    }
    showMessage(errorBox, '');
    await busy(submit, async () => {
      try {
        const body = { email: email.value.trim(), password: password.value };
        if (org) body.org = org;
        const response = await request('/ui/api/login', { auth: 'public', method: 'POST', body });
        if (response.status === 202 && response.data && response.data.mfa_required) startMfa(response.data);
        else finishLogin(response.data);
      } catch (err) {
        if (err.status === 429) {
          retryCountdown(submit, errorBox, err.retryAfter);
        } else if (err.status === 401 || err.code === 'invalid_credentials') {
          showMessage(errorBox, 'Email or password is incorrect.');
          password.value = '';
          password.focus();
        } else {
          showMessage(errorBox, err.message || 'Something went wrong. Please try again.');
        }
      }
    });
  });

  ctx.ready('login');
}

/** The second step: a tab per method the server offers. */
function mfaView(challenge, { email, webauthnOn, onExpired, onCancel }) {
  const offered = METHOD_ORDER.filter((m) => (challenge.methods || ['totp']).includes(m));
  const errorBox = messageRegion('mfa-error', { alert: true });

  const complete = async (payload, button, input, kind) => {
    try {
      const response = await request('/ui/api/mfa', {
        auth: 'public', method: 'POST', body: { mfa_token: challenge.mfa_token, ...payload },
      });
      finishLogin(response.data);
    } catch (err) {
      if (!(err instanceof ApiError)) {
        showMessage(errorBox, 'Something went wrong. Please try again.');
      } else if (err.status === 429) {
        retryCountdown(button, errorBox, err.retryAfter);
      } else if (err.code === 'invalid_mfa_token') {
        onExpired();
      } else if (err.code === 'invalid_mfa_code' || err.status === 401) {
        showMessage(errorBox, kind === 'webauthn' ? 'That security key was not accepted. Try again.' : 'That code is not valid. Try again.');
        if (input) { input.value = ''; input.focus(); }
      } else {
        showMessage(errorBox, err.message);
      }
    }
  };

  const panels = {
    totp: () => {
      const code = el('input', {
        id: 'mfa-code', name: 'code', type: 'text', class: 'code-input', inputmode: 'numeric',
        autocomplete: 'one-time-code', pattern: '[0-9 ]*', maxlength: '9', autocapitalize: 'none', spellcheck: 'false',
      });
      const submit = el('button', { id: 'mfa-submit', type: 'submit', class: 'btn btn-primary btn-block' }, 'Verify');
      return el('form', {
        id: 'mfa-totp-form', novalidate: true,
        onSubmit: (event) => {
          event.preventDefault();
          const value = code.value.replace(/\s+/g, '');
          if (!/^\d{6}$/.test(value)) {
            markInvalid(code, true);
            showMessage(errorBox, 'Enter the 6-digit code from your authenticator app.');
            code.focus();
            return;
          }
          markInvalid(code, false);
          showMessage(errorBox, '');
          busy(submit, () => complete({ code: value }, submit, code, 'totp'));
        },
      }, field('6-digit code', code, 'Open your authenticator app to see the current code.'), submit);
    },
    recovery_code: () => {
      const code = el('input', {
        id: 'mfa-recovery-code', name: 'recovery_code', type: 'text', autocomplete: 'off',
        autocapitalize: 'none', spellcheck: 'false',
      });
      const submit = el('button', { id: 'mfa-recovery-submit', type: 'submit', class: 'btn btn-primary btn-block' }, 'Use recovery code');
      return el('form', {
        id: 'mfa-recovery-form', novalidate: true,
        onSubmit: (event) => {
          event.preventDefault();
          const value = code.value.trim();
          if (!value) {
            markInvalid(code, true);
            showMessage(errorBox, 'Enter one of your recovery codes.');
            code.focus();
            return;
          }
          markInvalid(code, false);
          showMessage(errorBox, '');
          busy(submit, () => complete({ recovery_code: value }, submit, code, 'recovery_code'));
        },
      }, field('Recovery code', code, 'Each recovery code works once.'), submit);
    },
    webauthn: () => {
      if (!webauthnOn) {
        return el('p', { class: 'muted' }, 'This browser cannot use security keys. Choose another method.');
      }
      const button = el('button', { id: 'mfa-webauthn-button', type: 'button', class: 'btn btn-primary btn-block' }, 'Use security key');
      button.addEventListener('click', () => busy(button, async () => {
        showMessage(errorBox, '');
        let credential;
        try {
          const options = await request('/mfa/webauthn/options', {
            auth: 'public', method: 'POST', body: { mfa_token: challenge.mfa_token },
          });
          credential = await navigator.credentials.get({ publicKey: requestOptions(options.data.publicKey) });
        } catch (err) {
          if (err instanceof ApiError) {
            if (err.code === 'invalid_mfa_token') onExpired();
            else if (err.status === 429) retryCountdown(button, errorBox, err.retryAfter);
            else showMessage(errorBox, err.message);
          } else {
            showMessage(errorBox, ceremonyError(err));
          }
          return;
        }
        if (credential) await complete({ webauthn: credentialJSON(credential) }, button, null, 'webauthn');
      }));
      return el('div', null,
        el('p', null, 'Use the security key or passkey you registered with this account.'),
        button);
    },
  };

  const container = el('div', { id: 'mfa-methods' });
  const tabButtons = [];
  const panelNodes = [];
  offered.forEach((method, index) => {
    const panel = el('div', { id: `mfa-panel-${method}`, 'data-method': method, hidden: index !== 0 }, panels[method]());
    panelNodes.push(panel);
    if (offered.length > 1) {
      panel.setAttribute('role', 'tabpanel');
      panel.setAttribute('aria-labelledby', `mfa-tab-${method}`);
      tabButtons.push(el('button', {
        type: 'button', role: 'tab', class: 'tab', id: `mfa-tab-${method}`, 'data-method': method,
        'aria-controls': panel.id, 'aria-selected': index === 0 ? 'true' : 'false', tabindex: index === 0 ? '0' : '-1',
      }, METHOD_LABELS[method]));
    }
  });

  const select = (index, focus) => {
    tabButtons.forEach((tab, i) => {
      tab.setAttribute('aria-selected', i === index ? 'true' : 'false');
      tab.tabIndex = i === index ? 0 : -1;
    });
    panelNodes.forEach((panel, i) => { panel.hidden = i !== index; });
    showMessage(errorBox, '');
    if (focus) tabButtons[index].focus();
  };
  tabButtons.forEach((tab, index) => {
    tab.addEventListener('click', () => {
      select(index, false);
      const target = panelNodes[index].querySelector('input, button');
      if (target) target.focus();
    });
    tab.addEventListener('keydown', (event) => {
      const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -index, End: tabButtons.length - 1 - index };
      if (!(event.key in moves)) return;
      event.preventDefault();
      select((index + moves[event.key] + tabButtons.length) % tabButtons.length, true);
    });
  });

  if (tabButtons.length) {
    container.append(el('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Verification method', id: 'mfa-tabs' }, tabButtons));
  }
  container.append(...panelNodes);
  if (!offered.length) container.append(el('p', null, 'No second factor is available for this account. Contact your administrator.'));

  return el('div', null,
    el('h2', { id: 'mfa-title' }, 'Two-step verification'),
    el('p', { class: 'card-lead' }, email ? `Confirm it’s you, ${email}.` : 'Confirm it’s you.'),
    errorBox,
    container,
    el('p', { class: 'auth-footer' },
      el('button', { type: 'button', class: 'link-button', id: 'mfa-cancel', onClick: onCancel }, 'Start over')));
}

export async function renderRegister(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Create an account');
  const org = ctx.query.get('org') || '';

  const errorBox = messageRegion('register-error', { alert: true });
  const result = el('div', { id: 'register-result', role: 'status', 'aria-live': 'polite' });
  const lead = el('p', { class: 'card-lead', id: 'register-lead' }, 'It takes a minute.');
  const name = el('input', { id: 'register-name', name: 'name', type: 'text', autocomplete: 'name' });
  const email = el('input', {
    id: 'register-email', name: 'email', type: 'email', autocomplete: 'email',
    autocapitalize: 'none', spellcheck: 'false', required: true,
  });
  const password = el('input', {
    id: 'register-password', name: 'password', type: 'password', autocomplete: 'new-password',
    required: true, 'aria-describedby': 'register-password-hint',
  });
  const toggle = el('button', {
    type: 'button', class: 'btn', id: 'register-password-toggle', 'aria-pressed': 'false', 'aria-controls': 'register-password',
  }, 'Show');
  toggle.addEventListener('click', () => {
    const show = password.type === 'password';
    password.type = show ? 'text' : 'password';
    toggle.textContent = show ? 'Hide' : 'Show';
    toggle.setAttribute('aria-pressed', String(show));
  });
  const submit = el('button', { id: 'register-submit', type: 'submit', class: 'btn btn-primary btn-block' }, 'Create account');
  const form = el('form', { id: 'register-form', novalidate: true },
    el('div', { class: 'field' },
      el('label', { for: 'register-name' }, 'Name ', el('span', { class: 'optional' }, '(optional)')), name),
    field('Email', email),
    el('div', { class: 'field' },
      el('label', { for: 'register-password' }, 'Password'),
      el('div', { class: 'input-row' }, password, toggle),
      el('div', { class: 'hint', id: 'register-password-hint' },
        'At least 8 characters, with upper- and lowercase letters and a digit.')),
    submit);
  const loginHref = withQuery('/login', { org });
  const footer = el('p', { class: 'auth-footer' }, 'Already have an account? ', el('a', { id: 'login-link', href: loginHref }, 'Sign in'));
  ctx.main.append(el('div', { class: 'page', id: 'register-page' },
    authCard('register-title', 'Create an account', lead, errorBox, result, form, footer)));
  name.focus();

  const showResult = (status) => {
    form.hidden = true;
    showMessage(errorBox, '');
    result.dataset.status = status;
    const heading = el('h2', { tabindex: '-1', id: 'register-result-title' },
      status === 'pending' ? 'Request sent' : 'Your account is ready');
    result.replaceChildren(
      heading,
      el('p', null, status === 'pending'
        ? 'Your request was sent; an administrator must approve it. You can sign in once it is approved.'
        : 'You can sign in now.'),
      status === 'pending' ? null : el('a', { class: 'btn btn-primary btn-block', id: 'register-signin', href: loginHref }, 'Sign in'));
    heading.focus();
  };

  try {
    const info = await fetchInfo(org || undefined);
    if (!ctx.isCurrent()) return;
    if (info && info.org) {
      if (org) lead.textContent = `Join ${info.org.name}.`;
      if (info.org.registration === 'approval') {
        lead.textContent = `${org ? `Join ${info.org.name}. ` : ''}An administrator reviews new accounts before they can sign in.`;
      }
      if (info.org.registration === 'closed') {
        form.hidden = true;
        result.dataset.status = 'closed';
        showMessage(errorBox, 'This organization does not accept new accounts. Ask an administrator to create one for you.', 'info');
      }
    }
  } catch (err) {
    if (org && err.status === 404) showMessage(errorBox, `There is no organization called “${org}”.`);
  }
  if (!ctx.isCurrent()) return;

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const empty = firstEmpty([email, password]);
    if (empty) {
      showMessage(errorBox, empty === email ? 'Enter your email address.' : 'Choose a password.');
      empty.focus();
      return;
    }
    showMessage(errorBox, '');
    await busy(submit, async () => {
      try {
        const body = { email: email.value.trim(), password: password.value };
        if (name.value.trim()) body.name = name.value.trim();
        if (org) body.org = org;
        const response = await request('/register', { auth: 'public', method: 'POST', body });
        showResult(response.status === 202 ? 'pending' : 'created');
      } catch (err) {
        if (err.status === 429) {
          retryCountdown(submit, errorBox, err.retryAfter);
        } else if (err.code === 'invalid_password') {
          showMessage(errorBox, passwordProblems(err, 'register-violations'));
          markInvalid(password, true);
          password.focus();
        } else if (err.code === 'email_taken') {
          showMessage(errorBox, ['An account with this email already exists. ', el('a', { href: loginHref }, 'Sign in instead')]);
          email.focus();
        } else if (err.code === 'registration_closed') {
          showMessage(errorBox, 'This organization does not accept new accounts.');
        } else {
          showMessage(errorBox, err.message || 'Something went wrong. Please try again.');
        }
      }
    });
  });

  ctx.ready('register');
}
