// The page chrome around every page: the top bar and the document title.

import { el } from './dom.js';
import { violationAdvice } from './vocabulary.js';

const byId = (id) => document.getElementById(id);

/** mode: 'none' (login, register), 'user' (account) or 'admin' (console). */
export function setTopbar({ mode = 'none', email = '' } = {}) {
  const user = byId('topbar-user');
  user.hidden = mode !== 'user' || !email;
  user.textContent = email;
  user.title = email;
  byId('signout-button').hidden = mode !== 'user';
  byId('admin-signout').hidden = mode !== 'admin';
  byId('topbar-tag').hidden = mode !== 'admin';
  byId('brand-link').setAttribute('href', mode === 'admin' ? '/admin' : '/');
  document.body.dataset.mode = mode;
}

export function setTitle(text) {
  document.title = text ? `${text} · authd` : 'authd';
}

export function pageHeader(title, ...extra) {
  return el('div', { class: 'page-header' }, el('h1', null, title), ...extra);
}

/** sessionStorage key: 'encouraged' after a login whose org encourages MFA. */
export const MFA_PROMPT_KEY = 'authd.mfaPrompt';


/** The body of an invalid_password error as a readable list. */
export function passwordProblems(error, listId) {
  const codes = Array.isArray(error.body && error.body.violations) ? error.body.violations : [];
  return [
    el('p', { class: 'msg-title' }, 'Choose a stronger password:'),
    el('ul', { id: listId }, codes.map((code) => el('li', { 'data-violation': code }, violationAdvice(code) || code.replace(/_/g, ' ')))),
  ];
}
