// The account page: profile, password, TOTP, security keys, sessions,
// connected apps and personal access tokens, each in its own card that loads its own data and
// sets data-ready="true" when done. When the org requires MFA and the user has
// none, only the profile and the TOTP enrollment are shown until it is done.

import {
  el, field, checkbox, select, messageRegion, showMessage, busy, retryCountdown, markInvalid, loading,
  badge, timeEl, copyButton, downloadLink, confirmAction, setFlash, describeAgent,
  loadList, svgDataUrl,
} from './dom.js';
import { api, fetchInfo, withQuery, ApiError } from './api.js';
import { navigate } from './router.js';
import { setTopbar, setTitle, pageHeader, MFA_PROMPT_KEY, passwordProblems } from './layout.js';
import { webauthnAvailable, creationOptions, credentialJSON, ceremonyError } from './webauthn.js';
import { scopes } from './vocabulary.js';
import { passkeyProof } from './passkeys.js';
import { emailVerification } from './recovery.js';
import { identitiesSection } from './social.js';


let activePage = null;

/** Called by the API layer on 403 mfa_enrollment_required. */
export function enrollmentRequired() {
  if (activePage) activePage.restrict();
}

function card(id, title, lead, ...content) {
  return el('section', { class: 'card', id, 'aria-labelledby': `${id}-title`, 'data-ready': 'false' },
    el('h2', { id: `${id}-title` }, title),
    lead ? el('p', { class: 'card-lead' }, lead) : null,
    ...content);
}

function sixDigits(input, region, prompt) {
  const value = input.value.replace(/\s+/g, '');
  const ok = /^\d{6}$/.test(value);
  markInvalid(input, !ok);
  if (!ok) {
    showMessage(region, prompt || 'Enter the 6-digit code from your authenticator app.');
    input.focus();
    return null;
  }
  return value;
}

function codeInput(id) {
  return el('input', {
    id, type: 'text', class: 'code-input', inputmode: 'numeric', autocomplete: 'one-time-code',
    pattern: '[0-9 ]*', maxlength: '9', autocapitalize: 'none', spellcheck: 'false',
  });
}

function isCodeError(err) {
  return err instanceof ApiError && (err.code === 'invalid_mfa_code'
    || (Array.isArray(err.body.fields) && err.body.fields.some((f) => f.field === 'code')));
}

export async function renderAccount(ctx) {
  setTopbar({ mode: 'user' });
  setTitle('Your account');
  const banners = el('div', { id: 'account-banners' });
  const body = el('div', { id: 'account-sections' }, loading('Loading your account…'));
  ctx.main.append(el('div', { class: 'page', id: 'account-page' }, pageHeader('Your account'), banners, body));

  let profile;
  try {
    profile = await api('/api/account');
  } catch (err) {
    if (!ctx.isCurrent() || err.status === 401) return;
    body.replaceChildren(el('div', { class: 'msg msg-error', role: 'alert', id: 'account-error' }, err.message));
    ctx.ready('account-error');
    return;
  }
  if (!ctx.isCurrent()) return;
  setTopbar({ mode: 'user', email: profile.email });

  let info = null;
  try { info = await fetchInfo(); } catch { info = null; }
  if (!ctx.isCurrent()) return;

  const prompt = sessionStorage.getItem(MFA_PROMPT_KEY);
  if (profile.mfa_enrolled && prompt) sessionStorage.removeItem(MFA_PROMPT_KEY);
  const state = {
    ctx,
    profile,
    info,
    // The server says whether this session may only enroll a factor.
    restricted: !!(profile.session && profile.session.enrollment_only),
    encouraged: prompt === 'encouraged' && !profile.mfa_enrolled,
    notice: null,
  };

  const draw = () => {
    banners.replaceChildren(...bannersFor(state, draw));
    body.replaceChildren(...sectionsFor(state, draw));
    document.getElementById('account-page').dataset.restricted = String(state.restricted);
  };
  state.draw = draw;
  activePage = {
    restrict: () => {
      if (state.restricted || !ctx.isCurrent() || state.profile.mfa_enrolled) return;
      state.restricted = true;
      draw();
      focusEnrollment();
    },
  };
  ctx.onLeave(() => { activePage = null; });
  draw();
  ctx.ready('account');

  if (ctx.hash === 'section-mfa' || state.restricted) focusEnrollment();
  else if (ctx.hash) {
    const target = document.getElementById(ctx.hash);
    if (target) target.scrollIntoView();
  }
}

function focusEnrollment() {
  const section = document.getElementById('section-mfa');
  if (!section) return;
  section.scrollIntoView({ block: 'start' });
  const button = document.getElementById('mfa-enroll-button');
  if (button) button.focus({ preventScroll: true });
}

