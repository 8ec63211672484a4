// @ts-check
/// <reference path="../sdk.d.ts" />
/*
 * payment-gateway: card checkout with a simulated card processor.
 *
 * Nothing leaves the sandbox: the "processor" below decides each outcome from the card number
 * alone (Stripe's test cards), so the same input always gives the same result. Transactions live
 * in this addon's storage on the site:
 *
 *   txn:<transactionId>   the transaction (status, amounts, card brand and last 4, items, refunds)
 *   order:<orderId>       the transaction id of the order's successful payment (no double charges)
 *   idem:<key>            the transaction or refund id an idempotency key produced (safe retries)
 *
 * What one call writes and emits commits together or not at all: a payment is never stored
 * without its payment.completed event, nor the event without the payment.
 *
 * Amounts are integers in minor units (cents). Card numbers are never stored: only brand + last 4.
 */

/**
 * @typedef {{ merchantName?: string, currency?: string, acceptedBrands?: string[], maxAmount?: number,
 *   statementDescriptor?: string, hostOrigin?: string }} PaymentConfig
 * @typedef {{ sku: string, name?: string, quantity: number, unitAmount?: number }} LineItem
 * @typedef {{ email?: string, name?: string }} Customer
 * @typedef {{ id: string, amount: number, reason: string, createdAt: string }} Refund
 * @typedef {{ id: string, orderId: string | null, status: 'succeeded' | 'failed' | 'partially_refunded' | 'refunded',
 *   amount: number, amountRefunded: number, currency: string, description: string | null,
 *   card: { brand: string, last4: string, expMonth: number, expYear: number },
 *   customer: Customer, items: LineItem[], failure: { code: string, message: string, retryable: boolean } | null,
 *   refunds: Refund[], descriptor: string, createdAt: string, updatedAt: string }} Transaction
 * @typedef {ThemePress.Context<PaymentConfig>} Ctx
 */

const ADDON = 'payment-gateway';
const ENDPOINT = '/api/addons/payment-gateway/execute';

/** Brand of a card number by its prefix (IIN ranges). */
function brandOf(/** @type {string} */ number) {
  if (/^4/.test(number)) return 'visa';
  if (/^(5[1-5]|2(2[2-9][1-9]|[3-6]\d\d|7[01]\d|720))/.test(number)) return 'mastercard';
  if (/^3[47]/.test(number)) return 'amex';
  if (/^(6011|65|64[4-9])/.test(number)) return 'discover';
  return 'unknown';
}

