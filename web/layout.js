// The page chrome around every page: the top bar and the document title.

import { el } from './dom.js';

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

/** sessionStorage key: 'required' or 'encouraged' after a login whose org wants MFA. */
export const MFA_PROMPT_KEY = 'authd.mfaPrompt';

const VIOLATIONS = {
  too_short: 'It is too short.',
  min_length: 'It is too short.',
  too_long: 'It is too long.',
  max_length: 'It is too long.',
  missing_uppercase: 'Add an uppercase letter.',
  missing_lowercase: 'Add a lowercase letter.',
  missing_digit: 'Add a digit.',
  missing_special: 'Add a character that is not a letter or a digit.',
  common: 'It is a commonly used password; choose something less guessable.',
  contains_user_info: 'It must not contain your email address or name.',
  contains_nul: 'It contains a character that is not allowed.',
  reused_password: 'You used it recently; choose a new one.',
};

/** The body of an invalid_password error as a readable list. */
export function passwordProblems(error, listId) {
  const codes = Array.isArray(error.body && error.body.violations) ? error.body.violations : [];
  return [
    el('p', { class: 'msg-title' }, 'Choose a stronger password:'),
    el('ul', { id: listId }, codes.map((code) => el('li', { 'data-violation': code }, VIOLATIONS[code] || code.replace(/_/g, ' ')))),
  ];
}
