// Client-side routing with the History API. Each page handler gets a context:
//   ctx.main       the container to render into (emptied before each page)
//   ctx.path, ctx.query (URLSearchParams), ctx.hash
//   ctx.isCurrent() false once the user has navigated elsewhere
//   ctx.ready(name) sets <body data-page=name> if the page is still current
//   ctx.onLeave(fn) runs fn when the page is left (close streams, timers)
// Links to app paths are intercepted; everything else navigates normally.

const routes = [];
let notFound = () => {};
let generation = 0;
let leaving = [];
let currentLocation = '';
let firstRender = true;

export function route(test, handler) {
  routes.push({ test, handler });
}

export function fallback(handler) {
  notFound = handler;
}

export function isAppPath(path) {
  return path === '/' || routes.some((r) => r.test(path));
}

export function navigate(target, { replace = false } = {}) {
  const url = new URL(target, location.href);
  const next = url.pathname + url.search + url.hash;
  if (replace) history.replaceState(null, '', next);
  else history.pushState(null, '', next);
  return render();
}

/** Renders the current location again (e.g. after the admin token changed). */
export function rerender() {
  return render();
}

async function render() {
  generation += 1;
  const mine = generation;
  for (const fn of leaving) {
    try { fn(); } catch { /* a cleanup must not stop navigation */ }
  }
  leaving = [];
  currentLocation = location.pathname + location.search;

  const main = document.getElementById('main');
  main.replaceChildren();
  delete document.body.dataset.page;

  const path = location.pathname.replace(/\/+$/, '') || '/';
  const match = routes.find((r) => r.test(path)) || { handler: notFound };
  const ctx = {
    main,
    path,
    query: new URLSearchParams(location.search),
    hash: location.hash.slice(1),
    isCurrent: () => mine === generation,
    ready: (name) => { if (mine === generation) document.body.dataset.page = name; },
    onLeave: (fn) => { if (mine === generation) leaving.push(fn); else fn(); },
  };
  const initial = firstRender;
  firstRender = false;
  await match.handler(ctx);
  if (!initial && mine === generation && !main.contains(document.activeElement)) {
    const heading = main.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    }
    if (!location.hash) window.scrollTo(0, 0);
  }
}

export function start() {
  document.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = event.target.closest('a[href]');
    if (!link || link.target || link.hasAttribute('download')) return;
    const url = new URL(link.href, location.href);
    if (url.origin !== location.origin || !isAppPath(url.pathname.replace(/\/+$/, '') || '/')) return;
    // Same page, different fragment: let the browser scroll.
    if (url.pathname + url.search === location.pathname + location.search && url.hash) return;
    event.preventDefault();
    navigate(url.pathname + url.search + url.hash);
  });
  window.addEventListener('popstate', () => {
    // Fragment-only changes fire popstate too; they are not a new page.
    if (location.pathname + location.search === currentLocation) return;
    render();
  });
  return render();
}