/** The Luhn checksum every real card number satisfies. */
function luhnValid(/** @type {string} */ number) {
  let sum = 0;
  for (let i = 0; i < number.length; i += 1) {
    let digit = Number(number[number.length - 1 - i]);
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return number.length >= 12 && sum % 10 === 0;
}

/** Stripe-style test cards with a fixed outcome. Other valid numbers of an accepted brand succeed. */
const TEST_CARD_DECLINES =
  /** @type {Record<string, { code: string, message: string, retryable?: boolean }>} */ ({
    4000000000000002: { code: 'card_declined', message: 'Your card was declined.' },
    4000000000009995: { code: 'insufficient_funds', message: 'Your card has insufficient funds.' },
    4000000000009987: { code: 'lost_card', message: 'Your card was declined.' },
    4000000000000069: { code: 'expired_card', message: 'Your card has expired.' },
    4000000000000127: { code: 'incorrect_cvc', message: "Your card's security code is incorrect." },
    4000000000000119: {
      code: 'processing_error',
      message: 'An error occurred while processing your card. Try again.',
      retryable: true,
    },
  });

/**
 * The simulated processor: the outcome of charging `card` for `amount`.
 * @param {{ number: string, expMonth: number, expYear: number, cvc?: string }} card
 * @param {number} amount
 * @param {PaymentConfig} config
 * @returns {{ ok: true } | { ok: false, code: string, message: string, retryable: boolean }}
 */
function authorize(card, amount, config) {
  const number = card.number.replace(/[\s-]/g, '');
  const decline = (/** @type {string} */ code, /** @type {string} */ message, retryable = false) => ({
    ok: /** @type {const} */ (false),
    code,
    message,
    retryable,
  });
  if (!luhnValid(number)) return decline('incorrect_number', 'Your card number is incorrect.');
  const brand = brandOf(number);
  const accepted = config.acceptedBrands ?? ['visa', 'mastercard', 'amex', 'discover'];
  if (!accepted.includes(brand)) return decline('card_not_supported', 'This card brand is not accepted.');
  const now = new Date();
  const expired =
    card.expYear < now.getUTCFullYear() ||
    (card.expYear === now.getUTCFullYear() && card.expMonth < now.getUTCMonth() + 1);
  if (expired) return decline('expired_card', 'Your card has expired.');
  if (amount > (config.maxAmount ?? 1000000)) {
    return decline('amount_too_large', 'The amount exceeds the maximum this shop accepts.');
  }
  const fixed = TEST_CARD_DECLINES[number];
  if (fixed) return decline(fixed.code, fixed.message, fixed.retryable === true);
  return { ok: true };
}

/**
 * Event data as JSON: fields left undefined (an absent orderId) are dropped, as the declared event
 * schemas expect.
 * @param {Record<string, unknown>} data
 * @returns {ThemePress.Json}
 */
function eventData(data) {
  return JSON.parse(JSON.stringify(data));
}

function newId(/** @type {string} */ prefix) {
  return `${prefix}_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 12).padEnd(10, '0')}`;
}

const ZERO_DECIMAL = ['BIF', 'CLP', 'JPY', 'KRW', 'PYG', 'UGX', 'VND', 'XAF', 'XOF'];
const SYMBOLS = /** @type {Record<string, string>} */ ({ USD: '$', EUR: '€', GBP: '£', JPY: '¥', KRW: '₩' });

/** 123456 USD -> "$1,234.56"; 5000 KRW -> "₩5,000"; 999 CHF -> "9.99 CHF". */
function formatMoney(/** @type {number} */ amount, /** @type {string} */ currency) {
  const zero = ZERO_DECIMAL.includes(currency);
  const [whole, cents] = (zero ? String(amount) : (amount / 100).toFixed(2)).split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (cents ? `.${cents}` : '');
  return SYMBOLS[currency] ? `${SYMBOLS[currency]}${grouped}` : `${grouped} ${currency}`;
}

/** @param {Transaction} txn */
function statusLabel(txn) {
  return {
    succeeded: 'Paid',
    failed: 'Failed',
    partially_refunded: 'Partially refunded',
    refunded: 'Refunded',
  }[txn.status];
}

/** @param {Transaction} txn */
function summary(txn) {
  return {
    transactionId: txn.id,
    orderId: txn.orderId,
    status: txn.status,
    amount: txn.amount,
    amountRefunded: txn.amountRefunded,
    currency: txn.currency,
    card: { brand: txn.card.brand, last4: txn.card.last4 },
    failure: txn.failure,
    refunds: txn.refunds,
    createdAt: txn.createdAt,
  };
}

/** @returns {Promise<Transaction | null>} */
async function loadTransaction(/** @type {Ctx} */ ctx, /** @type {unknown} */ id) {
  if (typeof id !== 'string' || !/^txn_[a-z0-9]{6,40}$/.test(id)) return null;
  return /** @type {Transaction | null} */ (await ctx.storage.get(`txn:${id}`));
}

/**
 * Sanitises the cart a page passes in the render context: only well-formed items, integer amounts.
 * @param {unknown} value
 * @returns {{ orderId: string | null, currency: string | null, amount: number, items: LineItem[] } | null}
 */
function readCart(value) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const cart = /** @type {Record<string, unknown>} */ (value);
  /** @type {LineItem[]} */
  const items = [];
  if (Array.isArray(cart.items)) {
    for (const raw of cart.items.slice(0, 100)) {
      if (typeof raw !== 'object' || raw === null) continue;
      const item = /** @type {Record<string, unknown>} */ (raw);
      if (typeof item.sku !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(item.sku)) continue;
      const quantity = Number.isInteger(item.quantity) ? Number(item.quantity) : 1;
      if (quantity < 1 || quantity > 10000) continue;
      /** @type {LineItem} */
      const line = { sku: item.sku, quantity };
      if (typeof item.name === 'string') line.name = item.name.slice(0, 200);
      if (Number.isInteger(item.unitAmount) && Number(item.unitAmount) >= 0)
        line.unitAmount = Number(item.unitAmount);
      items.push(line);
    }
  }
  const computed = items.reduce((sum, item) => sum + (item.unitAmount ?? 0) * item.quantity, 0);
  const amount = Number.isInteger(cart.amount) && Number(cart.amount) > 0 ? Number(cart.amount) : computed;
  if (amount < 1) return null;
  return {
    orderId:
      typeof cart.orderId === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(cart.orderId) ? cart.orderId : null,
    currency: typeof cart.currency === 'string' && /^[A-Z]{3}$/.test(cart.currency) ? cart.currency : null,
    amount,
    items,
  };
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
.tp-pay { font: 15px/1.4 system-ui, sans-serif; max-width: 28rem; border: 1px solid #d0d5dd; border-radius: 8px; padding: 1rem; }
.tp-pay h2 { font-size: 1.15rem; margin: 0 0 .75rem; }
.tp-pay label { display: block; margin: .5rem 0; }
.tp-pay input { display: block; width: 100%; box-sizing: border-box; padding: .45rem; border: 1px solid #98a2b3; border-radius: 4px; }
.tp-pay .tp-row { display: flex; gap: .5rem; }
.tp-pay button { margin-top: .75rem; width: 100%; padding: .6rem; border: 0; border-radius: 4px; background: #3538cd; color: #fff; font-weight: 600; }
.tp-pay table { width: 100%; border-collapse: collapse; margin: .5rem 0; }
.tp-pay td, .tp-pay th { text-align: left; padding: .2rem 0; }
.tp-pay .tp-amount { text-align: right; }
.tp-pay [data-state="error"], .tp-pay .tp-failed { color: #b42318; }
.tp-pay [data-state="success"], .tp-pay .tp-succeeded { color: #067647; }
.tp-pay .tp-muted { color: #667085; font-size: .85rem; }
`;

/** @param {Ctx} ctx @param {LineItem[]} items @param {string} currency */
function itemRows(ctx, items, currency) {
  return items.map(
    (item) => ctx.html`<tr data-sku="${item.sku}">
      <td>${item.name ?? item.sku} × ${item.quantity}</td>
      <td class="tp-amount">${item.unitAmount === undefined ? '' : formatMoney(item.unitAmount * item.quantity, currency)}</td>
    </tr>`,
  );
}

/** @type {ThemePress.AddonModule<PaymentConfig>} */
module.exports = {
  functions: {
    async 'process-payment'(data, ctx) {
      const input = /** @type {{ orderId?: string, amount: number, currency?: string, description?: string,
        idempotencyKey?: string, card: { number: string, expMonth: number, expYear: number, cvc?: string },
        items?: LineItem[], customer?: Customer }} */ (/** @type {unknown} */ (data));
      if (input.idempotencyKey) {
        const earlier = await loadTransaction(ctx, await ctx.storage.get(`idem:${input.idempotencyKey}`));
        if (earlier) return { ...summary(earlier), duplicate: true, message: 'Already processed.' };
      }
      if (input.orderId) {
        const paid = await loadTransaction(ctx, await ctx.storage.get(`order:${input.orderId}`));
        if (paid) return { ...summary(paid), duplicate: true, message: 'This order is already paid.' };
      }

      const currency = input.currency ?? ctx.config.currency ?? 'USD';
      const number = input.card.number.replace(/[\s-]/g, '');
      const outcome = authorize(input.card, input.amount, ctx.config);
      const now = new Date().toISOString();
      /** @type {Transaction} */
      const txn = {
        id: newId('txn'),
        orderId: input.orderId ?? null,
        status: outcome.ok ? 'succeeded' : 'failed',
        amount: input.amount,
        amountRefunded: 0,
        currency,
        description: input.description ?? null,
        card: {
          brand: brandOf(number),
          last4: number.slice(-4),
          expMonth: input.card.expMonth,
          expYear: input.card.expYear,
        },
        customer: input.customer ?? {},
        items: input.items ?? [],
        failure: outcome.ok
          ? null
          : { code: outcome.code, message: outcome.message, retryable: outcome.retryable },
        refunds: [],
        descriptor: ctx.config.statementDescriptor ?? 'THEMEPRESS',
        createdAt: now,
        updatedAt: now,
      };
      await ctx.storage.set(`txn:${txn.id}`, txn);
      if (input.idempotencyKey) await ctx.storage.set(`idem:${input.idempotencyKey}`, txn.id);

      if (!outcome.ok) {
        await ctx.events.emit(
          'payment.failed',
          eventData({
            transactionId: txn.id,
            orderId: txn.orderId ?? undefined,
            amount: txn.amount,
            currency,
            code: outcome.code,
            message: outcome.message,
            retryable: outcome.retryable,
          }),
        );
        ctx.info('payment declined', txn.id, outcome.code);
        return { ...summary(txn), message: outcome.message };
      }
      if (txn.orderId) await ctx.storage.set(`order:${txn.orderId}`, txn.id);
      // The transaction, the order's payment and the event commit together (a call's effects are
      // all or nothing). Keyed by order: of two calls paying one order at the same instant, the
      // second one's commit is refused (CONFLICT) and its retry finds the order paid.
      const paid = await ctx.events.emit(
        'payment.completed',
        eventData({
          transactionId: txn.id,
          orderId: txn.orderId ?? undefined,
          amount: txn.amount,
          currency,
          brand: txn.card.brand,
          last4: txn.card.last4,
          items: txn.items,
          customer: txn.customer,
        }),
        txn.orderId ? { idempotencyKey: `order:${txn.orderId}` } : undefined,
      );
      if (paid.duplicate) throw new Error(`Order "${txn.orderId}" was paid by another payment meanwhile.`);
      ctx.info('payment approved', txn.id);
      return { ...summary(txn), message: `Payment of ${formatMoney(txn.amount, currency)} approved.` };
    },

    async 'verify-transaction'(data, ctx) {
      const input = /** @type {{ transactionId: string, amount?: number, orderId?: string }} */ (
        /** @type {unknown} */ (data)
      );
      const txn = await loadTransaction(ctx, input.transactionId);
      const verdict = (/** @type {boolean} */ valid, /** @type {string | null} */ reason) => ({
        valid,
        ...(reason ? { reason } : {}),
        transaction: txn ? summary(txn) : null,
      });
      if (!txn) return verdict(false, 'not_found');
      if (txn.status === 'failed') return verdict(false, 'not_paid');
      if (txn.status === 'refunded') return verdict(false, 'refunded');
      if (input.amount !== undefined && input.amount !== txn.amount) return verdict(false, 'amount_mismatch');
      if (input.orderId !== undefined && input.orderId !== txn.orderId)
        return verdict(false, 'order_mismatch');
      return verdict(true, null);
    },

    async refund(data, ctx) {
      const input =
        /** @type {{ transactionId: string, amount?: number, reason: string, idempotencyKey?: string }} */ (
          /** @type {unknown} */ (data)
        );
      const txn = await loadTransaction(ctx, input.transactionId);
      if (!txn) throw new Error(`Transaction "${input.transactionId}" does not exist.`);
      if (input.idempotencyKey) {
        const done = txn.refunds.find((r) => r.id === `re_${input.idempotencyKey}`);
        if (done)
          return { ...summary(txn), refundId: done.id, duplicate: true, message: 'Already refunded.' };
      }
      if (txn.status !== 'succeeded' && txn.status !== 'partially_refunded') {
        throw new Error(`Transaction "${txn.id}" is ${txn.status}; only paid transactions can be refunded.`);
      }
      const remaining = txn.amount - txn.amountRefunded;
      const amount = input.amount ?? remaining;
      if (amount > remaining) {
        throw new Error(
          `Cannot refund ${formatMoney(amount, txn.currency)}: only ${formatMoney(remaining, txn.currency)} is left to refund.`,
        );
      }
      /** @type {Refund} */
      const refund = {
        id: input.idempotencyKey ? `re_${input.idempotencyKey}` : newId('re'),
        amount,
        reason: input.reason,
        createdAt: new Date().toISOString(),
      };
      txn.refunds.push(refund);
      txn.amountRefunded += amount;
      txn.status = txn.amountRefunded === txn.amount ? 'refunded' : 'partially_refunded';
      txn.updatedAt = refund.createdAt;
      await ctx.storage.set(`txn:${txn.id}`, txn);
      await ctx.events.emit(
        'refund.processed',
        eventData({
          refundId: refund.id,
          transactionId: txn.id,
          orderId: txn.orderId ?? undefined,
          amount,
          currency: txn.currency,
          amountRefunded: txn.amountRefunded,
          fullyRefunded: txn.status === 'refunded',
          reason: refund.reason,
        }),
      );
      return {
        ...summary(txn),
        refundId: refund.id,
        message: `Refunded ${formatMoney(amount, txn.currency)}.`,
      };
    },
  },

  widgets: {
    /** The cart comes from context.cart; placement options from the widget config. */
    'checkout-form'(config, context, ctx) {
      const options =
        /** @type {{ title: string, buttonLabel: string, collectEmail: boolean, collectName: boolean,
        showSummary: boolean }} */ (/** @type {unknown} */ (config));
      const cart = readCart(/** @type {Record<string, unknown>} */ (context ?? {}).cart);
      const html = ctx.html;
      if (!cart) {
        return {
          html: html`<section class="tp-pay"><h2>${options.title}</h2><p class="tp-muted">Your cart is empty.</p></section>`,
          css: CSS,
        };
      }
      const currency = cart.currency ?? ctx.config.currency ?? 'USD';
      const total = formatMoney(cart.amount, currency);
      const merchant = typeof ctx.config.merchantName === 'string' ? ctx.config.merchantName : null;
      const origin = typeof ctx.config.hostOrigin === 'string' ? ctx.config.hostOrigin : '*';
      return {
        html: html`<section class="tp-pay">
  <h2>${options.title}</h2>
  ${merchant ? html`<p class="tp-muted">Paying ${merchant}</p>` : ''}
  ${
    options.showSummary && cart.items.length > 0
      ? html`<table class="tp-summary">${itemRows(ctx, cart.items, currency)}
      <tr><th>Total</th><th class="tp-amount">${total}</th></tr></table>`
      : ''
  }
  <form data-tp-form="checkout" data-tp-addon="${ADDON}" data-tp-action="process-payment" data-tp-endpoint="${ENDPOINT}"
    data-tp-target-origin="${origin}" data-tp-pending="Processing payment…" autocomplete="on" novalidate>
    ${cart.orderId ? html`<input type="hidden" data-tp-field="orderId" value="${cart.orderId}">` : ''}
    <input type="hidden" data-tp-field="amount" data-tp-type="number" value="${cart.amount}">
    <input type="hidden" data-tp-field="currency" value="${currency}">
    <input type="hidden" data-tp-field="items" data-tp-type="json" value="${JSON.stringify(cart.items)}">
    ${
      options.collectName
        ? html`<label>Name on card <input data-tp-field="customer.name" autocomplete="cc-name" maxlength="120"></label>`
        : ''
    }
    ${
      options.collectEmail
        ? html`<label>Email for the receipt <input type="email" data-tp-field="customer.email" autocomplete="email" maxlength="254"></label>`
        : ''
    }
    <label>Card number <input data-tp-field="card.number" data-tp-sensitive inputmode="numeric" autocomplete="cc-number" placeholder="4242 4242 4242 4242" required></label>
    <div class="tp-row">
      <label>Month <input data-tp-field="card.expMonth" data-tp-type="number" inputmode="numeric" autocomplete="cc-exp-month" placeholder="MM" required></label>
      <label>Year <input data-tp-field="card.expYear" data-tp-type="number" inputmode="numeric" autocomplete="cc-exp-year" placeholder="YYYY" required></label>
      <label>CVC <input data-tp-field="card.cvc" data-tp-sensitive inputmode="numeric" autocomplete="cc-csc" placeholder="123"></label>
    </div>
    <button type="submit">${options.buttonLabel} ${total}</button>
    <p data-tp-status role="status" aria-live="polite"></p>
  </form>
</section>`,
        css: CSS,
        javascript: FORM_SCRIPT,
      };
    },

    async 'payment-status'(config, context, ctx) {
      const options = /** @type {{ title: string, showAmount: boolean }} */ (/** @type {unknown} */ (config));
      const id = /** @type {Record<string, unknown>} */ (context ?? {}).transactionId;
      const txn = await loadTransaction(ctx, id);
      const html = ctx.html;
      if (!txn) {
        return {
          html: html`<section class="tp-pay" data-status="unknown"><h2>${options.title}</h2>
            <p class="tp-muted">No payment found.</p></section>`,
          css: CSS,
        };
      }
      return {
        html: html`<section class="tp-pay" data-transaction="${txn.id}" data-status="${txn.status}">
  <h2>${options.title}</h2>
  <p class="tp-${txn.status === 'failed' ? 'failed' : 'succeeded'}"><strong>${statusLabel(txn)}</strong>
    ${txn.failure ? html` — ${txn.failure.message}` : ''}</p>
  ${
    options.showAmount
      ? html`<p>${formatMoney(txn.amount, txn.currency)}${
          txn.amountRefunded > 0 ? html` (refunded ${formatMoney(txn.amountRefunded, txn.currency)})` : ''
        }</p>`
      : ''
  }
  <p class="tp-muted">${txn.card.brand} •••• ${txn.card.last4}${txn.orderId ? html` · order ${txn.orderId}` : ''}</p>
</section>`,
        css: CSS,
      };
    },

    async receipt(config, context, ctx) {
      const options = /** @type {{ title: string, showItems: boolean, footer: string }} */ (
        /** @type {unknown} */ (config)
      );
      const txn = await loadTransaction(
        ctx,
        /** @type {Record<string, unknown>} */ (context ?? {}).transactionId,
      );
      const html = ctx.html;
      if (!txn || txn.status === 'failed') {
        return {
          html: html`<section class="tp-pay"><h2>${options.title}</h2><p class="tp-muted">No receipt for this payment.</p></section>`,
          css: CSS,
        };
      }
      const merchant = typeof ctx.config.merchantName === 'string' ? ctx.config.merchantName : null;
      return {
        html: html`<section class="tp-pay tp-receipt" data-transaction="${txn.id}" data-status="${txn.status}">
  <h2>${options.title}</h2>
  ${merchant ? html`<p><strong>${merchant}</strong></p>` : ''}
  <p class="tp-muted">${txn.createdAt.slice(0, 10)} · ${txn.id}${txn.orderId ? html` · order ${txn.orderId}` : ''}</p>
  <table>
    ${options.showItems ? itemRows(ctx, txn.items, txn.currency) : ''}
    <tr><th>Total</th><th class="tp-amount">${formatMoney(txn.amount, txn.currency)}</th></tr>
    ${txn.refunds.map(
      (r) => html`<tr class="tp-refund"><td>Refund (${r.reason.replace(/_/g, ' ')})</td>
        <td class="tp-amount">−${formatMoney(r.amount, txn.currency)}</td></tr>`,
    )}
  </table>
  <p class="tp-muted">Paid with ${txn.card.brand} •••• ${txn.card.last4} · appears as ${txn.descriptor}</p>
  ${options.footer ? html`<p>${options.footer}</p>` : ''}
</section>`,
        css: CSS,
      };
    },
  },
};