function bannersFor(state) {
  if (state.restricted) {
    return [el('div', { class: 'banner', id: 'mfa-required-banner', role: 'status' },
      el('p', null, el('strong', null, 'Your organization requires two-step verification. '),
        'Set up an authenticator app below to continue using your account.'))];
  }
  if (state.encouraged) {
    const banner = el('div', { class: 'banner banner-info', id: 'mfa-encouraged-banner', role: 'status' },
      el('p', null, 'Protect your account: turn on two-step verification so a stolen password is not enough to sign in.'),
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'btn btn-primary btn-small', id: 'mfa-banner-setup', onClick: focusEnrollment }, 'Set up now'),
        el('button', {
          type: 'button', class: 'btn btn-small', id: 'mfa-banner-dismiss',
          onClick: () => {
            state.encouraged = false;
            sessionStorage.removeItem(MFA_PROMPT_KEY);
            banner.remove();
          },
        }, 'Not now')));
    return [banner];
  }
  return [];
}

function sectionsFor(state, draw) {
  if (state.restricted) return [profileSection(state), mfaSection(state, draw)];
  const showKeys = !!(state.info && state.info.webauthn) && webauthnAvailable();
  const links = [
    ['section-profile', 'Profile'], ['section-password', 'Password'], ['section-mfa', 'Two-step verification'],
    showKeys ? ['section-webauthn', 'Security keys'] : null, ['section-sessions', 'Sessions'], ['section-apps', 'Connected apps'],
    ['section-identities', 'Sign-in providers'],
    ['section-pats', 'Access tokens'],
  ].filter(Boolean);
  return [
    el('nav', { 'aria-label': 'Account sections' },
      el('ul', { class: 'section-nav', id: 'account-nav' }, links.map(([id, label]) => el('li', null, el('a', { href: `#${id}` }, label))))),
    profileSection(state),
    state.profile && state.profile.passkeys_only ? passkeysOnlySection() : passwordSection(state),
    mfaSection(state, draw),
    showKeys ? webauthnSection(state) : null,
    sessionsSection(state),
    appsSection(),
    identitiesSection(card, state),
    patsSection(state),
  ].filter(Boolean);
}

// ---- profile -----------------------------------------------------------------

/** The name a person reads for an org the user belongs to. */
function orgName(profile, orgId) {
  const org = (profile.orgs || []).find((o) => o.id === orgId);
  return org ? org.name : orgId;
}

/** Whether the user has an authenticator app (not just any second factor). */
function hasTotp(profile) {
  return (profile.mfa_methods || []).includes('totp');
}

function profileSection(state) {
  const p = state.profile;
  const mfaBadge = el('span', { id: 'profile-mfa' });
  state.setMfaBadge = (on) => mfaBadge.replaceChildren(on ? badge('On', 'success') : badge('Off'));
  state.setMfaBadge(p.mfa_enrolled);
  const memberships = (p.memberships || []).length
    ? el('ul', { class: 'plain-list', id: 'profile-memberships' }, p.memberships.map((m) => el('li', { 'data-org-id': m.org_id },
      el('span', { title: m.org_id }, orgName(p, m.org_id)), ' ', badge(m.role, m.role === 'admin' ? 'accent' : null))))
    : el('span', { class: 'muted' }, 'None');
  const section = card('section-profile', 'Profile', null,
    el('dl', { class: 'kv' },
      el('dt', null, 'Name'), el('dd', { id: 'profile-name' }, p.name || el('span', { class: 'muted' }, 'Not set')),
      el('dt', null, 'Email'), el('dd', { id: 'profile-email' }, p.email),
      el('dt', null, 'Email verified'), el('dd', null, emailVerification(p)),
      el('dt', null, 'Member since'), el('dd', null, timeEl(p.created_at, { onlyDate: true })),
      el('dt', null, 'Two-step verification'), el('dd', null, mfaBadge),
      el('dt', null, 'Organizations'), el('dd', null, memberships)));
  section.dataset.ready = 'true';
  return section;
}

// ---- password ----------------------------------------------------------------

function passwordSection(state) {
  const message = messageRegion('password-message');
  const current = el('input', { id: 'password-current', type: 'password', autocomplete: 'current-password' });
  const next = el('input', { id: 'password-new', type: 'password', autocomplete: 'new-password' });
  const confirm = el('input', { id: 'password-confirm', type: 'password', autocomplete: 'new-password' });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary', id: 'password-submit' }, 'Change password');
  // Whoever knew the old password could have made tokens: revoke them unless
  // the user says their automation should keep running.
  const revokePatsLabel = checkbox('password-revoke-pats', 'Also revoke my access tokens (recommended)', { checked: true });
  const revokePats = revokePatsLabel.querySelector('input');
  revokePats.defaultChecked = true;
  const form = el('form', { id: 'password-form', novalidate: true },
    // For password managers: which account this password belongs to.
    el('input', { type: 'text', name: 'username', autocomplete: 'username', value: state.profile.email, hidden: true, readonly: true }),
    field('Current password', current),
    field('New password', next, 'At least 8 characters, with upper- and lowercase letters and a digit.'),
    field('Repeat the new password', confirm),
    revokePatsLabel,
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const empty = [current, next, confirm].find((i) => !i.value);
    [current, next, confirm].forEach((i) => markInvalid(i, !i.value));
    if (empty) {
      showMessage(message, 'Fill in all three fields.');
      empty.focus();
      return;
    }
    if (next.value !== confirm.value) {
      markInvalid(confirm, true);
      showMessage(message, 'The new passwords do not match.');
      confirm.focus();
      return;
    }
    showMessage(message, '');
    await busy(submit, async () => {
      try {
        const revokeTokens = revokePats.checked;
        await api('/api/account/password', {
          method: 'POST', body: { current_password: current.value, new_password: next.value, keep_api_tokens: !revokeTokens },
        });
        form.reset();
        showMessage(message, revokeTokens
          ? 'Password changed. Your other sessions were signed out and your access tokens revoked.'
          : 'Password changed. Your other sessions were signed out.', 'success');
        if (revokeTokens && state.reloadPats) state.reloadPats();
        if (state.reloadSessions) state.reloadSessions();
      } catch (err) {
        if (err.status === 429) retryCountdown(submit, message, err.retryAfter);
        else if (err.code === 'invalid_password') {
          showMessage(message, passwordProblems(err, 'password-violations'));
          markInvalid(next, true);
          next.focus();
        } else showMessage(message, err.message);
      }
    });
  });
  const section = card('section-password', 'Password', 'Changing it signs you out everywhere else and, unless you untick the box, revokes your access tokens.', message, form);
  section.dataset.ready = 'true';
  return section;
}

