// Entry point: the route table, the top bar's buttons and what happens when a
// session or the admin token stops working.
//
// Modules: dom.js (element helpers), api.js (fetch), router.js (History API),
// layout.js (top bar), login.js (sign-in, MFA step, registration),
// recovery.js (forgot password, reset and email-confirmation pages),
// oauth.js (the consent, device and app sign-out pages),
// account.js (the signed-in user's page), admin.js (operator console),
// webauthn.js (security-key glue), passkeys.js (passkey sign-in, the /enroll
// page), vocabulary.js (the server's names and texts).

import { route, fallback, start, navigate } from './router.js';
import { setHandlers, request, csrfToken } from './api.js';
import { el, busy, setFlash } from './dom.js';
import { setTopbar, setTitle, MFA_PROMPT_KEY } from './layout.js';
import { renderLogin, renderRegister, offerPendingReturn, forgetPendingReturn } from './login.js';
import { renderConsent, renderDevice, renderSignout } from './oauth.js';
import { renderForgot, renderReset, renderVerifyEmail } from './recovery.js';
import { renderAccount, enrollmentRequired } from './account.js';
import { renderAdmin, signOutConsole, adminUnauthorized } from './admin.js';
import { loadVocabulary } from './vocabulary.js';
import { renderEnroll } from './passkeys.js';

setHandlers({
  sessionEnded: () => {
    if (location.pathname === '/login') return;
    sessionStorage.removeItem(MFA_PROMPT_KEY);
    setFlash(csrfToken() ? 'Your session has ended. Please sign in again.' : 'Please sign in to continue.', 'info');
    navigate('/login', { replace: true });
  },
  adminUnauthorized,
  enrollmentRequired,
});

async function home(ctx) {
  setTopbar({ mode: 'none' });
  if (!csrfToken()) {
    navigate(`/login${location.search}`, { replace: true });
    return;
  }
  try {
    await request('/api/account', { redirectOn401: false });
    if (ctx.isCurrent()) navigate('/account', { replace: true });
  } catch {
    if (ctx.isCurrent()) navigate(`/login${location.search}`, { replace: true });
  }
}

/** The account page, with the way back to an app when a sign-in stopped for a second factor. */
async function account(ctx) {
  await renderAccount(ctx);
  offerPendingReturn(ctx);
}

function notFound(ctx) {
  setTopbar({ mode: 'none' });
  setTitle('Not found');
  ctx.main.append(el('div', { class: 'page' },
    el('section', { class: 'card narrow', id: 'not-found' },
      el('h1', null, 'Page not found'),
      el('p', null, 'There is nothing at this address.'),
      el('a', { class: 'btn btn-primary', href: '/' }, 'Go to the start page'))));
  ctx.ready('not-found');
}

route((p) => p === '/', home);
route((p) => p === '/login', renderLogin);
route((p) => p === '/register', renderRegister);
route((p) => p === '/forgot-password', renderForgot);
route((p) => p === '/reset-password', renderReset);
route((p) => p === '/verify-email', renderVerifyEmail);
route((p) => p === '/consent', renderConsent);
route((p) => p === '/device', renderDevice);
route((p) => p === '/signout', renderSignout);
route((p) => p === '/enroll', renderEnroll);
route((p) => p === '/account', account);
route((p) => p === '/admin' || p.startsWith('/admin/'), renderAdmin);
fallback(notFound);

const signOut = document.getElementById('signout-button');
signOut.addEventListener('click', () => busy(signOut, async () => {
  try {
    await request('/ui/api/logout', { method: 'POST', body: {}, redirectOn401: false });
  } catch {
    // The session may already be gone; either way the user ends up signed out.
  }
  sessionStorage.removeItem(MFA_PROMPT_KEY);
  forgetPendingReturn();
  setFlash('You are signed out.', 'info');
  navigate('/login');
}));

document.getElementById('admin-signout').addEventListener('click', signOutConsole);

await loadVocabulary();
start();
