// @ts-check
/// <reference path="../sdk.d.ts" />
/*
 * email-marketing: subscribers, campaigns, templates and transactional email. Nothing is sent over
 * SMTP: every email is recorded in an outbox in this addon's storage on the site, which a delivery
 * service (or a test) reads with list-outbox.
 *
 *   subscriber:<email>              { email, name, tags, status: subscribed | unsubscribed, ... }
 *   outbox:<ms, 13 digits>:<id>     an email: { id, to, from, subject, text, kind, reference, status, createdAt }
 *   template:<name>                 a saved template { name, subject, body, updatedAt }
 *   campaign:<id>                   a campaign and its counts
 *   event:<idempotencyKey>          the email id sent for a payment.completed (deliveries are at least once)
 */

/**
 * @typedef {{ fromName?: string, fromAddress?: string, sendPaymentConfirmations?: boolean,
 *   sendWelcomeEmail?: boolean, maxCampaignRecipients?: number, paymentSources?: string[] }} EmailConfig
 * @typedef {{ email: string, name: string | null, tags: string[], status: 'subscribed' | 'unsubscribed',
 *   createdAt: string, updatedAt: string }} Subscriber
 * @typedef {'transactional' | 'payment-confirmation' | 'welcome' | 'campaign'} EmailKind
 * @typedef {{ id: string, to: string, from: string, subject: string, text: string, kind: EmailKind,
 *   template: string | null, reference: string | null, status: 'sent', createdAt: string }} Email
 * @typedef {{ name: string, subject: string, body: string, updatedAt: string | null }} Template
 * @typedef {ThemePress.Context<EmailConfig>} Ctx
 */

const ADDON = 'email-marketing';
const SCAN_LIMIT = 600;
const ENDPOINT = '/api/addons/email-marketing/execute';

/** Built-in templates; save-template overrides them per site. */
const DEFAULT_TEMPLATES = /** @type {Record<string, { subject: string, body: string }>} */ ({
  'payment-confirmation': {
    subject: 'Payment received{{orderSuffix}}',
    body: [
      'Hi {{name}},',
      '',
      'We received your payment of {{amount}} ({{brand}} ending in {{last4}}).',
      '{{items}}',
      '',
      'Transaction: {{transactionId}}',
      '',
      'Thank you,',
      '{{fromName}}',
    ].join('\n'),
  },
  welcome: {
    subject: 'Welcome to {{fromName}}',
    body: 'Hi {{name}},\n\nThanks for subscribing to our newsletter.\n\n{{fromName}}',
  },
});

const PLACEHOLDERS = /** @type {Record<string, string[]>} */ ({
  'payment-confirmation': [
    'name',
    'amount',
    'brand',
    'last4',
    'items',
    'orderId',
    'orderSuffix',
    'transactionId',
    'fromName',
  ],
  welcome: ['name', 'email', 'fromName'],
});

/** Replaces {{key}} (whitespace allowed inside the braces); unknown keys become empty. Plain text. */
function fill(/** @type {string} */ text, /** @type {Record<string, unknown>} */ variables) {
  return text.replace(/\{\{\s*([A-Za-z][A-Za-z0-9_]*)\s*\}\}/g, (_, key) => {
    const value = Object.prototype.hasOwnProperty.call(variables, key) ? variables[key] : '';
    return value === null || value === undefined ? '' : String(value);
  });
}

/** @returns {Promise<Template>} */
async function loadTemplate(/** @type {Ctx} */ ctx, /** @type {string} */ name) {
  const saved = /** @type {Template | null} */ (await ctx.storage.get(`template:${name}`));
  if (saved) return saved;
  const builtIn = DEFAULT_TEMPLATES[name];
  if (!builtIn) throw new Error(`Unknown template "${name}".`);
  return { name, ...builtIn, updatedAt: null };
}

function newId(/** @type {string} */ prefix) {
  return `${prefix}_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10).padEnd(8, '0')}`;
}

/** Outbox keys sort by time: `outbox:0001718000000000:em_...`. */
function outboxKey(/** @type {number} */ ms, /** @type {string} */ id) {
  return `outbox:${String(ms).padStart(16, '0')}:${id}`;
}

