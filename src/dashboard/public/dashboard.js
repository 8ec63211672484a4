// The ThemePress dashboard: plain DOM, no framework and no build step. Everything that comes from
// the API reaches the page through textContent or attribute setters, never as HTML, because event
// data, addon names and error messages are written by third parties.
import { createLiveClient } from './live-client.js';
import { startCharts } from './charts.js';

const KEY_STORAGE = 'themepress.dashboard.apiKey';
const SITE_STORAGE = 'themepress.dashboard.siteId';
const WINDOW_SECONDS = 60;
const STATS_EVERY_MS = 5000;
const MAX_ITEMS = 100;
const MAX_DATA_CHARS = 300;

const DELIVERY_FIELDS = `id eventName addonName handler status attempts maxAttempts lastError createdAt updatedAt`;
const EXECUTION_FIELDS = `id addonName kind entry status errorMessage durationMs createdAt`;

const EVENT_FIELDS = 'id cursor name source siteId data createdAt';
/** What the installed addons table says of consent and quarantine, refreshed with the metrics. */
const SAFETY_FIELDS = 'pendingPermissions quarantine { state lastReason openUntil trips }';
const QUERIES = {
  viewer: `query DashboardViewer { viewer { role siteId developerId } }`,
  sites: `query DashboardSites { sites { id name domain } }`,
  installations: `query DashboardInstallations($siteId: ID) {
    installations(siteId: $siteId) {
      id enabled updatedAt
      addon { id name displayName version }
      version { version widgets { name displayName } }
      ${SAFETY_FIELDS}
    }
  }`,
  safety: `query DashboardInstallationSafety($siteId: ID) {
    installations(siteId: $siteId) { addon { name version } version { version } enabled ${SAFETY_FIELDS} }
  }`,
  catalogue: `query DashboardCatalogue {
    addons(first: 50) { totalCount edges { node { id name displayName version updatedAt } } }
  }`,
  stats: `query DashboardStats($windowSeconds: Int!) {
    dashboardStats(windowSeconds: $windowSeconds) {
      windowSeconds executions executionsPerSecond errors errorRate p50Ms p95Ms
      addons { addonId addonName executions errors errorRate p95Ms }
      widgetCache { l1Hits l2Hits misses hitRate }
      sandbox { workers workersReady isolates isolateMemoryMb memoryPerIsolateMb isolateMemoryBudgetMb workersRssMb }
      workerKills { at workerId reason culprits { addonName version siteId } failedCalls retriedCalls rssMb }
    }
  }`,
  deliveries: `query DashboardDeliveries($status: DeliveryStatus) {
    deliveries(first: 50, status: $status) { edges { node { ${DELIVERY_FIELDS} } } }
  }`,
  executions: `query DashboardExecutions { executions(first: 25) { edges { node { ${EXECUTION_FIELDS} } } } }`,
  recentEvents: `query DashboardRecentEvents($last: Int!) {
    events(last: $last) { edges { node { ${EVENT_FIELDS} } } pageInfo { endCursor } }
  }`,
  eventsAfter: `query DashboardEventsAfter($after: String!) {
    events(after: $after, first: 500) { edges { node { ${EVENT_FIELDS} } } pageInfo { hasNextPage endCursor } }
  }`,
  retry: `mutation DashboardRetryDelivery($id: ID!) { retryDelivery(id: $id) { ${DELIVERY_FIELDS} } }`,
};

const SUBSCRIPTIONS = {
  events: `subscription DashboardEvents { events { ${EVENT_FIELDS} } }`,
  executions: `subscription DashboardExecutions { executions { ${EXECUTION_FIELDS} } }`,
  deliveries: `subscription DashboardDeliveries { deliveries { ${DELIVERY_FIELDS} } }`,
};