/** In place of the password form: an account without a password has none to change. */
function passkeysOnlySection() {
  const section = card('section-password', 'Password',
    'This account has no password: it signs in with its passkeys or sign-in providers (below). Keep more than one if you can.');
  section.dataset.ready = 'true';
  return section;
}

// ---- TOTP ----------------------------------------------------------------------


function mfaSection(state, draw) {
  const message = messageRegion('mfa-message');
  const content = el('div', { id: 'mfa-content' });
  const section = card('section-mfa', 'Two-step verification',
    'Ask for a code from an authenticator app on your phone as well as your password.', message, content);
  const show = (view, name) => {
    content.replaceChildren(view);
    section.dataset.state = name;
  };

  const offView = () => {
    const button = el('button', { type: 'button', class: 'btn btn-primary', id: 'mfa-enroll-button' }, 'Set up authenticator app');
    button.addEventListener('click', () => busy(button, async () => {
      showMessage(message, '');
      try {
        const enrollment = await api('/api/account/mfa/enroll', { method: 'POST', body: {} });
        show(enrollView(enrollment), 'enrolling');
        document.getElementById('mfa-verify-code').focus();
      } catch (err) {
        showMessage(message, err.code === 'conflict' ? 'Two-step verification is already on. Reload the page.' : err.message);
      }
    }));
    return el('div', null,
      el('p', null, badge('Off', null, 'mfa-status'), ' No authenticator app is set up.'),
      el('div', { class: 'actions' }, button));
  };

  const enrollView = (enrollment) => {
    const secret = String(enrollment.secret || '').replace(/\s+/g, '');
    const code = codeInput('mfa-verify-code');
    const submit = el('button', { type: 'submit', class: 'btn btn-primary', id: 'mfa-verify-submit' }, 'Verify and turn on');
    const cancel = el('button', {
      type: 'button', class: 'btn', id: 'mfa-enroll-cancel',
      onClick: () => { showMessage(message, ''); show(offView(), 'off'); },
    }, 'Cancel');
    const form = el('form', { id: 'mfa-verify-form', novalidate: true },
      field('Code from the app', code), el('div', { class: 'actions' }, submit, cancel));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const value = sixDigits(code, message);
      if (!value) return;
      showMessage(message, '');
      busy(submit, async () => {
        try {
          const data = await api('/api/account/mfa/verify', { method: 'POST', body: { code: value } });
          state.profile.mfa_enrolled = true;
          state.profile.mfa_methods = ['totp', 'recovery_code', ...(state.profile.mfa_methods || []).filter((m) => m === 'webauthn')];
          state.setMfaBadge(true);
          show(codesView(data.recovery_codes || [], afterEnrolled), 'codes');
          document.getElementById('recovery-codes-copy').focus();
        } catch (err) {
          if (err.status === 429) retryCountdown(submit, message, err.retryAfter);
          else if (isCodeError(err)) {
            showMessage(message, 'That code is not valid. Wait for the next code and try again.');
            code.value = '';
            code.focus();
          } else showMessage(message, err.message);
        }
      });
    });
    return el('div', { class: 'enroll-grid' },
      el('div', null, el('img', {
        id: 'mfa-qr', class: 'qr', src: svgDataUrl(enrollment.qr_svg || ''), width: '200', height: '200',
        alt: 'QR code to scan with your authenticator app',
      })),
      el('div', null,
        el('ol', { class: 'steps' },
          el('li', null, 'Scan the QR code with an authenticator app (for example Aegis, 2FAS, Google Authenticator or 1Password).'),
          el('li', null, 'Can’t scan it? Enter this setup key by hand: ',
            el('code', { id: 'mfa-secret', class: 'secret', 'data-secret': secret }, secret.replace(/(.{4})(?=.)/g, '$1 ')),
            ' ', copyButton(() => secret, { id: 'mfa-secret-copy', class: 'btn btn-small', 'aria-label': 'Copy the setup key' }),
            el('div', { class: 'small' }, el('a', { id: 'mfa-otpauth-link', href: enrollment.otpauth_uri }, 'Or open it in an authenticator app on this device'))),
          el('li', null, 'Enter the 6-digit code the app shows.')),
        form));
  };

  const codesView = (codes, onSaved) => {
    const text = ['authd recovery codes', `Account: ${state.profile.email}`, `Created: ${new Date().toISOString()}`,
      '', 'Each code signs you in once if you cannot use your authenticator app.', '', ...codes, ''].join('\n');
    const saved = el('button', { type: 'button', class: 'btn btn-primary', id: 'recovery-codes-saved' }, 'I saved them');
    saved.addEventListener('click', onSaved);
    return el('div', { id: 'recovery-codes-panel' },
      el('h3', null, 'Your recovery codes'),
      el('div', { class: 'warning-box' },
        'Save these codes somewhere safe, such as a password manager. Each one lets you sign in once if you lose your phone. ',
        el('strong', null, 'They will not be shown again.')),
      el('ol', { class: 'codes', id: 'recovery-codes' }, codes.map((c) => el('li', { 'data-code': c }, el('code', null, c)))),
      el('div', { class: 'actions' },
        copyButton(() => codes.join('\n'), { id: 'recovery-codes-copy' }, 'Copy'),
        downloadLink('authd-recovery-codes.txt', text, { id: 'recovery-codes-download' }),
        saved));
  };

  const afterEnrolled = () => {
    if (state.restricted || state.encouraged) {
      state.restricted = false;
      state.encouraged = false;
      sessionStorage.removeItem(MFA_PROMPT_KEY);
      state.notice = 'Two-step verification is on.';
      draw();
      const heading = document.getElementById('section-mfa-title');
      if (heading) { heading.tabIndex = -1; heading.focus(); }
      return;
    }
    show(onView(), 'on');
    showMessage(message, 'Two-step verification is on.', 'success');
  };

  const onView = () => {
    const proofCode = el('input', { type: 'radio', name: 'mfa-proof', id: 'mfa-proof-code', value: 'code', checked: true });
    const proofPassword = el('input', { type: 'radio', name: 'mfa-proof', id: 'mfa-proof-password', value: 'password' });
    const label = el('label', { for: 'mfa-proof-input', id: 'mfa-proof-label' }, 'Current code');
    const input = codeInput('mfa-proof-input');
    const switchKind = () => {
      const usePassword = proofPassword.checked;
      label.textContent = usePassword ? 'Your password' : 'Current code';
      input.value = '';
      input.type = usePassword ? 'password' : 'text';
      input.className = usePassword ? '' : 'code-input';
      input.setAttribute('inputmode', usePassword ? 'text' : 'numeric');
      input.setAttribute('autocomplete', usePassword ? 'current-password' : 'one-time-code');
      if (usePassword) input.removeAttribute('maxlength'); else input.setAttribute('maxlength', '9');
    };
    proofCode.addEventListener('change', switchKind);
    proofPassword.addEventListener('change', switchKind);
    const proof = () => {
      if (proofPassword.checked) {
        if (!input.value) {
          markInvalid(input, true);
          showMessage(message, 'Enter your password.');
          input.focus();
          return null;
        }
        markInvalid(input, false);
        return { password: input.value };
      }
      const value = sixDigits(input, message);
      return value ? { code: value } : null;
    };
    const regenerate = el('button', { type: 'button', class: 'btn', id: 'mfa-regenerate-button' }, 'Get new recovery codes');
    const disable = el('button', { type: 'button', class: 'btn btn-danger', id: 'mfa-disable-button' }, 'Turn off');
    regenerate.addEventListener('click', () => {
      const body = proof();
      if (!body) return;
      showMessage(message, '');
      busy(regenerate, async () => {
        try {
          const data = await api('/api/account/mfa/recovery-codes', { method: 'POST', body });
          show(codesView(data.recovery_codes || [], () => {
            show(onView(), 'on');
            showMessage(message, 'New recovery codes are active; the old ones no longer work.', 'success');
          }), 'codes');
          document.getElementById('recovery-codes-copy').focus();
        } catch (err) {
          if (err.status === 429) retryCountdown(regenerate, message, err.retryAfter);
          else showMessage(message, isCodeError(err) ? 'That code is not valid.' : err.message);
        }
      });
    });
    disable.addEventListener('click', async () => {
      const body = proof();
      if (!body) return;
      if (!(await confirmAction('Your authenticator app, recovery codes and security keys will all be removed: your account will be protected by your password alone.', {
        title: 'Turn off two-step verification?', confirmLabel: 'Turn off',
      }))) return;
      showMessage(message, '');
      busy(disable, async () => {
        try {
          await api('/api/account/mfa', { method: 'DELETE', body });
          state.profile.mfa_enrolled = false;
          state.profile.mfa_methods = [];
          state.setMfaBadge(false);
          if (state.keysChanged) state.keysChanged();
          show(offView(), 'off');
          showMessage(message, 'Two-step verification was turned off.', 'success');
        } catch (err) {
          if (err.status === 429) retryCountdown(disable, message, err.retryAfter);
          else showMessage(message, isCodeError(err) ? 'That code is not valid.' : err.message);
        }
      });
    });
    return el('div', null,
      el('p', null, badge('On', 'success', 'mfa-status'), ' You’ll be asked for a code from your authenticator app when you sign in.'),
      el('form', { id: 'mfa-manage-form', novalidate: true, onSubmit: (event) => event.preventDefault() },
        el('fieldset', null,
          el('legend', null, 'To change these settings, confirm it’s you with'),
          el('label', { class: 'check', for: 'mfa-proof-code' }, proofCode, el('span', null, 'A current code')),
          el('label', { class: 'check', for: 'mfa-proof-password' }, proofPassword, el('span', null, 'Your password'))),
        el('div', { class: 'field' }, label, input),
        el('div', { class: 'actions' }, regenerate, disable)));
  };

  if (hasTotp(state.profile)) show(onView(), 'on');
  else show(offView(), 'off');
  // A security key added or removed elsewhere on the page changes whether the
  // account has a second factor at all (the profile, fetched again, says).
  state.mfaChanged = (profile) => {
    state.profile.mfa_enrolled = !!profile.mfa_enrolled;
    state.profile.mfa_methods = profile.mfa_methods || [];
    state.setMfaBadge(state.profile.mfa_enrolled);
    if (!hasTotp(state.profile) && section.dataset.state === 'on') show(offView(), 'off');
  };
  if (state.notice) {
    showMessage(message, state.notice, 'success');
    state.notice = null;
  }
  section.dataset.ready = 'true';
  return section;
}