function sender(/** @type {Ctx} */ ctx) {
  const name = ctx.config.fromName ?? 'My Shop';
  const address = ctx.config.fromAddress ?? 'shop@example.com';
  return { name, address, header: `${name.replace(/[<>"\r\n]/g, '')} <${address}>` };
}

/**
 * Records an email in the outbox. Deterministic keys (`ms` and `id` from the caller) make a retried
 * write land on the same entry instead of adding a second one.
 * @param {Ctx} ctx
 * @param {{ to: string, subject: string, text: string, kind: EmailKind, template?: string | null,
 *   reference?: string | null, ms?: number, id?: string }} message
 * @returns {Promise<Email>}
 */
async function record(ctx, message) {
  const ms = message.ms ?? Date.now();
  /** @type {Email} */
  const email = {
    id: message.id ?? newId('em'),
    to: message.to,
    from: sender(ctx).header,
    subject: message.subject.replace(/[\r\n]+/g, ' ').slice(0, 200),
    text: message.text,
    kind: message.kind,
    template: message.template ?? null,
    reference: message.reference ?? null,
    status: 'sent',
    createdAt: new Date(ms).toISOString(),
  };
  await ctx.storage.set(outboxKey(ms, email.id), email);
  return email;
}

/** @param {Ctx} ctx @param {Email} email */
async function announceSent(ctx, email) {
  if (email.kind === 'campaign') return;
  await ctx.events.emit('email.sent', {
    emailId: email.id,
    to: email.to,
    subject: email.subject,
    kind: email.kind,
    ...(email.reference ? { reference: email.reference } : {}),
  });
}

const ZERO_DECIMAL = ['BIF', 'CLP', 'JPY', 'KRW', 'PYG', 'UGX', 'VND', 'XAF', 'XOF'];
const SYMBOLS = /** @type {Record<string, string>} */ ({ USD: '$', EUR: '€', GBP: '£', JPY: '¥', KRW: '₩' });

function formatMoney(/** @type {number} */ amount, /** @type {string} */ currency) {
  const zero = ZERO_DECIMAL.includes(currency);
  const [whole, cents] = (zero ? String(amount) : (amount / 100).toFixed(2)).split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (cents ? `.${cents}` : '');
  return SYMBOLS[currency] ? `${SYMBOLS[currency]}${grouped}` : `${grouped} ${currency}`;
}

/** Every subscriber record (up to `max`), in address order. */
async function listSubscribers(/** @type {Ctx} */ ctx, /** @type {number} */ max) {
  /** @type {string[]} */
  const keys = [];
  /** @type {string | undefined} */
  let cursor;
  do {
    const page = await ctx.storage.list({
      prefix: 'subscriber:',
      limit: Math.min(1000, max - keys.length),
      cursor,
    });
    keys.push(...page.keys);
    cursor = page.cursor ?? undefined;
  } while (cursor && keys.length < max);
  /** @type {Subscriber[]} */
  const out = [];
  for (let i = 0; i < keys.length; i += 8) {
    const chunk = await Promise.all(keys.slice(i, i + 8).map((key) => ctx.storage.get(key)));
    for (const s of chunk) if (s) out.push(/** @type {Subscriber} */ (/** @type {unknown} */ (s)));
  }
  return { subscribers: out, more: cursor !== undefined };
}

/**
 * Browser script shared by the forms of this addon (sent as the widget's `javascript`, run on the
 * page or in the widget's sandboxed iframe). It never talks to the network itself: on submit it
 * collects the `data-tp-field` inputs into `{ action, data }` and posts a `themepress:execute`
 * message to the host page, which relays it (with the site key, held by the site's backend) to the
 * form's `data-tp-endpoint`, and answers with a `themepress:result` message.
 * @param {string} addonName
 */