const byId = (id) => {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from the page`);
  return node;
};

/**
 * Creates an element; `text` becomes its textContent and children are nodes or strings (added as
 * text nodes), so data can never turn into markup.
 */
function el(tag, { className, text, title, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (title) node.title = title;
  for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, String(value));
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '');
const ms = (value) =>
  value === null || value === undefined ? '—' : `${value.toFixed(value < 10 ? 2 : 0)} ms`;
const percent = (value) => (value === null || value === undefined ? '—' : `${(value * 100).toFixed(1)} %`);

function preview(data) {
  let text;
  try {
    text = JSON.stringify(data);
  } catch {
    text = String(data);
  }
  if (text === undefined) text = 'null';
  return text.length > MAX_DATA_CHARS ? `${text.slice(0, MAX_DATA_CHARS)}…` : text;
}

class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/** POSTs one operation to /graphql with the key; a refused key becomes ApiError UNAUTHENTICATED. */
async function graphql(key, query, variables = {}) {
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError('The server cannot be reached.', 'NETWORK', 0);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`Unexpected answer (HTTP ${response.status}).`, 'HTTP', response.status);
  }
  const errors = Array.isArray(body?.errors) ? body.errors : [];
  const code = errors[0]?.extensions?.code;
  if (response.status === 401 || code === 'UNAUTHENTICATED') {
    throw new ApiError(errors[0]?.message ?? 'Unauthenticated.', 'UNAUTHENTICATED', response.status);
  }
  if (errors.length > 0) {
    throw new ApiError(errors.map((e) => e.message).join(' '), code ?? 'ERROR', response.status);
  }
  return body.data;
}

// ---------------------------------------------------------------------------------------------

const ui = {
  login: byId('login'),
  form: byId('key-form'),
  input: byId('key-input'),
  loginError: byId('login-error'),
  dashboard: byId('dashboard'),
  session: byId('session'),
  role: byId('role'),
  live: byId('live-status'),
  forget: byId('forget'),
  notice: byId('notice'),
  statsScope: byId('stats-scope'),
  rate: byId('m-rate'),
  p95: byId('m-p95'),
  errors: byId('m-errors'),
  cache: byId('m-cache'),
  cacheNote: byId('m-cache-note'),
  isolates: byId('m-isolates'),
  isolatesNote: byId('m-isolates-note'),
  errorsBody: byId('errors-body'),
  killsBody: byId('kills-body'),
  addonsTitle: byId('addons-title'),
  sitePicker: byId('site-picker'),
  siteSelect: byId('site-select'),
  addonsBody: byId('addons-body'),
  addonsEmpty: byId('addons-empty'),
  deliveryStatus: byId('delivery-status'),
  deliveriesBody: byId('deliveries-body'),
  events: byId('events-list'),
  executionsBody: byId('executions-body'),
  executionsNote: byId('executions-note'),
  widgets: byId('widgets-grid'),
  widgetsEmpty: byId('widgets-empty'),
};

/** @type {ReturnType<typeof startSession> | null} */
let session = null;

function showLogin(message = '') {
  ui.dashboard.hidden = true;
  ui.session.hidden = true;
  ui.login.hidden = false;
  ui.loginError.textContent = message;
  ui.input.value = '';
  ui.input.focus();
}

function showNotice(message, kind = 'info') {
  ui.notice.textContent = message;
  ui.notice.dataset.kind = kind;
  ui.notice.hidden = message === '';
}

function endSession() {
  session?.stop();
  session = null;
}

/** The key stopped working mid-session (revoked, expired): back to the form, with the reason. */
function expire(message) {
  endSession();
  sessionStorage.removeItem(KEY_STORAGE);
  showLogin(message);
}

async function open(key) {
  ui.loginError.textContent = '';
  let viewer;
  try {
    viewer = (await graphql(key, QUERIES.viewer)).viewer;
  } catch (error) {
    if (error.code === 'UNAUTHENTICATED') {
      sessionStorage.removeItem(KEY_STORAGE);
      showLogin(`This API key was refused (HTTP ${error.status || 401}): it is unknown or revoked.`);
    } else {
      // Kept: the server being down says nothing about the key.
      showLogin(`${error.message} Try again in a moment.`);
    }
    return;
  }
  if (!viewer || viewer.role === 'anonymous') {
    showLogin('This API key was refused.');
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  endSession();
  session = startSession(key, viewer);
}

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const key = ui.input.value.trim();
  if (key === '') {
    ui.loginError.textContent = 'Enter an API key.';
    return;
  }
  void open(key);
});

ui.forget.addEventListener('click', () => {
  endSession();
  sessionStorage.removeItem(KEY_STORAGE);
  sessionStorage.removeItem(SITE_STORAGE);
  showLogin('The key was removed from this browser session.');
});

// ---------------------------------------------------------------------------------------------

/** Everything one signed-in key shows; stop() ends its timers, socket and pending updates. */
function startSession(key, viewer) {
  let active = true;
  const timers = [];
  const deliveries = new Map();
  const canRetry = viewer.role === 'admin' || viewer.role === 'site';
  let siteId = viewer.role === 'site' ? viewer.siteId : null;

  const call = async (query, variables) => {
    try {
      const data = await graphql(key, query, variables);
      return active ? data : null;
    } catch (error) {
      if (!active) return null;
      if (error.code === 'UNAUTHENTICATED') {
        expire(`The API key stopped working (HTTP ${error.status || 401}): ${error.message}`);
        return null;
      }
      throw error;
    }
  };
  const report = (what) => (error) => {
    if (active) showNotice(`${what}: ${error.message}`, 'error');
  };

  ui.login.hidden = true;
  ui.dashboard.hidden = false;
  ui.session.hidden = false;
  ui.role.textContent = viewer.role === 'site' ? `site ${viewer.siteId}` : viewer.role;
  showNotice('');
  for (const body of [ui.errorsBody, ui.killsBody, ui.addonsBody, ui.deliveriesBody, ui.executionsBody])
    body.replaceChildren();
  ui.events.replaceChildren();
  ui.widgets.replaceChildren();

  // ---- charts (charts.js) ---------------------------------------------------------------------
  const charts = startCharts(byId('charts-grid'), (query) => call(query), report);

  // ---- metrics -------------------------------------------------------------------------------
  ui.statsScope.textContent = {
    admin: `last ${WINDOW_SECONDS} s, all sites`,
    site: `last ${WINDOW_SECONDS} s, this site`,
    developer: `last ${WINDOW_SECONDS} s, your addons`,
  }[viewer.role];

  const renderStats = (stats) => {
    ui.rate.textContent = stats.executionsPerSecond.toFixed(2);
    ui.p95.textContent = ms(stats.p95Ms);
    ui.errors.textContent = `${stats.errors} (${percent(stats.executions ? stats.errorRate : null)})`;
    if (stats.widgetCache) {
      const cache = stats.widgetCache;
      ui.cache.textContent = percent(cache.hitRate);
      ui.cacheNote.textContent = `this instance since start: ${cache.l1Hits + cache.l2Hits} hits (L1 ${cache.l1Hits}, L2 ${cache.l2Hits}), ${cache.misses} misses`;
    } else {
      ui.cache.textContent = '—';
      ui.cacheNote.textContent = 'admin keys only (per-instance counters cover every site)';
    }
    if (stats.sandbox) {
      const sandbox = stats.sandbox;
      const perIsolate =
        sandbox.memoryPerIsolateMb === null ? '—' : `${sandbox.memoryPerIsolateMb.toFixed(2)} MB`;
      ui.isolates.textContent = String(sandbox.isolates);
      ui.isolatesNote.textContent = `this instance: ${perIsolate} each, ${Math.round(sandbox.isolateMemoryMb)} of ${Math.round(sandbox.isolateMemoryBudgetMb)} MB budget; ${sandbox.workersReady}/${sandbox.workers} workers, ${Math.round(sandbox.workersRssMb)} MB RSS`;
    } else {
      ui.isolates.textContent = '—';
      ui.isolatesNote.textContent = 'admin keys only (the isolates serve every site)';
    }
    const rows = stats.addons.filter((row) => row.errors > 0 || stats.addons.length <= 10);
    ui.errorsBody.replaceChildren(
      ...rows.map((row) =>
        el(
          'tr',
          { className: row.errors > 0 ? 'has-errors' : '' },
          el('td', { text: row.addonName }),
          el('td', { className: 'num', text: row.executions }),
          el('td', { className: 'num', text: row.errors }),
          el('td', { className: 'num', text: percent(row.errorRate) }),
          el('td', { className: 'num', text: ms(row.p95Ms) }),
        ),
      ),
    );
    renderKills(stats.workerKills);
    if (rows.length === 0) {
      ui.errorsBody.append(
        el(
          'tr',
          {},
          el('td', {
            attrs: { colspan: 5 },
            className: 'muted',
            text: stats.addons.length === 0 ? 'No executions in the window.' : 'No errors in the window.',
          }),
        ),
      );
    }
  };
  // A worker kill names the addon version and site held responsible (the others' calls were retried).
  const renderKills = (kills) => {
    ui.killsBody.replaceChildren(
      ...kills.map((kill) =>
        el(
          'tr',
          { className: kill.failedCalls > 0 ? 'has-errors' : '' },
          el('td', { text: time(kill.at), title: `worker ${kill.workerId}` }),
          el('td', { text: kill.reason }),
          el('td', {
            text:
              kill.culprits.map((c) => `${c.addonName}@${c.version} on site ${c.siteId}`).join(', ') ||
              'not identified',
          }),
          el('td', { className: 'num', text: kill.failedCalls }),
          el('td', { className: 'num', text: kill.retriedCalls }),
          el('td', { className: 'num', text: `${kill.rssMb} MB` }),
        ),
      ),
    );
    if (kills.length === 0) {
      ui.killsBody.append(
        el('tr', {}, el('td', { attrs: { colspan: 6 }, className: 'muted', text: 'No worker was stopped.' })),
      );
    }
  };
  const refreshStats = () =>
    call(QUERIES.stats, { windowSeconds: WINDOW_SECONDS })
      .then((data) => data && renderStats(data.dashboardStats))
      .catch(report('Metrics'));
  void refreshStats();
  timers.push(setInterval(refreshStats, STATS_EVERY_MS));

  // ---- installed addons and widget previews ---------------------------------------------------
  const renderWidgets = (installations) => {
    ui.widgets.replaceChildren();
    let count = 0;
    for (const installation of installations) {
      if (!installation.enabled) continue;
      for (const widget of installation.version.widgets) {
        count += 1;
        const params = new URLSearchParams({ siteId: siteId ?? '' });
        const frame = document.createElement('iframe');
        // No allow-same-origin: the widget's script runs in an opaque origin, away from the key.
        frame.setAttribute('sandbox', 'allow-scripts');
        frame.setAttribute('referrerpolicy', 'no-referrer');
        // Loaded at once (not lazily): a preview below the fold must not stay blank until scrolled to.
        frame.setAttribute('loading', 'eager');
        frame.title = `${installation.addon.name} / ${widget.name}`;
        frame.dataset.widget = `${installation.addon.name}/${widget.name}`;
        frame.src = `/api/widgets/${encodeURIComponent(installation.addon.name)}/${encodeURIComponent(widget.name)}?${params}`;
        ui.widgets.append(
          el(
            'figure',
            { className: 'widget' },
            frame,
            el(
              'figcaption',
              {},
              el('strong', { text: widget.displayName || widget.name }),
              ` — ${installation.addon.name}`,
            ),
          ),
        );
      }
    }
    ui.widgetsEmpty.textContent = count === 0 ? 'No widgets among the enabled installations.' : '';
  };

  const renderInstallations = (installations) => {
    ui.addonsBody.replaceChildren(
      ...installations.map((installation) =>
        el(
          'tr',
          { attrs: { 'data-addon': installation.addon.name } },
          el(
            'td',
            {},
            el('strong', { text: installation.addon.name }),
            el('div', { className: 'muted', text: installation.addon.displayName }),
          ),
          el('td', { className: 'version', text: installation.version.version }),
          el('td', { attrs: { 'data-cell': 'latest' } }),
          el('td', { attrs: { 'data-cell': 'state' } }),
          el('td', { text: time(installation.updatedAt) }),
        ),
      ),
    );
    ui.addonsEmpty.textContent = installations.length === 0 ? 'No addons installed on this site.' : '';
    renderSafety(installations);
    renderWidgets(installations);
  };

  /**
   * The Latest and State cells: a newer version and the new permissions moving to it must accept,
   * and whether the site's version is quarantined (its calls refused until a probe succeeds).
   * Updated in place, so the widget previews are not reloaded.
   */
  const renderSafety = (installations) => {
    for (const installation of installations) {
      const row = ui.addonsBody.querySelector(`tr[data-addon="${CSS.escape(installation.addon.name)}"]`);
      if (!row) continue;
      const latest = row.querySelector('[data-cell="latest"]');
      const state = row.querySelector('[data-cell="state"]');
      const current = installation.addon.version === installation.version.version;
      const pending = installation.pendingPermissions ?? [];
      latest.className = current ? 'muted' : 'attention';
      latest.replaceChildren(current ? 'latest' : `${installation.addon.version} available`);
      if (pending.length > 0) {
        latest.append(
          el('div', {
            className: 'attention pending-permissions',
            text: `asks for new permissions: ${pending.join(', ')}`,
            title: 'Upgrading must accept these (acceptPermissions, or themepress addon upgrade).',
          }),
        );
      }
      const quarantine = installation.quarantine;
      row.toggleAttribute('data-quarantined', Boolean(quarantine));
      if (quarantine) {
        state.className = 'quarantined';
        state.textContent =
          quarantine.state === 'OPEN'
            ? `quarantined (${quarantine.lastReason ?? 'limits'}) until ${time(quarantine.openUntil)}`
            : `quarantined (${quarantine.lastReason ?? 'limits'}): probing`;
        state.title = `Calls of this version on this site are refused with ADDON_QUARANTINED; trip ${quarantine.trips}.`;
      } else {
        state.className = installation.enabled ? 'ok' : 'muted';
        state.textContent = installation.enabled ? 'enabled' : 'disabled';
        state.title = '';
      }
    }
  };
  const refreshSafety = () => {
    if (viewer.role === 'developer' || !siteId) return Promise.resolve();
    return call(QUERIES.safety, { siteId: viewer.role === 'admin' ? siteId : null })
      .then((data) => data && renderSafety(data.installations))
      .catch(report('Installed addons'));
  };
  timers.push(setInterval(refreshSafety, STATS_EVERY_MS));

  const loadInstallations = () => {
    if (!siteId) {
      ui.addonsBody.replaceChildren();
      ui.addonsEmpty.textContent = 'Choose a site.';
      ui.widgets.replaceChildren();
      return Promise.resolve();
    }
    return call(QUERIES.installations, { siteId: viewer.role === 'admin' ? siteId : null })
      .then((data) => data && renderInstallations(data.installations))
      .catch(report('Installed addons'));
  };

  const loadCatalogue = () =>
    call(QUERIES.catalogue)
      .then((data) => {
        if (!data) return;
        const nodes = data.addons.edges.map((edge) => edge.node);
        ui.addonsBody.replaceChildren(
          ...nodes.map((addon) =>
            el(
              'tr',
              { attrs: { 'data-addon': addon.name } },
              el(
                'td',
                {},
                el('strong', { text: addon.name }),
                el('div', { className: 'muted', text: addon.displayName }),
              ),
              el('td', { className: 'version', text: addon.version }),
              el('td', { className: 'muted', text: 'latest' }),
              el('td', { className: 'muted', text: 'published' }),
              el('td', { text: time(addon.updatedAt) }),
            ),
          ),
        );
        ui.addonsEmpty.textContent = `${data.addons.totalCount} addons in the catalogue. Developer keys manage no installations, so there are no widget previews.`;
      })
      .catch(report('Catalogue'));

  ui.sitePicker.hidden = viewer.role !== 'admin';
  if (viewer.role === 'developer') {
    ui.addonsTitle.textContent = 'Addons';
    void loadCatalogue();
  } else if (viewer.role === 'admin') {
    ui.addonsTitle.textContent = 'Installed addons';
    void call(QUERIES.sites)
      .then((data) => {
        if (!data) return;
        const remembered = sessionStorage.getItem(SITE_STORAGE);
        ui.siteSelect.replaceChildren(
          el('option', { text: '— choose a site —', attrs: { value: '' } }),
          ...data.sites.map((site) =>
            el('option', {
              text: site.domain ? `${site.name} (${site.domain})` : site.name,
              attrs: { value: site.id },
            }),
          ),
        );
        siteId = data.sites.some((site) => site.id === remembered) ? remembered : (data.sites[0]?.id ?? null);
        ui.siteSelect.value = siteId ?? '';
        return loadInstallations();
      })
      .catch(report('Sites'));
  } else {
    ui.addonsTitle.textContent = 'Installed addons';
    void loadInstallations();
  }
  const onSiteChange = () => {
    siteId = ui.siteSelect.value || null;
    if (siteId) sessionStorage.setItem(SITE_STORAGE, siteId);
    void loadInstallations();
  };
  ui.siteSelect.addEventListener('change', onSiteChange);

  // ---- deliveries ------------------------------------------------------------------------------
  const deliveryRow = (delivery) => {
    const action = el('td', { className: 'action' });
    if (delivery.status === 'DEAD' && canRetry) {
      const button = el('button', { text: 'Retry', className: 'retry', attrs: { type: 'button' } });
      button.addEventListener('click', () => {
        button.disabled = true;
        button.textContent = 'Retrying…';
        call(QUERIES.retry, { id: delivery.id })
          .then((data) => {
            if (!data) return;
            upsertDelivery(data.retryDelivery, true);
            showNotice(`Delivery of ${delivery.eventName} to ${delivery.addonName} is due again.`);
          })
          .catch((error) => {
            button.disabled = false;
            button.textContent = 'Retry';
            report('Retry')(error);
          });
      });
      action.append(button);
    }
    return el(
      'tr',
      { attrs: { 'data-delivery': delivery.id, 'data-status': delivery.status } },
      el('td', { text: time(delivery.createdAt) }),
      el('td', { text: delivery.eventName }),
      el('td', { text: delivery.addonName }),
      el('td', { className: 'muted', text: delivery.handler }),
      el('td', { className: 'num', text: `${delivery.attempts}/${delivery.maxAttempts}` }),
      el(
        'td',
        {},
        el('span', { className: `status status-${delivery.status.toLowerCase()}`, text: delivery.status }),
      ),
      // The API keeps the last error after a success; show it as history, not as a problem.
      delivery.status === 'SUCCEEDED'
        ? el('td', { className: 'muted', text: delivery.lastError ? `earlier: ${delivery.lastError}` : '' })
        : el('td', { className: 'error-text', text: delivery.lastError ?? '' }),
      action,
    );
  };

  /** Replaces a shown delivery, or adds a new one that matches the filter (live updates). */
  function upsertDelivery(delivery, force = false) {
    const known = deliveries.get(delivery.id);
    // Out-of-order messages: never let an older state overwrite a newer one.
    if (known && Date.parse(known.updatedAt) > Date.parse(delivery.updatedAt)) return;
    const filter = ui.deliveryStatus.value;
    if (!known && !force && filter && delivery.status !== filter) return;
    deliveries.set(delivery.id, delivery);
    const row = deliveryRow(delivery);
    const existing = ui.deliveriesBody.querySelector(`tr[data-delivery="${CSS.escape(delivery.id)}"]`);
    if (existing) existing.replaceWith(row);
    else ui.deliveriesBody.prepend(row);
    while (ui.deliveriesBody.rows.length > MAX_ITEMS) {
      const last = ui.deliveriesBody.rows[ui.deliveriesBody.rows.length - 1];
      deliveries.delete(last.dataset.delivery);
      last.remove();
    }
  }

  const loadDeliveries = () =>
    call(QUERIES.deliveries, { status: ui.deliveryStatus.value || null })
      .then((data) => {
        if (!data) return;
        deliveries.clear();
        ui.deliveriesBody.replaceChildren();
        for (const edge of [...data.deliveries.edges].reverse()) upsertDelivery(edge.node, true);
      })
      .catch(report('Deliveries'));
  void loadDeliveries();
  const onFilterChange = () => void loadDeliveries();
  ui.deliveryStatus.addEventListener('change', onFilterChange);

  // ---- execution log ---------------------------------------------------------------------------
  const executionRow = (execution) =>
    el(
      'tr',
      { attrs: { 'data-execution': execution.id, 'data-status': execution.status } },
      el('td', { text: time(execution.createdAt) }),
      el('td', { text: execution.addonName }),
      el('td', { className: 'muted', text: execution.kind }),
      el('td', { text: execution.entry }),
      el(
        'td',
        {},
        el('span', {
          className: execution.status === 'SUCCESS' ? 'status status-succeeded' : 'status status-dead',
          text: execution.status,
        }),
      ),
      el('td', { className: 'num', text: ms(execution.durationMs) }),
      el('td', { className: 'error-text', text: execution.errorMessage ?? '' }),
    );
  const addExecution = (execution, atTop = true) => {
    if (ui.executionsBody.querySelector(`tr[data-execution="${CSS.escape(execution.id)}"]`)) return;
    const row = executionRow(execution);
    if (atTop) ui.executionsBody.prepend(row);
    else ui.executionsBody.append(row);
    while (ui.executionsBody.rows.length > MAX_ITEMS)
      ui.executionsBody.rows[ui.executionsBody.rows.length - 1].remove();
  };
  /** The newest stored runs, replacing the list (after a gap in the live feed too). */
  const loadExecutions = () => {
    if (viewer.role === 'developer') return;
    void call(QUERIES.executions)
      .then((data) => {
        if (!data) return;
        ui.executionsBody.replaceChildren();
        data.executions.edges.forEach((edge) => addExecution(edge.node, false));
      })
      .catch(report('Execution log'));
  };
  ui.executionsNote.textContent = viewer.role === 'developer' ? 'Runs of your addons as they finish.' : '';
  loadExecutions();

  // ---- live feeds ------------------------------------------------------------------------------
  const addEvent = (event) => {
    // History, catch-up and the live feed overlap: each event is shown once.
    if (ui.events.querySelector(`[data-event="${CSS.escape(event.id)}"]`)) return;
    const item = el(
      'li',
      {
        className: 'event',
        attrs: { 'data-event': event.id, 'data-at': String(Date.parse(event.createdAt)) },
      },
      el('span', { className: 'when', text: time(event.createdAt) }),
      el('strong', { className: 'name', text: event.name }),
      el('span', { className: 'source', text: event.source }),
      el('code', { className: 'data', text: preview(event.data) }),
    );
    // Newest first, whatever order history and live events arrive in.
    const at = Date.parse(event.createdAt);
    const later = [...ui.events.querySelectorAll('li.event')].find((li) => Number(li.dataset.at) <= at);
    if (later) ui.events.insertBefore(item, later);
    else ui.events.append(item);
    while (ui.events.children.length > MAX_ITEMS) ui.events.lastElementChild?.remove();
  };
  const addMarker = (text) => {
    ui.events.prepend(el('li', { className: 'marker', text }));
  };

  // Where the stored events were read up to, from history or from the live feed (which delivers
  // every event in stream order while it holds): after a reconnect or an interruption,
  // Query.events(after:) fills the gap from there.
  let eventsCursor = null;
  const loadRecentEvents = async () => {
    const data = await call(QUERIES.recentEvents, { last: MAX_ITEMS });
    if (!data) return;
    data.events.edges.forEach((edge) => addEvent(edge.node));
    eventsCursor ??= data.events.pageInfo.endCursor;
  };
  const catchUpEvents = async () => {
    if (eventsCursor === null) return loadRecentEvents().then(() => 0);
    let missed = 0;
    for (let page = 0; page < 5; page += 1) {
      const data = await call(QUERIES.eventsAfter, { after: eventsCursor });
      if (!data) break;
      for (const edge of data.events.edges) {
        if (!ui.events.querySelector(`[data-event="${CSS.escape(edge.node.id)}"]`)) missed += 1;
        addEvent(edge.node);
      }
      eventsCursor = data.events.pageInfo.endCursor ?? eventsCursor;
      if (!data.events.pageInfo.hasNextPage) break;
    }
    return missed;
  };
  void loadRecentEvents().catch(report('Event history'));

  let lostAt = null;
  const live = createLiveClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
    key,
    onStatus: (status, detail) => {
      if (!active && status !== 'closed') return;
      ui.live.dataset.state = status;
      ui.live.textContent = {
        connecting: 'connecting…',
        live: 'live',
        reconnecting: 'reconnecting…',
        forbidden: 'refused',
        closed: 'closed',
      }[status];
      if (status === 'reconnecting' && lostAt === null) lostAt = new Date();
      if (status === 'live' && detail.reconnected) {
        // Live delivery is at most once: the stored events fill the hole.
        const since = lostAt?.toLocaleTimeString() ?? '?';
        lostAt = null;
        void catchUpEvents()
          .then((missed) => addMarker(`Reconnected: ${missed} event(s) missed since ${since} caught up.`))
          .catch(report('Event catch-up'));
        void loadDeliveries();
      }
      if (status === 'forbidden') {
        showNotice(
          `The live connection refused this API key (WebSocket close ${detail.code}). Live updates are off; forget the key and enter a valid one.`,
          'error',
        );
      }
    },
  });
  const onLiveError = (what) => (errors) => {
    const list = Array.isArray(errors) ? errors : [errors];
    showNotice(`${what}: ${list.map((e) => e?.message ?? String(e)).join(' ')}`, 'error');
  };
  const GAP_REASONS = {
    'redis-lost': 'the server lost its connection to Redis',
    'redis-unavailable': 'the server has no connection to Redis',
    'publish-failed': 'a server could not publish an update',
    'fell-behind': 'this page fell behind',
  };
  /**
   * A feed the server ended because it may have missed updates (LIVE_STREAM_INTERRUPTED): the gap
   * is shown when it opens, and when the subscription holds again what it held is read from the
   * stored records (`catchUp`) and the gap is closed.
   */
  const liveSink = (what, handle, catchUp) => ({
    next: (result) => {
      if (!active) return;
      if (result.errors?.length) onLiveError(what)(result.errors);
      if (result.data) handle(result.data);
    },
    error: onLiveError(what),
    interrupted: (error) => {
      if (!active) return;
      const why = GAP_REASONS[error.extensions?.reason] ?? error.message;
      addMarker(
        `${what}: live updates interrupted at ${new Date().toLocaleTimeString()} (${why}); resubscribing…`,
      );
    },
    resumed: () => {
      if (!active) return;
      void Promise.resolve(catchUp())
        .then((detail) => addMarker(`${what}: live again at ${new Date().toLocaleTimeString()}; ${detail}.`))
        .catch(report(`${what} catch-up`));
    },
  });
  live.subscribe(
    SUBSCRIPTIONS.events,
    {},
    liveSink(
      'Event stream',
      (data) => {
        addEvent(data.events);
        eventsCursor = data.events.cursor;
      },
      () => catchUpEvents().then((missed) => `${missed} event(s) missed meanwhile caught up`),
    ),
  );
  live.subscribe(
    SUBSCRIPTIONS.executions,
    {},
    liveSink(
      'Execution log',
      (data) => addExecution(data.executions),
      () => {
        loadExecutions();
        return 'the log reloaded';
      },
    ),
  );
  live.subscribe(
    SUBSCRIPTIONS.deliveries,
    {},
    liveSink(
      'Deliveries',
      (data) => upsertDelivery(data.deliveries),
      () => loadDeliveries().then(() => 'the list reloaded'),
    ),
  );

  return {
    stop() {
      active = false;
      charts.stop();
      for (const timer of timers) clearInterval(timer);
      ui.siteSelect.removeEventListener('change', onSiteChange);
      ui.deliveryStatus.removeEventListener('change', onFilterChange);
      live.close();
      ui.widgets.replaceChildren();
    },
  };
}

// A key kept from earlier in this tab's session signs in again on reload.
const remembered = sessionStorage.getItem(KEY_STORAGE);
if (remembered) void open(remembered);
else showLogin();
