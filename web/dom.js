// DOM helpers shared by every page: building elements (never innerHTML),
// form fields, message regions, busy buttons, dates, copying, confirmations.

/** Builds an element: el('button', {type: 'button', onClick: fn}, 'Save'). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      node.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (key === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (key === 'for') {
      node.htmlFor = value;
    } else if (key === 'value' && (node instanceof HTMLInputElement || node instanceof HTMLTextAreaElement)) {
      // The default too, so that form.reset() goes back to it (not to empty).
      node.defaultValue = value;
      node.value = value;
    } else if (key === 'value' || key === 'checked' || key === 'selected') {
      node[key] = value;
    } else if (value === true) {
      node.setAttribute(key, '');
    } else {
      node.setAttribute(key, String(value));
    }
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** A labelled form field: the label points at the input, the hint describes it. */
export function field(label, input, hint) {
  const hintId = hint ? `${input.id}-hint` : null;
  if (hintId) input.setAttribute('aria-describedby', hintId);
  return el('div', { class: 'field' },
    el('label', { for: input.id }, label),
    input,
    hint ? el('div', { class: 'hint', id: hintId }, hint) : null);
}

export function checkbox(id, label, attrs = {}) {
  const input = el('input', { type: 'checkbox', id, ...attrs });
  return el('label', { class: 'check', for: id }, input, el('span', null, label));
}

export function select(id, options, current) {
  return el('select', { id },
    options.map(([value, label]) => el('option', { value, selected: value === current }, label)));
}

/** A live region for inline errors and successes; empty until used. */
export function messageRegion(id, { alert = false } = {}) {
  return el('div', { id, class: 'msg', role: alert ? 'alert' : 'status', 'aria-live': alert ? 'assertive' : 'polite' });
}

/** Shows `content` (text, a node, or a list of them) in a region; '' clears. */
export function showMessage(region, content, kind = 'error') {
  region.replaceChildren();
  region.className = 'msg';
  delete region.dataset.kind;
  if (content === '' || content === null || content === undefined) return;
  region.classList.add(`msg-${kind}`);
  region.dataset.kind = kind;
  append(region, content);
}

export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  setTimeout(() => { region.textContent = text; }, 50);
}

/** Runs `work` with the button disabled and marked busy; ignores double clicks. */
export async function busy(button, work) {
  if (!button || button.disabled) return undefined;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.removeAttribute('aria-busy');
    if (!button.dataset.locked) button.disabled = false;
  }
}

/** After a 429: keeps the button disabled and counts down in the region. */
export function retryCountdown(button, region, seconds) {
  let left = Math.max(1, Math.ceil(Number(seconds) || 30));
  const liveness = region.getAttribute('aria-live') || 'polite';
  button.dataset.locked = 'true';
  button.disabled = true;
  const tick = () => {
    if (left <= 0) {
      clearInterval(timer);
      delete button.dataset.locked;
      delete region.dataset.retryAfter;
      button.disabled = false;
      showMessage(region, '');
      region.setAttribute('aria-live', liveness);
      return;
    }
    showMessage(region, `Too many attempts. Try again in ${left} second${left === 1 ? '' : 's'}.`, 'error');
    region.dataset.retryAfter = String(left);
    left -= 1;
  };
  tick();
  // Announce the first message only, not every second of the countdown.
  region.setAttribute('aria-live', 'off');
  const timer = setInterval(tick, 1000);
}