function formScript(addonName) {
  'use strict';
  /** @type {Record<string, HTMLFormElement>} */
  const pending = {};
  const FORBIDDEN = ['__proto__', 'prototype', 'constructor'];

  /** @param {Record<string, any>} target @param {string} path @param {unknown} value */
  function setPath(target, path, value) {
    const parts = path.split('.');
    if (parts.some((part) => FORBIDDEN.includes(part))) return;
    let node = target;
    for (const part of parts.slice(0, -1)) {
      if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
      node = node[part];
    }
    node[parts[parts.length - 1]] = value;
  }

  /** @param {HTMLInputElement} field */
  function readField(field) {
    const type = field.getAttribute('data-tp-type') || 'string';
    if (type === 'boolean') return field.checked;
    const text = String(field.value).trim();
    if (text === '') return undefined;
    if (type === 'number') return Number(text);
    if (type === 'json') return JSON.parse(text);
    if (type === 'list')
      return text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    return text;
  }

  /** @param {HTMLFormElement} form @param {string} text @param {string} state */
  function show(form, text, state) {
    const out = form.querySelector('[data-tp-status]');
    if (out) {
      out.textContent = text;
      out.setAttribute('data-state', state);
    }
  }

  /** @param {HTMLFormElement} form */
  function bind(form) {
    form.setAttribute('data-tp-bound', '');
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      /** @type {Record<string, unknown>} */
      const data = {};
      try {
        form.querySelectorAll('[data-tp-field]').forEach((element) => {
          const field = /** @type {HTMLInputElement} */ (element);
          const value = readField(field);
          if (value !== undefined) setPath(data, field.getAttribute('data-tp-field') || '', value);
        });
      } catch {
        show(form, 'Some fields are invalid.', 'error');
        return;
      }
      const requestId = `${addonName}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
      pending[requestId] = form;
      form.setAttribute('aria-busy', 'true');
      show(form, form.getAttribute('data-tp-pending') || 'Sending…', 'pending');
      form.querySelectorAll('[data-tp-sensitive]').forEach((element) => {
        /** @type {HTMLInputElement} */ (element).value = '';
      });
      const message = {
        type: 'themepress:execute',
        addon: addonName,
        endpoint: form.getAttribute('data-tp-endpoint'),
        action: form.getAttribute('data-tp-action'),
        data,
        requestId,
      };
      window.parent.postMessage(message, form.getAttribute('data-tp-target-origin') || '*');
    });
  }

  window.addEventListener('message', (event) => {
    const message = event.data;
    if (event.source !== window.parent || !message || message.type !== 'themepress:result') return;
    const form = pending[message.requestId];
    if (!form) return;
    delete pending[message.requestId];
    form.removeAttribute('aria-busy');
    if (message.error) {
      show(form, String(message.error.message || 'Something went wrong.'), 'error');
      return;
    }
    const result = message.result || {};
    const failed = result.ok === false || result.status === 'failed';
    show(
      form,
      result.message || form.getAttribute('data-tp-success') || 'Done.',
      failed ? 'error' : 'success',
    );
    form.dispatchEvent(new CustomEvent('themepress:result', { detail: result, bubbles: true }));
  });

  document
    .querySelectorAll(`form[data-tp-addon="${addonName}"]:not([data-tp-bound])`)
    .forEach((form) => bind(/** @type {HTMLFormElement} */ (form)));
}

/** The widgets' script: the function above, called with this addon's (constant) name. */
const FORM_SCRIPT = `(${formScript.toString()})(${JSON.stringify(ADDON)});`;

const CSS = `
.tp-mail { font: 15px/1.4 system-ui, sans-serif; max-width: 32rem; border: 1px solid #d0d5dd; border-radius: 8px; padding: 1rem; }
.tp-mail h2 { font-size: 1.15rem; margin: 0 0 .5rem; }
.tp-mail label { display: block; margin: .5rem 0; }
.tp-mail input, .tp-mail textarea { display: block; width: 100%; box-sizing: border-box; padding: .45rem; border: 1px solid #98a2b3; border-radius: 4px; font: inherit; }
.tp-mail textarea { min-height: 12rem; font-family: ui-monospace, monospace; }
.tp-mail button { margin-top: .5rem; padding: .5rem 1rem; border: 0; border-radius: 4px; background: #3538cd; color: #fff; font-weight: 600; }
.tp-mail .tp-muted { color: #667085; font-size: .85rem; }
.tp-mail code { background: #f2f4f7; padding: 0 .2rem; border-radius: 3px; }
.tp-mail [data-state="error"] { color: #b42318; }
.tp-mail [data-state="success"] { color: #067647; }
`;

/** @type {ThemePress.AddonModule<EmailConfig>} */
module.exports = {
  functions: {
    async 'send-email'(data, ctx) {
      const input = /** @type {{ to: string, subject?: string, text?: string, template?: string,
        variables: Record<string, string | number | boolean> }} */ (/** @type {unknown} */ (data));
      let subject = input.subject;
      let text = input.text;
      if (input.template) {
        const template = await loadTemplate(ctx, input.template);
        const variables = { fromName: sender(ctx).name, email: input.to, name: 'there', ...input.variables };
        subject = fill(template.subject, variables);
        text = fill(template.body, variables);
      }
      const email = await record(ctx, {
        to: input.to,
        subject: subject ?? '',
        text: text ?? '',
        kind: 'transactional',
        template: input.template ?? null,
      });
      await announceSent(ctx, email);
      return { emailId: email.id, status: email.status, message: 'Email sent.' };
    },

    async 'manage-subscribers'(data, ctx) {
      const input = /** @type {{ action: 'add' | 'remove' | 'get' | 'list', email?: string, name?: string,
        tags?: string[], limit: number, cursor?: string }} */ (/** @type {unknown} */ (data));
      if (input.action === 'list') {
        const page = await ctx.storage.list({
          prefix: 'subscriber:',
          limit: input.limit,
          cursor: input.cursor,
        });
        const subscribers = [];
        for (let i = 0; i < page.keys.length; i += 8) {
          subscribers.push(
            ...(await Promise.all(page.keys.slice(i, i + 8).map((key) => ctx.storage.get(key)))),
          );
        }
        return { subscribers: subscribers.filter(Boolean), cursor: page.cursor };
      }
      const email = /** @type {string} */ (input.email).trim().toLowerCase();
      const key = `subscriber:${email}`;
      const existing = /** @type {Subscriber | null} */ (await ctx.storage.get(key));
      if (input.action === 'get') return { subscriber: existing };
      const now = new Date().toISOString();
      if (input.action === 'remove') {
        if (!existing || existing.status === 'unsubscribed')
          return { removed: false, message: 'Not subscribed.' };
        await ctx.storage.set(key, { ...existing, status: 'unsubscribed', updatedAt: now });
        return { removed: true, message: 'You have been unsubscribed.' };
      }
      // add
      const tags = [...new Set([...(existing ? existing.tags : []), ...(input.tags ?? [])])];
      /** @type {Subscriber} */
      const subscriber = {
        email,
        name: input.name ?? (existing ? existing.name : null),
        tags,
        status: 'subscribed',
        createdAt: existing ? existing.createdAt : now,
        updatedAt: now,
      };
      await ctx.storage.set(key, subscriber);
      if (existing && existing.status === 'subscribed') {
        return { added: false, subscriber, message: 'You are already subscribed.' };
      }
      await ctx.events.emit('subscriber.added', {
        email,
        ...(subscriber.name ? { name: subscriber.name } : {}),
        tags,
      });
      if (ctx.config.sendWelcomeEmail !== false) {
        const template = await loadTemplate(ctx, 'welcome');
        const variables = { fromName: sender(ctx).name, email, name: subscriber.name ?? 'there' };
        const welcome = await record(ctx, {
          to: email,
          subject: fill(template.subject, variables),
          text: fill(template.body, variables),
          kind: 'welcome',
          template: 'welcome',
        });
        await announceSent(ctx, welcome);
      }
      return { added: true, subscriber, message: 'Thanks for subscribing!' };
    },

    async 'create-campaign'(data, ctx) {
      const input =
        /** @type {{ name: string, subject: string, body: string, tag?: string, dryRun: boolean }} */ (
          /** @type {unknown} */ (data)
        );
      const max = ctx.config.maxCampaignRecipients ?? 200;
      // An execution may make at most 1000 SDK calls: read at most 600 subscribers, write at most 300.
      const { subscribers, more } = await listSubscribers(ctx, SCAN_LIMIT);
      const audience = subscribers.filter(
        (s) => s.status === 'subscribed' && (!input.tag || s.tags.includes(input.tag)),
      );
      const recipients = audience.slice(0, max);
      const truncated = audience.length > max || more;
      if (input.dryRun) return { dryRun: true, recipients: recipients.length, truncated };

      const campaignId = newId('cmp');
      const started = Date.now();
      let sent = 0;
      for (let i = 0; i < recipients.length; i += 8) {
        await Promise.all(
          recipients.slice(i, i + 8).map((s, j) => {
            const variables = { name: s.name ?? 'there', email: s.email, fromName: sender(ctx).name };
            return record(ctx, {
              to: s.email,
              subject: fill(input.subject, variables),
              text: fill(input.body, variables),
              kind: 'campaign',
              reference: campaignId,
              ms: started,
              id: `${campaignId}-${String(i + j).padStart(4, '0')}`,
            }).then(() => {
              sent += 1;
            });
          }),
        );
      }
      const campaign = {
        id: campaignId,
        name: input.name,
        subject: input.subject,
        tag: input.tag ?? null,
        recipients: recipients.length,
        sent,
        truncated,
        completedAt: new Date().toISOString(),
      };
      await ctx.storage.set(`campaign:${campaignId}`, campaign);
      await ctx.events.emit('campaign.completed', {
        campaignId,
        name: input.name,
        ...(input.tag ? { tag: input.tag } : {}),
        recipients: recipients.length,
        sent,
        truncated,
      });
      return {
        campaignId,
        recipients: recipients.length,
        sent,
        truncated,
        message: `Campaign sent to ${sent} subscriber(s).`,
      };
    },

    async 'list-outbox'(data, ctx) {
      const input = /** @type {{ limit: number, cursor?: string, kind?: EmailKind }} */ (
        /** @type {unknown} */ (data)
      );
      const page = await ctx.storage.list({ prefix: 'outbox:', limit: input.limit, cursor: input.cursor });
      /** @type {Email[]} */
      const emails = [];
      for (let i = 0; i < page.keys.length; i += 8) {
        const chunk = await Promise.all(page.keys.slice(i, i + 8).map((key) => ctx.storage.get(key)));
        for (const e of chunk) if (e) emails.push(/** @type {Email} */ (/** @type {unknown} */ (e)));
      }
      return {
        emails: input.kind ? emails.filter((e) => e.kind === input.kind) : emails,
        cursor: page.cursor,
      };
    },

    async 'save-template'(data, ctx) {
      const input = /** @type {{ name: string, subject: string, body: string }} */ (
        /** @type {unknown} */ (data)
      );
      /** @type {Template} */
      const template = {
        name: input.name,
        subject: input.subject,
        body: input.body,
        updatedAt: new Date().toISOString(),
      };
      await ctx.storage.set(`template:${input.name}`, template);
      await ctx.events.emit('template.updated', { name: input.name });
      return { template, message: 'Template saved.' };
    },
  },

  handlers: {
    /**
     * payment.completed -> a payment confirmation for the customer's email. Idempotent by the
     * event's idempotencyKey: the outbox entry, its email.sent event and the marker
     * `event:<idempotencyKey>` commit together (a call's effects are all or nothing), so a
     * delivery that finds the marker sends nothing, and one that failed left nothing behind.
     */
    async onPaymentCompleted(event, ctx) {
      const evt = /** @type {{ idempotencyKey: string, source: string, createdAt: string, data: {
        transactionId?: string, orderId?: string, amount?: number, currency?: string, brand?: string, last4?: string,
        items?: { sku: string, name?: string, quantity: number }[], customer?: { email?: string, name?: string } } }} */ (
        /** @type {unknown} */ (event)
      );
      const sources = ctx.config.paymentSources ?? ['payment-gateway'];
      if (!sources.includes(evt.source)) return { ignored: true, reason: 'untrusted-source' };
      if (ctx.config.sendPaymentConfirmations === false) return { skipped: true, reason: 'disabled' };
      const markerKey = `event:${evt.idempotencyKey}`;
      const done = await ctx.storage.get(markerKey);
      if (done) return { duplicate: true, emailId: done };

      const data = evt.data ?? {};
      const to = data.customer && typeof data.customer.email === 'string' ? data.customer.email : null;
      if (!to) {
        await ctx.storage.set(markerKey, 'no-recipient');
        return { skipped: true, reason: 'no-recipient' };
      }
      const template = await loadTemplate(ctx, 'payment-confirmation');
      const currency = typeof data.currency === 'string' ? data.currency : 'USD';
      const items = Array.isArray(data.items) ? data.items : [];
      const variables = {
        name: (data.customer && data.customer.name) || 'there',
        amount: typeof data.amount === 'number' ? formatMoney(data.amount, currency) : '',
        brand: data.brand ?? 'card',
        last4: data.last4 ?? '',
        orderId: data.orderId ?? '',
        orderSuffix: data.orderId ? ` for order ${data.orderId}` : '',
        transactionId: data.transactionId ?? '',
        items:
          items.length > 0
            ? `\nItems:\n${items.map((i) => `- ${i.quantity} × ${i.name ?? i.sku}`).join('\n')}`
            : '',
        fromName: sender(ctx).name,
      };
      const created = Date.parse(evt.createdAt);
      const email = await record(ctx, {
        to,
        subject: fill(template.subject, variables),
        text: fill(template.body, variables),
        kind: 'payment-confirmation',
        template: 'payment-confirmation',
        reference: data.transactionId ?? null,
        ms: Number.isFinite(created) ? created : Date.now(),
        id: `em_${evt.idempotencyKey}`,
      });
      await announceSent(ctx, email);
      await ctx.storage.set(markerKey, email.id);
      return { emailId: email.id };
    },
  },

  widgets: {
    'newsletter-signup'(config, _context, ctx) {
      const options =
        /** @type {{ title: string, description: string, buttonLabel: string, collectName: boolean,
        tags: string[] }} */ (/** @type {unknown} */ (config));
      const html = ctx.html;
      return {
        html: html`<section class="tp-mail">
  <h2>${options.title}</h2>
  ${options.description ? html`<p class="tp-muted">${options.description}</p>` : ''}
  <form data-tp-form="newsletter" data-tp-addon="${ADDON}" data-tp-action="manage-subscribers" data-tp-endpoint="${ENDPOINT}"
    data-tp-success="Thanks for subscribing!" novalidate>
    <input type="hidden" data-tp-field="action" value="add">
    ${options.tags.length > 0 ? html`<input type="hidden" data-tp-field="tags" data-tp-type="json" value="${JSON.stringify(options.tags)}">` : ''}
    ${options.collectName ? html`<label>Name <input data-tp-field="name" autocomplete="name" maxlength="120"></label>` : ''}
    <label>Email <input type="email" data-tp-field="email" autocomplete="email" maxlength="180" required></label>
    <button type="submit">${options.buttonLabel}</button>
    <p data-tp-status role="status" aria-live="polite"></p>
  </form>
</section>`,
        css: CSS,
        javascript: FORM_SCRIPT,
      };
    },

    async 'email-template-editor'(config, _context, ctx) {
      const options = /** @type {{ template: string, title: string }} */ (/** @type {unknown} */ (config));
      const template = await loadTemplate(ctx, options.template);
      const html = ctx.html;
      return {
        html: html`<section class="tp-mail" data-template="${template.name}">
  <h2>${options.title}</h2>
  <p class="tp-muted">${template.updatedAt ? `Last saved ${template.updatedAt.slice(0, 16).replace('T', ' ')} UTC` : 'Built-in default'}</p>
  <form data-tp-form="template" data-tp-addon="${ADDON}" data-tp-action="save-template" data-tp-endpoint="${ENDPOINT}"
    data-tp-success="Template saved." novalidate>
    <input type="hidden" data-tp-field="name" value="${template.name}">
    <label>Subject <input data-tp-field="subject" value="${template.subject}" maxlength="200" required></label>
    <label>Body <textarea data-tp-field="body" maxlength="20000" required>${template.body}</textarea></label>
    <p class="tp-muted">Placeholders: ${(PLACEHOLDERS[template.name] ?? []).map((p) => html`<code>{{${p}}}</code> `)}</p>
    <button type="submit">Save</button>
    <p data-tp-status role="status" aria-live="polite"></p>
  </form>
</section>`,
        css: CSS,
        javascript: FORM_SCRIPT,
      };
    },
  },
};