// ---- security keys ------------------------------------------------------------------

function webauthnSection(state) {
  const message = messageRegion('webauthn-message');
  const list = el('ul', { class: 'list', id: 'webauthn-list' });
  const name = el('input', { id: 'webauthn-name', type: 'text', value: 'Security key', maxlength: '64' });
  const add = el('button', { type: 'submit', class: 'btn btn-primary', id: 'webauthn-add' }, 'Add security key');
  // A passkey is kept on the device (discoverable) and unlocked with a
  // fingerprint, face or PIN: it signs in alone, without the password.
  const addPasskey = el('button', { type: 'button', class: 'btn', id: 'passkey-add' }, 'Add passkey');
  // Changing second factors needs a fresh proof once there is one: a stolen
  // session alone must not add or remove keys.
  const password = el('input', { id: 'webauthn-password', type: 'password', autocomplete: 'current-password' });
  const form = el('form', { id: 'webauthn-add-form', novalidate: true },
    field('Name for the new key', name, 'You can use a hardware key or a passkey on this device.'),
    field('Your password', password, 'Needed to remove a key, and to add one once two-step verification is on.'),
    el('div', { class: 'actions' }, add, addPasskey));
  const section = card('section-webauthn', 'Security keys',
    'A security key or passkey can stand in for the code from your authenticator app. A passkey also signs you in on its own.', message, list, form);
  // An account without a password proves it is its owner with a passkey.
  const passwordless = () => !!(state.profile && state.profile.passkeys_only);
  if (passwordless()) password.closest('.field').hidden = true;
  const proof = async () => {
    if (password.value) return { password: password.value };
    return passwordless() ? passkeyProof() : {};
  };
  const needPassword = () => {
    markInvalid(password, true);
    showMessage(message, 'Enter your password first.');
    password.focus();
  };

  const empty = () => {
    if (!list.querySelector('li[data-credential-id]')) {
      list.replaceChildren(el('li', { class: 'empty', id: 'webauthn-empty' }, 'No security keys yet.'));
    }
  };

  const row = (item) => {
    const li = el('li', { 'data-credential-id': item.id });
    const view = () => {
      const rename = el('button', { type: 'button', class: 'btn btn-small', 'data-test': 'webauthn-rename' }, 'Rename');
      const remove = el('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-test': 'webauthn-remove' }, 'Remove');
      rename.setAttribute('aria-label', `Rename ${item.name}`);
      remove.setAttribute('aria-label', `Remove ${item.name}`);
      rename.addEventListener('click', edit);
      remove.addEventListener('click', async () => {
        if (!password.value && !passwordless()) {
          needPassword();
          return;
        }
        if (!(await confirmAction(`“${item.name}” will no longer work for signing in.`, {
          title: 'Remove this security key?', confirmLabel: 'Remove',
        }))) return;
        busy(remove, async () => {
          try {
            await api(`/api/account/webauthn/${encodeURIComponent(item.id)}`, { method: 'DELETE', body: await proof() });
            password.value = '';
            markInvalid(password, false);
            li.remove();
            empty();
            showMessage(message, `Removed “${item.name}”.`, 'success');
            // Removing the last factor turns MFA off; the profile says which.
            const profile = await api('/api/account').catch(() => null);
            if (profile && state.mfaChanged) state.mfaChanged(profile);
          } catch (err) {
            if (err.status === 429) retryCountdown(remove, message, err.retryAfter);
            else showMessage(message, err instanceof ApiError ? err.message : ceremonyError(err));
          }
        });
      });
      li.replaceChildren(
        el('div', { class: 'list-main' },
          el('div', { class: 'list-title' }, el('span', { 'data-test': 'webauthn-key-name' }, item.name),
            item.kind === 'passkey' ? [' ', badge('Passkey', 'accent', 'webauthn-kind')] : null),
          el('div', { class: 'list-meta' }, 'Added ', timeEl(item.created_at), ' · ',
            item.last_used_at ? ['Last used ', timeEl(item.last_used_at, { relativeTo: true })] : 'Never used')),
        el('div', { class: 'list-actions' }, rename, remove));
    };
    const edit = () => {
      const inputId = `webauthn-rename-${Math.random().toString(36).slice(2, 8)}`;
      const input = el('input', { id: inputId, type: 'text', value: item.name, maxlength: '64', 'data-test': 'webauthn-rename-input' });
      const save = el('button', { type: 'submit', class: 'btn btn-primary btn-small', 'data-test': 'webauthn-rename-save' }, 'Save');
      const cancel = el('button', { type: 'button', class: 'btn btn-small', 'data-test': 'webauthn-rename-cancel', onClick: view }, 'Cancel');
      const editForm = el('form', { class: 'list-main', novalidate: true }, field('New name', input), el('div', { class: 'actions' }, save, cancel));
      editForm.addEventListener('submit', (event) => {
        event.preventDefault();
        const newName = input.value.trim();
        if (!newName) {
          markInvalid(input, true);
          input.focus();
          return;
        }
        busy(save, async () => {
          try {
            const updated = await api(`/api/account/webauthn/${encodeURIComponent(item.id)}`, { method: 'PATCH', body: { name: newName } });
            item.name = (updated && updated.name) || newName;
            view();
            showMessage(message, 'Security key renamed.', 'success');
            li.querySelector('[data-test="webauthn-rename"]').focus();
          } catch (err) {
            if (err.status === 429) retryCountdown(remove, message, err.retryAfter);
            else showMessage(message, err.message);
          }
        });
      });
      li.replaceChildren(editForm);
      input.focus();
      input.select();
    };
    view();
    return li;
  };

  const register = (kind, button) => {
    showMessage(message, '');
    if (state.profile && state.profile.mfa_enrolled && !password.value && !passwordless()) {
      needPassword();
      return;
    }
    busy(button, async () => {
      try {
        const start = await api('/api/account/webauthn/register', { method: 'POST', body: { kind, ...(await proof()) } });
        password.value = '';
        markInvalid(password, false);
        let credential;
        try {
          credential = await navigator.credentials.create({ publicKey: creationOptions(start.publicKey) });
        } catch (err) {
          showMessage(message, ceremonyError(err));
          return;
        }
        const item = await api('/api/account/webauthn', {
          method: 'POST',
          body: {
            ceremony_id: start.ceremony_id,
            name: name.value.trim() || (kind === 'passkey' ? 'Passkey' : 'Security key'),
            credential: credentialJSON(credential),
          },
        });
        const placeholder = document.getElementById('webauthn-empty');
        if (placeholder) placeholder.remove();
        list.append(row(item));
        name.value = 'Security key';
        if (state.mfaChanged) {
          const methods = (state.profile.mfa_methods || []).filter((m) => m !== 'webauthn');
          state.mfaChanged({ mfa_enrolled: true, mfa_methods: [...methods, 'webauthn'] });
        }
        showMessage(message, `Added “${item.name}”.`, 'success');
      } catch (err) {
        if (err.status === 429) retryCountdown(button, message, err.retryAfter);
        else showMessage(message, err instanceof ApiError ? err.message : ceremonyError(err));
      }
    });
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    register('security_key', add);
  });
  addPasskey.addEventListener('click', () => register('passkey', addPasskey));

  const load = async () => {
    try {
      const data = await api('/api/account/webauthn');
      const items = Array.isArray(data) ? data : (data && data.items) || [];
      list.replaceChildren(...items.map(row));
      empty();
    } catch (err) {
      showMessage(message, err.message);
    } finally {
      section.dataset.ready = 'true';
    }
  };
  // Turning MFA off removes the keys too.
  state.keysChanged = load;
  load();
  return section;
}