export function markInvalid(input, invalid) {
  if (invalid) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

/**
 * Loads a whole list into `container`: marks `section` not ready, fetches,
 * draws one node per item (`order` may sort them) or `empty()` when there
 * are none, shows a failure in `message` (the list emptied), and marks the
 * section ready again. The one shape of every list the pages load.
 */
export async function loadList({ section, container, fetch, row, empty, message, order }) {
  section.dataset.ready = 'false';
  try {
    const data = await fetch();
    let items = Array.isArray(data) ? data : (data && data.items) || [];
    if (order) items = items.slice().sort(order);
    container.replaceChildren(...(items.length ? items.map(row) : [empty()]));
  } catch (err) {
    container.replaceChildren();
    showMessage(message, err.message);
  } finally {
    section.dataset.ready = 'true';
  }
}

export function loading(text = 'Loading…') {
  return el('div', { class: 'loading' }, el('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

export function badge(text, kind, test) {
  return el('span', { class: ['badge', kind && `badge-${kind}`], 'data-test': test }, text);
}

// ---- time ----------------------------------------------------------------

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** Times arrive as RFC 3339 strings or Unix seconds, depending on the shape. */
export function toDate(value) {
  if (value === null || value === undefined || value === '') return null;
  const date = typeof value === 'number' || /^\d+$/.test(String(value))
    ? new Date(Number(value) * 1000)
    : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function formatTime(value, { dateOnly: onlyDate = false } = {}) {
  const date = toDate(value);
  if (!date) return '—';
  return (onlyDate ? dateOnly : dateTime).format(date);
}

export function formatRelative(value) {
  const date = toDate(value);
  if (!date) return '—';
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const steps = [[60, 'second'], [60, 'minute'], [24, 'hour'], [30, 'day'], [12, 'month'], [Infinity, 'year']];
  let amount = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(amount) < size) return relative.format(Math.round(amount), unit);
    amount /= size;
  }
  return dateTime.format(date);
}

/** A <time> element; `relativeTo` shows "3 minutes ago" with the full time as a tooltip. */
export function timeEl(value, { relativeTo = false, onlyDate = false } = {}) {
  const date = toDate(value);
  if (!date) return el('span', { class: 'muted' }, '—');
  return el('time', { datetime: date.toISOString(), title: dateTime.format(date) },
    relativeTo ? formatRelative(value) : formatTime(value, { dateOnly: onlyDate }));
}

// ---- clipboard, downloads, dialogs ---------------------------------------

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el('textarea', { class: 'sr-only', readonly: true, 'aria-hidden': 'true' });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    area.remove();
    return ok;
  }
}

export function copyButton(getText, attrs = {}, label = 'Copy') {
  const button = el('button', { type: 'button', class: 'btn', ...attrs }, label);
  button.addEventListener('click', async () => {
    const ok = await copyText(getText());
    button.textContent = ok ? 'Copied' : 'Copy failed';
    announce(ok ? 'Copied to the clipboard' : 'Could not copy; select the text and copy it by hand');
    setTimeout(() => { button.textContent = label; }, 2000);
  });
  return button;
}

/** An SVG document (a QR code from the server) as an <img> source. */
export function svgDataUrl(svg) {
  let binary = '';
  for (const byte of new TextEncoder().encode(svg)) binary += String.fromCharCode(byte);
  return `data:image/svg+xml;base64,${btoa(binary)}`;
}

/** A download link for a text file made in the browser (Blob + object URL). */
export function downloadLink(filename, text, attrs = {}, label = 'Download') {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
  const link = el('a', { class: 'btn', href: url, download: filename, ...attrs }, label);
  link.addEventListener('click', () => setTimeout(() => URL.revokeObjectURL(url), 60_000), { once: true });
  return link;
}

/** Asks before something destructive, in the page's own <dialog>. */
export function confirmAction(message, { title = 'Are you sure?', confirmLabel = 'Confirm' } = {}) {
  const dialog = document.getElementById('confirm-dialog');
  if (!dialog || typeof dialog.showModal !== 'function') {
    return Promise.resolve(window.confirm(message));
  }
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-message').textContent = message;
  const ok = document.getElementById('confirm-ok');
  const cancel = document.getElementById('confirm-cancel');
  ok.textContent = confirmLabel;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const finish = (answer) => {
      ok.removeEventListener('click', onOk);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('close', onClose);
      if (dialog.open) dialog.close();
      if (opener && opener.isConnected) opener.focus();
      resolve(answer);
    };
    const onOk = () => finish(true);
    const onCancel = () => finish(false);
    const onClose = () => finish(false);
    ok.addEventListener('click', onOk);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('close', onClose);
    dialog.showModal();
    cancel.focus();
  });
}

// ---- flash messages across navigations ------------------------------------

const FLASH_KEY = 'authd.flash';

export function setFlash(text, kind = 'info') {
  sessionStorage.setItem(FLASH_KEY, JSON.stringify({ text, kind }));
}

export function takeFlash() {
  const raw = sessionStorage.getItem(FLASH_KEY);
  sessionStorage.removeItem(FLASH_KEY);
  try { return raw ? JSON.parse(raw) : null; } catch { return null; }
}

// ---- small formatting helpers ---------------------------------------------

/** "Firefox on Linux" from a user agent string; the full string goes in a title. */
export function describeAgent(agent) {
  if (!agent) return 'Unknown device';
  const browser = [
    [/Edg\//, 'Edge'], [/OPR\//, 'Opera'], [/Firefox\//, 'Firefox'], [/Chrome\//, 'Chrome'],
    [/Safari\//, 'Safari'], [/curl\//, 'curl'], [/python/i, 'Python'], [/Go-http-client/, 'Go'],
  ].find(([pattern]) => pattern.test(agent));
  const system = [
    [/Android/, 'Android'], [/iPhone|iPad|iOS/, 'iOS'], [/Mac OS X|Macintosh/, 'macOS'],
    [/Windows/, 'Windows'], [/CrOS/, 'ChromeOS'], [/Linux/, 'Linux'],
  ].find(([pattern]) => pattern.test(agent));
  if (!browser && !system) return agent.length > 40 ? `${agent.slice(0, 40)}…` : agent;
  return [browser && browser[1], system && `on ${system[1]}`].filter(Boolean).join(' ');
}

export function formatBytes(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n)) return String(bytes);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function formatDuration(totalSeconds) {
  let s = Math.max(0, Math.floor(Number(totalSeconds) || 0));
  const parts = [];
  for (const [size, unit] of [[86400, 'd'], [3600, 'h'], [60, 'm']]) {
    if (s >= size) { parts.push(`${Math.floor(s / size)}${unit}`); s %= size; }
  }
  if (parts.length < 2) parts.push(`${s}s`);
  return parts.join(' ');
}

export function shortId(id) {
  if (!id) return '—';
  const text = String(id);
  return text.length > 14 ? `${text.slice(0, 12)}…` : text;
}
