/**
 * The preview page of `themepress addon dev`: plain HTML, CSS and a script served by the dev
 * server itself (no inline code: the page runs under a strict CSP). Widgets render in
 * `<iframe sandbox="allow-scripts">` documents built like the server's; a Server-Sent Events stream
 * tells the page to reload after every run.
 */
export const DEV_PAGE_HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>themepress addon dev</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="/preview.css" />
    <script type="module" src="/preview.js"></script>
  </head>
  <body>
    <header>
      <h1 id="title">themepress addon dev</h1>
      <p class="muted" id="status">connecting…</p>
    </header>
    <section id="problems" hidden>
      <h2>Problems</h2>
      <ul id="problem-list"></ul>
    </section>
    <section>
      <h2>Widgets</h2>
      <div id="widgets" class="widgets"></div>
    </section>
    <section>
      <h2>Functions</h2>
      <div id="functions"></div>
    </section>
    <section>
      <h2>Last run</h2>
      <table>
        <thead>
          <tr><th>Kind</th><th>Name</th><th>Status</th><th>Time</th><th>CPU</th><th>Memory</th><th>Output</th></tr>
        </thead>
        <tbody id="runs"></tbody>
      </table>
    </section>
  </body>
</html>
`;

export const DEV_PAGE_CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1rem 1.5rem; color: #1d2939; }
h1 { font-size: 1.3rem; margin: 0; }
h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
.muted { color: #667085; }
.error { color: #b42318; }
.widgets { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1rem; }
figure { margin: 0; border: 1px solid #eaecf0; border-radius: 8px; overflow: hidden; }
figure iframe { width: 100%; height: 220px; border: 0; display: block; background: #fff; }
figcaption { padding: .4rem .6rem; border-top: 1px solid #eaecf0; background: #f9fafb; }
.fn { border: 1px solid #eaecf0; border-radius: 8px; padding: .6rem; margin-bottom: .8rem; }
.fn textarea { width: 100%; min-height: 4rem; font: 12px ui-monospace, monospace; box-sizing: border-box; }
.fn pre { background: #f9fafb; padding: .5rem; overflow: auto; max-height: 16rem; margin: .4rem 0 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #eaecf0; font-variant-numeric: tabular-nums; }
`;

export const DEV_PAGE_JS = `
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'text') node.textContent = String(value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) node.append(child);
  return node;
};
const ms = (v) => (v === null || v === undefined ? '—' : v.toFixed(1) + ' ms');
const bytes = (v) => (v === null || v === undefined ? '—' : v < 1024 ? v + ' B' : (v / 1024).toFixed(1) + ' KB');

async function load() {
  const state = await (await fetch('/api/state')).json();
  document.body.dataset.revision = String(state.revision);
  $('title').textContent = (state.addon.name ?? '(no name)') + ' ' + (state.addon.version ?? '');
  $('status').textContent = 'run ' + state.revision + ' at ' + new Date(state.at).toLocaleTimeString() + ' (' + state.reason + ')';
  $('problems').hidden = state.problems.length === 0;
  $('problem-list').replaceChildren(...state.problems.map((p) => el('li', { class: 'error', text: p.field + ': ' + p.message })));
  const widgets = state.entries.filter((e) => e.kind === 'widget');
  $('widgets').replaceChildren(
    ...widgets.map((e) => {
      const body = e.status === 'ok'
        ? el('iframe', { sandbox: 'allow-scripts', title: e.name, 'data-widget': e.name, src: '/widgets/' + encodeURIComponent(e.name) + '?revision=' + state.revision })
        : el('p', { class: 'error', text: (e.code ?? e.status) + ': ' + (e.message ?? '') });
      return el('figure', {}, body, el('figcaption', { text: e.name + ' — ' + ms(e.durationMs) + ', ' + bytes(e.outputBytes) }));
    }),
  );
  if (widgets.length === 0) $('widgets').replaceChildren(el('p', { class: 'muted', text: 'No widgets ran.' }));
  const functions = state.entries.filter((e) => e.kind === 'function');
  $('functions').replaceChildren(
    ...functions.map((e) => {
      const input = el('textarea', { 'aria-label': 'input of ' + e.name });
      input.value = JSON.stringify(state.samples[e.name] ?? {}, null, 2);
      const output = el('pre', { 'data-function': e.name, text: e.status === 'ok' ? JSON.stringify(e.output, null, 2) : (e.code ?? e.status) + ': ' + (e.message ?? '') });
      const button = el('button', { type: 'button', text: 'Run ' + e.name });
      button.addEventListener('click', async () => {
        let data;
        try { data = JSON.parse(input.value); } catch (error) { output.textContent = 'input is not JSON: ' + error.message; return; }
        const response = await fetch('/api/functions/' + encodeURIComponent(e.name), {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: data }),
        });
        const run = await response.json();
        output.textContent = run.error ? run.error.message : run.status === 'ok' ? JSON.stringify(run.output, null, 2) : run.code + ': ' + run.message;
      });
      return el('div', { class: 'fn' }, el('strong', { text: e.name }), input, button, output);
    }),
  );
  $('runs').replaceChildren(
    ...state.entries.map((e) => el('tr', { 'data-status': e.status },
      el('td', { text: e.kind }), el('td', { text: e.name }), el('td', { text: e.status === 'ok' ? 'ok' : e.status + ' ' + (e.code ?? '') }),
      el('td', { text: ms(e.durationMs) }), el('td', { text: ms(e.cpuTimeMs) }), el('td', { text: bytes(e.memoryBytes) }), el('td', { text: bytes(e.outputBytes) }))),
  );
}

const events = new EventSource('/api/events');
events.addEventListener('message', () => void load());
events.addEventListener('error', () => { $('status').textContent = 'disconnected: is "themepress addon dev" still running?'; });
void load();
`;
