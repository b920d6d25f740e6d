// The one fetch helper. Three kinds of call:
//   auth: 'cookie'  the signed-in user's session cookie; non-GET requests carry
//                   X-CSRF-Token from the (__Host-)authd_csrf cookie; a 401 means the
//                   session ended (the app sends the user to the login page).
//   auth: 'public'  no session needed (info, login, MFA step, registration);
//                   a 401 is an answer for the page to show, not a redirect.
//   auth: 'admin'   the operator token from sessionStorage as a Bearer token;
//                   a 401 forgets the token and asks for it again.
// Errors come back as ApiError with the status, the error code, a readable
// message and, for 429, the seconds from Retry-After.

const ADMIN_TOKEN_KEY = 'authd.adminToken';

const handlers = {
  sessionEnded: () => {},
  adminUnauthorized: () => {},
  enrollmentRequired: () => {},
};

export function setHandlers(more) {
  Object.assign(handlers, more);
}

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(readableMessage(status, body));
    this.name = 'ApiError';
    this.status = status;
    this.body = body && typeof body === 'object' ? body : {};
    this.code = typeof this.body.error === 'string' ? this.body.error : '';
    this.retryAfter = retryAfter;
  }
}

function sentence(text) {
  const trimmed = String(text).trim();
  if (!trimmed) return trimmed;
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function fieldName(name) {
  return String(name).replace(/_/g, ' ');
}

/** The text a person sees for an error body of any of authd's families. */
function readableMessage(status, body) {
  if (status === 0) return 'Could not reach the server. Check your connection and try again.';
  if (!body || typeof body !== 'object') {
    return status >= 500 ? 'The server had a problem. Please try again.' : `The request failed (${status}).`;
  }
  if (Array.isArray(body.fields) && body.fields.length) {
    return body.fields.map((f) => sentence(`${fieldName(f.field)} ${f.message}`)).join(' ');
  }
  if (body.message) return sentence(body.message);
  if (body.error_description) return sentence(body.error_description);
  if (typeof body.error === 'string') {
    if (body.required) return `${body.error}: this needs the ${body.required} scope.`;
    // Bare control-plane codes (FORBIDDEN, ORG_REQUIRED) are shown as they are.
    return /^[A-Z_]+$/.test(body.error) ? body.error : sentence(body.error);
  }
  return `The request failed (${status}).`;
}

// Behind https the cookie is `__Host-authd_csrf` (a subdomain cannot plant
// it); on plain http browsers refuse that prefix, so it is `authd_csrf`.
const CSRF_COOKIES = ['__Host-authd_csrf=', 'authd_csrf='];

export function csrfToken() {
  const cookies = document.cookie.split(';').map((c) => c.trim());
  for (const prefix of CSRF_COOKIES) {
    const entry = cookies.find((c) => c.startsWith(prefix));
    if (entry) return decodeURIComponent(entry.slice(prefix.length));
  }
  return '';
}

export function adminToken() {
  return sessionStorage.getItem(ADMIN_TOKEN_KEY) || '';
}

export function setAdminToken(token) {
  if (token) sessionStorage.setItem(ADMIN_TOKEN_KEY, token);
  else sessionStorage.removeItem(ADMIN_TOKEN_KEY);
}

function retryAfterOf(response, body) {
  const header = response.headers.get('Retry-After');
  const seconds = header && /^\d+$/.test(header.trim())
    ? Number(header)
    : header ? Math.ceil((Date.parse(header) - Date.now()) / 1000) : NaN;
  if (Number.isFinite(seconds) && seconds > 0) return seconds;
  return Number(body && body.retry_after) || 30;
}

/**
 * Makes a request and returns {status, data}. Options: method, body (sent as
 * JSON), auth ('cookie' | 'public' | 'admin'), headers, token (an admin token
 * to try instead of the stored one), redirectOn401 (cookie calls; default true).
 */
export async function request(path, options = {}) {
  const { method = 'GET', body, auth = 'cookie', headers = {}, token, redirectOn401 = true } = options;
  const sent = { Accept: 'application/json', ...headers };
  if (body !== undefined) sent['Content-Type'] = 'application/json';
  if (auth === 'admin') {
    const bearer = token || adminToken();
    if (bearer) sent.Authorization = `Bearer ${bearer}`;
  } else if (method !== 'GET' && method !== 'HEAD') {
    const csrf = csrfToken();
    if (csrf) sent['X-CSRF-Token'] = csrf;
  }

  let response;
  try {
    response = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: auth === 'admin' ? 'omit' : 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, null);
  }

  let data = null;
  if (response.status !== 204) {
    const type = response.headers.get('Content-Type') || '';
    const text = await response.text();
    if (text && type.includes('json')) {
      try { data = JSON.parse(text); } catch { data = null; }
    } else if (text) {
      data = { message: text.slice(0, 200) };
    }
  }

  if (!response.ok) {
    const error = new ApiError(response.status, data,
      response.status === 429 ? retryAfterOf(response, data) : undefined);
    if (response.status === 401 && auth === 'cookie' && redirectOn401 && error.code !== 'invalid_mfa_code') {
      handlers.sessionEnded(error);
    } else if (response.status === 401 && auth === 'admin' && !token) {
      handlers.adminUnauthorized(error);
    } else if (response.status === 403 && auth === 'cookie' && error.code === 'mfa_enrollment_required') {
      handlers.enrollmentRequired(error);
    }
    throw error;
  }
  return { status: response.status, data };
}

/** Like request(), returning only the body. */
export async function api(path, options) {
  return (await request(path, options)).data;
}

/** A path with a query string made of the non-empty values of `params`. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

const infoCache = new Map();

/** GET /ui/api/info, once per org per page load. */
export function fetchInfo(org) {
  const key = org || '';
  if (!infoCache.has(key)) {
    const pending = api(withQuery('/ui/api/info', { org }), { auth: 'public' });
    pending.catch(() => infoCache.delete(key));
    infoCache.set(key, pending);
  }
  return infoCache.get(key);
}