// ---- sessions ------------------------------------------------------------------

function sessionsSection(state) {
  const message = messageRegion('sessions-message');
  const list = el('ul', { class: 'list', id: 'session-list' }, el('li', null, loading()));
  const everywhere = el('button', { type: 'button', class: 'btn btn-danger', id: 'logout-everywhere' }, 'Log out everywhere');
  const section = card('section-sessions', 'Sessions', 'Devices and apps signed in to your account.',
    message, list, el('div', { class: 'actions' }, everywhere));

  const row = (s) => {
    const agent = describeAgent(s.user_agent);
    const revoke = el('button', {
      type: 'button', class: 'btn btn-small', 'data-test': 'session-revoke',
      'aria-label': s.current ? 'Sign out of this device' : `Revoke the session of ${agent} from ${s.ip}`,
    }, s.current ? 'Sign out' : 'Revoke');
    const li = el('li', { class: 'session', 'data-session-id': s.id, 'data-current': s.current ? 'true' : 'false' },
      el('div', { class: 'list-main' },
        el('div', { class: 'list-title' }, el('span', { title: s.user_agent || '' }, agent),
          s.current ? badge('This device', 'accent', 'session-current') : null,
          s.mfa_verified ? badge('2-step verified', 'success') : null),
        el('div', { class: 'list-meta' }, s.ip || 'unknown address', ' · signed in ', timeEl(s.created_at),
          ' · active ', timeEl(s.last_active, { relativeTo: true }))),
      el('div', { class: 'list-actions' }, revoke));
    revoke.addEventListener('click', () => busy(revoke, async () => {
      try {
        await api(`/api/account/sessions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
        if (s.current) {
          setFlash('You are signed out.', 'info');
          navigate('/login');
          return;
        }
        li.remove();
        showMessage(message, `Signed out ${agent}.`, 'success');
      } catch (err) {
        showMessage(message, err.message);
      }
    }));
    return li;
  };

  const load = () => loadList({
    section, container: list, message, row,
    fetch: () => api('/api/account/sessions'),
    order: (a, b) => (b.current ? 1 : 0) - (a.current ? 1 : 0) || String(b.last_active).localeCompare(String(a.last_active)),
    empty: () => el('li', { class: 'empty' }, 'No active sessions.'),
  });
  state.reloadSessions = load;

  everywhere.addEventListener('click', async () => {
    if (!(await confirmAction('Every device and app signed in to your account will be signed out, this one included.', {
      title: 'Log out everywhere?', confirmLabel: 'Log out everywhere',
    }))) return;
    busy(everywhere, async () => {
      try {
        await api('/api/account/sessions/revoke-all', { method: 'POST', body: {} });
        setFlash('You were signed out on every device.', 'success');
        navigate('/login');
      } catch (err) {
        showMessage(message, err.message);
      }
    });
  });

  load();
  return section;
}

// ---- connected apps ------------------------------------------------------------------

function appsSection() {
  const message = messageRegion('apps-message');
  const list = el('ul', { class: 'list', id: 'connected-apps' }, el('li', null, loading()));
  const section = card('section-apps', 'Connected apps',
    'Apps you signed in to with this account, and what you allowed each to see. Revoking signs the app out and ends its tokens.',
    message, list);

  const row = (app) => {
    const revoke = el('button', {
      type: 'button', class: 'btn btn-small btn-danger', 'data-test': 'connected-app-revoke',
      'aria-label': `Revoke the access of ${app.name}`,
    }, 'Revoke');
    const li = el('li', { 'data-client-id': app.client_id },
      el('div', { class: 'list-main' },
        el('div', { class: 'list-title' }, app.name,
          app.active_sessions ? badge(`${app.active_sessions} signed in`, 'accent') : null),
        el('div', { class: 'list-meta' },
          (app.scopes || []).length ? `Allowed: ${app.scopes.join(', ')}` : 'No consent on record',
          app.granted_at ? [' · since ', timeEl(app.granted_at)] : null)),
      el('div', { class: 'list-actions' }, revoke));
    revoke.addEventListener('click', async () => {
      if (!(await confirmAction(`${app.name} is signed out and must ask again next time.`, {
        title: `Revoke ${app.name}?`, confirmLabel: 'Revoke',
      }))) return;
      busy(revoke, async () => {
        try {
          await api(`/api/account/apps/${encodeURIComponent(app.client_id)}`, { method: 'DELETE' });
          li.remove();
          if (!list.children.length) list.append(el('li', { class: 'empty' }, 'No connected apps.'));
          showMessage(message, `${app.name} no longer has access.`, 'success');
        } catch (err) {
          showMessage(message, err.message);
        }
      });
    });
    return li;
  };

  loadList({
    section, container: list, message, row,
    fetch: () => api('/api/account/apps'),
    empty: () => el('li', { class: 'empty' }, 'No connected apps.'),
  });
  return section;
}

// ---- personal access tokens ----------------------------------------------------------

function patsSection(state) {
  const memberships = state.profile.memberships || [];
  const message = messageRegion('pat-message');
  const section = card('section-pats', 'Personal access tokens',
    'Tokens let scripts call the authd API as you, limited to the scopes you pick. Treat them like passwords.', message);
  if (!memberships.length) {
    section.append(el('p', { class: 'empty' }, 'You are not a member of any organization, so you cannot create tokens.'));
    section.dataset.ready = 'true';
    return section;
  }

  let orgSelect = null;
  if (memberships.length > 1) {
    orgSelect = select('pat-org', memberships.map((m) => [m.org_id, `${orgName(state.profile, m.org_id)} (${m.role})`]), memberships[0].org_id);
    section.append(field('Organization', orgSelect));
  } else {
    section.append(el('p', { class: 'muted small', id: 'pat-org-label' }, 'Organization: ',
      el('strong', { title: memberships[0].org_id }, orgName(state.profile, memberships[0].org_id)), ` (${memberships[0].role})`));
  }
  const orgId = () => (orgSelect ? orgSelect.value : memberships[0].org_id);
  const headers = () => ({ 'X-Active-Org-Id': orgId() });

  const created = el('div', { class: 'panel', id: 'pat-created', hidden: true, role: 'status', 'aria-live': 'polite' });
  const list = el('ul', { class: 'list', id: 'pat-list' });
  const name = el('input', { id: 'pat-name', type: 'text', maxlength: '100', autocomplete: 'off' });
  const expiry = el('input', { id: 'pat-expiry', type: 'number', min: '1', max: '180', step: '1', value: '30', inputmode: 'numeric' });
  const create = el('button', { type: 'submit', class: 'btn btn-primary', id: 'pat-create' }, 'Create token');
  const scopeBoxes = scopes().map((scope) => checkbox(`pat-scope-${scope.replace('.', '-')}`, scope, { name: 'scope', value: scope, 'data-scope': scope }));
  const form = el('form', { id: 'pat-form', novalidate: true },
    el('h3', null, 'New token'),
    field('Name', name, 'What the token is for, e.g. “backup script”.'),
    el('fieldset', { id: 'pat-scopes' },
      el('legend', null, 'Scopes'),
      el('div', { class: 'check-grid' }, scopeBoxes),
      el('p', { class: 'hint small muted' }, 'Members can grant sessions.* and tokens.* scopes; admins can grant all of them.')),
    field('Expires in (days)', expiry, 'From 1 to 180 days.'),
    create);
  section.append(created, list, form);

  const revealToken = (pat) => {
    const dismiss = el('button', { type: 'button', class: 'btn', id: 'pat-created-dismiss' }, 'Done');
    dismiss.addEventListener('click', () => {
      created.hidden = true;
      created.replaceChildren();
      name.focus();
    });
    created.replaceChildren(
      el('h3', null, `Token “${pat.name}” created`),
      el('div', { class: 'warning-box' }, 'Copy this token now. ', el('strong', null, 'You won’t be able to see it again.')),
      el('code', { class: 'token-box', id: 'pat-token' }, pat.token),
      el('div', { class: 'actions' }, copyButton(() => pat.token, { id: 'pat-token-copy' }, 'Copy token'), dismiss));
    created.hidden = false;
    document.getElementById('pat-token-copy').focus();
  };

  const row = (t) => {
    const revoke = el('button', {
      type: 'button', class: 'btn btn-small btn-danger', 'data-test': 'pat-revoke', 'aria-label': `Revoke token ${t.name}`,
    }, 'Revoke');
    const li = el('li', { 'data-pat-id': t.id },
      el('div', { class: 'list-main' },
        el('div', { class: 'list-title', 'data-test': 'pat-row-name' }, t.name),
        el('div', { class: 'chips' }, (t.scopes || []).map((s) => badge(s))),
        el('div', { class: 'list-meta' }, 'Created ', timeEl(t.created_at), ' · expires ', timeEl(t.expires_at), ' · ',
          t.last_used_at ? ['last used ', timeEl(t.last_used_at, { relativeTo: true })] : 'never used')),
      el('div', { class: 'list-actions' }, revoke));
    revoke.addEventListener('click', async () => {
      if (!(await confirmAction(`Anything using “${t.name}” will stop working at once.`, {
        title: 'Revoke this token?', confirmLabel: 'Revoke',
      }))) return;
      busy(revoke, async () => {
        try {
          await api(`/api/v1/auth/api-tokens/${encodeURIComponent(t.id)}`, { method: 'DELETE', headers: headers() });
          li.remove();
          if (!list.querySelector('li[data-pat-id]')) list.replaceChildren(el('li', { class: 'empty' }, 'No tokens yet.'));
          showMessage(message, `Revoked “${t.name}”.`, 'success');
        } catch (err) {
          showMessage(message, err.message);
        }
      });
    });
    return li;
  };

  const load = () => {
    list.replaceChildren(el('li', null, loading()));
    return loadList({
      section, container: list, message, row,
      fetch: () => api(withQuery('/api/v1/auth/api-tokens', { limit: 100 }), { headers: headers() }),
      empty: () => el('li', { class: 'empty' }, 'No tokens yet.'),
    });
  };

  state.reloadPats = load;

  if (orgSelect) {
    orgSelect.addEventListener('change', () => {
      created.hidden = true;
      created.replaceChildren();
      showMessage(message, '');
      load();
    });
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const scopes = scopeBoxes.map((label) => label.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
    markInvalid(name, !name.value.trim());
    if (!name.value.trim()) {
      showMessage(message, 'Give the token a name.');
      name.focus();
      return;
    }
    if (!scopes.length) {
      showMessage(message, 'Choose at least one scope.');
      scopeBoxes[0].querySelector('input').focus();
      return;
    }
    showMessage(message, '');
    const days = expiry.value.trim();
    const body = { name: name.value.trim(), scopes, expires_in_days: /^\d+$/.test(days) ? Number(days) : days || null };
    busy(create, async () => {
      try {
        const pat = await api('/api/v1/auth/api-tokens', { method: 'POST', body, headers: headers() });
        const placeholder = list.querySelector('li.empty');
        if (placeholder) placeholder.remove();
        list.prepend(row(pat));
        form.reset();
        revealToken(pat);
      } catch (err) {
        showMessage(message, err.message);
      }
    });
  });

  load();
  return section;
}

