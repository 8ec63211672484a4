// @ts-check
/// <reference path="../sdk.d.ts" />
/*
 * inventory: stock levels per SKU, kept in this addon's storage on the site:
 *
 *   item:<sku>             { sku, name, stock, reserved, updatedAt }   available = stock - reserved
 *   reservation:<id>       { id, orderId, items, status: active | fulfilled, createdAt }
 *   order:<orderId>        the id of the order's reservation
 *   event:<idempotencyKey> the record of a handled payment.completed (deliveries are at least once)
 *
 * The writes and events of one call commit together or not at all (a call that fails, times out or
 * dies with its server leaves nothing), so a handler that records the event it handled in the same
 * call as the stock change it made can never apply an event twice, nor half of it. Calls are not
 * isolated from each other, though: two calls changing the same SKU at the same instant can still
 * lose an update. That is fine for an example; a production addon would serialise writes per SKU.
 */

/**
 * @typedef {{ lowStockThreshold?: number, paymentSources?: string[] }} InventoryConfig
 * @typedef {{ sku: string, name: string, stock: number, reserved: number, updatedAt: string }} Item
 * @typedef {{ id: string, orderId: string | null, items: { sku: string, quantity: number }[],
 *   status: 'active' | 'fulfilled', createdAt: string }} Reservation
 * @typedef {{ sku: string, name: string, previous: number, stock: number, reserved: number, oversold: number }} Change
 * @typedef {{ eventId: string, orderId: string | null, reservationId: string | null, changes: Change[],
 *   unknown: string[], handledAt: string }} Handled
 * @typedef {ThemePress.Context<InventoryConfig>} Ctx
 */

const SKU = /^[A-Za-z0-9_.-]{1,64}$/;

/** The installation's threshold; a widget may override it. */
function thresholdOf(/** @type {Ctx} */ ctx, /** @type {unknown} */ override) {
  if (Number.isInteger(override)) return Number(override);
  const configured = ctx.config && ctx.config.lowStockThreshold;
  return Number.isInteger(configured) ? Number(configured) : 5;
}

const available = (/** @type {Item} */ item) => Math.max(0, item.stock - item.reserved);

/** @returns {Promise<Item | null>} */
async function getItem(/** @type {Ctx} */ ctx, /** @type {string} */ sku) {
  return /** @type {Item | null} */ (await ctx.storage.get(`item:${sku}`));
}

/**
 * Reads many keys, at most 8 storage calls in flight (the SDK allows 16 per call).
 * @template T
 * @param {Ctx} ctx
 * @param {string[]} keys
 * @returns {Promise<(T | null)[]>}
 */
async function getMany(ctx, keys) {
  /** @type {(T | null)[]} */
  const out = [];
  for (let i = 0; i < keys.length; i += 8) {
    const chunk = await Promise.all(keys.slice(i, i + 8).map((key) => ctx.storage.get(key)));
    out.push(.../** @type {(T | null)[]} */ (chunk));
  }
  return out;
}

/** Every item (up to `max`), in SKU order. */
async function listItems(/** @type {Ctx} */ ctx, max = 300) {
  /** @type {string[]} */
  const keys = [];
  /** @type {string | undefined} */
  let cursor;
  do {
    const page = await ctx.storage.list({
      prefix: 'item:',
      limit: Math.min(1000, max - keys.length),
      cursor,
    });
    keys.push(...page.keys);
    cursor = page.cursor ?? undefined;
  } while (cursor && keys.length < max);
  const items = await getMany(ctx, keys);
  return /** @type {Item[]} */ (items.filter(Boolean));
}

/** Sums quantities of repeated SKUs: [{a,1},{a,2}] -> [{a,3}]. */
function mergeLines(/** @type {{ sku: string, quantity: number }[]} */ lines) {
  /** @type {Map<string, number>} */
  const totals = new Map();
  for (const line of lines) totals.set(line.sku, (totals.get(line.sku) ?? 0) + line.quantity);
  return [...totals].map(([sku, quantity]) => ({ sku, quantity }));
}

function newId(/** @type {string} */ prefix) {
  return `${prefix}_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10).padEnd(8, '0')}`;
}

/**
 * stock.updated for the changed items, and stock.low for those that fell to the threshold.
 * @param {Ctx} ctx
 * @param {{ sku: string, name: string, previous: number | null, stock: number, available: number }[]} changes
 * @param {string} reason
 * @param {string | null} reference
 */
async function announce(ctx, changes, reason, reference) {
  if (changes.length === 0) return;
  await ctx.events.emit('stock.updated', {
    reason,
    ...(reference ? { reference } : {}),
    items: changes.map((c) => ({ sku: c.sku, previous: c.previous, stock: c.stock, available: c.available })),
  });
  const threshold = thresholdOf(ctx, undefined);
  const low = changes.filter((c) => c.stock <= threshold && (c.previous === null || c.previous > threshold));
  if (low.length > 0) {
    await ctx.events.emit('stock.low', {
      threshold,
      items: low.map((c) => ({ sku: c.sku, name: c.name, stock: c.stock })),
    });
  }
}

const CSS = `
.tp-inv { font: 14px/1.4 system-ui, sans-serif; }
.tp-inv h2 { font-size: 1.1rem; margin: 0 0 .5rem; }
.tp-inv .tp-in { color: #067647; }
.tp-inv .tp-low { color: #b54708; }
.tp-inv .tp-out { color: #b42318; }
.tp-inv .tp-hint { color: #667085; }
.tp-inv table { border-collapse: collapse; width: 100%; }
.tp-inv th, .tp-inv td { border-bottom: 1px solid #eaecf0; padding: .3rem .5rem; text-align: left; }
.tp-inv td.tp-num, .tp-inv th.tp-num { text-align: right; font-variant-numeric: tabular-nums; }
.tp-inv ul { margin: 0; padding-left: 1.1rem; }
`;

/** @param {Item} item @param {number} threshold */
function level(item, threshold) {
  const left = available(item);
  if (left <= 0) return { className: 'tp-out', label: 'Out of stock', state: 'out' };
  if (left <= threshold) return { className: 'tp-low', label: `Only ${left} left`, state: 'low' };
  return { className: 'tp-in', label: 'In stock', state: 'in' };
}

/** @type {ThemePress.AddonModule<InventoryConfig>} */
module.exports = {
  functions: {
    async 'update-stock'(data, ctx) {
      const input = /** @type {{ items: { sku: string, name?: string, stock?: number, delta?: number }[],
        reason: string }} */ (/** @type {unknown} */ (data));
      const current = await getMany(
        ctx,
        input.items.map((line) => `item:${line.sku}`),
      );
      /** @type {Map<string, { sku: string, name: string, previous: number | null, stock: number, available: number, reserved: number }>} */
      const changed = new Map();
      /** @type {Map<string, Item>} */
      const written = new Map();
      const now = new Date().toISOString();
      for (const [i, line] of input.items.entries()) {
        const before = written.get(line.sku) ?? /** @type {Item | null} */ (current[i]);
        const base = before ?? {
          sku: line.sku,
          name: line.name ?? line.sku,
          stock: 0,
          reserved: 0,
          updatedAt: '',
        };
        const stock = line.stock !== undefined ? line.stock : base.stock + (line.delta ?? 0);
        // Written as it goes: a bad line fails the call, and with it every write the call made.
        if (stock < 0) {
          throw new Error(
            `Stock of "${line.sku}" cannot go below 0 (it is ${base.stock}, delta ${line.delta}).`,
          );
        }
        /** @type {Item} */
        const item = { ...base, name: line.name ?? base.name, stock, updatedAt: now };
        await ctx.storage.set(`item:${item.sku}`, item);
        written.set(item.sku, item);
        const first = changed.get(item.sku);
        changed.set(item.sku, {
          sku: item.sku,
          name: item.name,
          previous: first ? first.previous : before ? before.stock : null,
          stock: item.stock,
          available: available(item),
          reserved: item.reserved,
        });
      }
      const changes = [...changed.values()];
      await announce(ctx, changes, input.reason, null);
      return { items: changes, message: `Updated ${changes.length} item(s).` };
    },

    async 'check-availability'(data, ctx) {
      const input = /** @type {{ items: { sku: string, quantity: number }[] }} */ (
        /** @type {unknown} */ (data)
      );
      const lines = mergeLines(input.items.map((l) => ({ sku: l.sku, quantity: l.quantity ?? 1 })));
      const items = /** @type {(Item | null)[]} */ (
        await getMany(
          ctx,
          lines.map((l) => `item:${l.sku}`),
        )
      );
      const result = lines.map((line, i) => {
        const item = items[i];
        const free = item ? available(item) : 0;
        return {
          sku: line.sku,
          known: item !== null,
          name: item ? item.name : null,
          stock: item ? item.stock : 0,
          reserved: item ? item.reserved : 0,
          available: free,
          requested: line.quantity,
          sufficient: free >= line.quantity,
        };
      });
      return { available: result.every((r) => r.sufficient), items: result };
    },

    async 'reserve-items'(data, ctx) {
      const input = /** @type {{ orderId?: string, items: { sku: string, quantity: number }[] }} */ (
        /** @type {unknown} */ (data)
      );
      if (input.orderId) {
        const existingId = await ctx.storage.get(`order:${input.orderId}`);
        const existing = /** @type {Reservation | null} */ (
          typeof existingId === 'string' ? await ctx.storage.get(`reservation:${existingId}`) : null
        );
        if (existing) {
          return {
            reserved: true,
            duplicate: true,
            reservationId: existing.id,
            status: existing.status,
            items: existing.items,
          };
        }
      }
      const lines = mergeLines(input.items);
      const items = /** @type {(Item | null)[]} */ (
        await getMany(
          ctx,
          lines.map((l) => `item:${l.sku}`),
        )
      );
      const shortages = lines
        .map((line, i) => ({
          sku: line.sku,
          requested: line.quantity,
          available: items[i] ? available(/** @type {Item} */ (items[i])) : 0,
        }))
        .filter((s) => s.available < s.requested);
      if (shortages.length > 0) {
        return {
          reserved: false,
          shortages,
          message: `Not enough stock for ${shortages.map((s) => s.sku).join(', ')}.`,
        };
      }
      /** @type {Reservation} */
      const reservation = {
        id: newId('res'),
        orderId: input.orderId ?? null,
        items: lines,
        status: 'active',
        createdAt: new Date().toISOString(),
      };
      await ctx.storage.set(`reservation:${reservation.id}`, reservation);
      if (reservation.orderId) await ctx.storage.set(`order:${reservation.orderId}`, reservation.id);
      for (const [i, line] of lines.entries()) {
        const item = /** @type {Item} */ (items[i]);
        await ctx.storage.set(`item:${line.sku}`, {
          ...item,
          reserved: item.reserved + line.quantity,
          updatedAt: reservation.createdAt,
        });
      }
      await ctx.events.emit('item.reserved', {
        reservationId: reservation.id,
        ...(reservation.orderId ? { orderId: reservation.orderId } : {}),
        items: lines,
      });
      return { reserved: true, reservationId: reservation.id, items: lines, message: 'Items reserved.' };
    },
  },

  handlers: {
    /**
     * payment.completed -> decrement stock of the paid items (and release the order's reservation).
     * Idempotent by the event's idempotencyKey: the stock changes, the events announcing them and
     * the record `event:<idempotencyKey>` commit together, so a delivery that finds the record (the
     * platform delivers at least once) changes nothing, and one that failed left nothing to redo.
     */
    async onPaymentCompleted(event, ctx) {
      const evt =
        /** @type {{ idempotencyKey: string, source: string, data: { orderId?: string, transactionId?: string,
        items?: { sku: string, name?: string, quantity: number }[] } }} */ (/** @type {unknown} */ (event));
      const sources = ctx.config.paymentSources ?? ['payment-gateway'];
      if (!sources.includes(evt.source)) {
        ctx.warn(`ignored payment.completed from untrusted source "${evt.source}"`);
        return { ignored: true, reason: 'untrusted-source' };
      }
      const recordKey = `event:${evt.idempotencyKey}`;
      if (await ctx.storage.get(recordKey)) return { duplicate: true };

      const data = evt.data ?? {};
      const lines = mergeLines(
        (Array.isArray(data.items) ? data.items : []).filter(
          (l) =>
            l &&
            typeof l.sku === 'string' &&
            SKU.test(l.sku) &&
            Number.isInteger(l.quantity) &&
            l.quantity > 0,
        ),
      );
      const orderId = typeof data.orderId === 'string' ? data.orderId : null;
      const reservationId = orderId ? await ctx.storage.get(`order:${orderId}`) : null;
      const reservation = /** @type {Reservation | null} */ (
        typeof reservationId === 'string' ? await ctx.storage.get(`reservation:${reservationId}`) : null
      );
      const held = reservation && reservation.status === 'active' ? mergeLines(reservation.items) : [];
      const items = /** @type {(Item | null)[]} */ (
        await getMany(
          ctx,
          lines.map((l) => `item:${l.sku}`),
        )
      );
      const now = new Date().toISOString();
      /** @type {Change[]} */
      const changes = [];
      /** @type {string[]} */
      const unknown = [];
      for (const [i, line] of lines.entries()) {
        const item = items[i];
        if (!item) {
          unknown.push(line.sku);
          continue;
        }
        const release = Math.min(
          held.find((h) => h.sku === line.sku)?.quantity ?? 0,
          line.quantity,
          item.reserved,
        );
        const change = {
          sku: item.sku,
          name: item.name,
          previous: item.stock,
          stock: Math.max(0, item.stock - line.quantity),
          reserved: item.reserved - release,
          oversold: Math.max(0, line.quantity - item.stock),
        };
        changes.push(change);
        await ctx.storage.set(`item:${item.sku}`, {
          ...item,
          stock: change.stock,
          reserved: change.reserved,
          updatedAt: now,
        });
      }
      if (reservation && reservation.status === 'active') {
        await ctx.storage.set(`reservation:${reservation.id}`, { ...reservation, status: 'fulfilled' });
      }
      const reference = orderId ?? data.transactionId ?? null;
      await announce(
        ctx,
        changes.map((c) => ({ ...c, available: Math.max(0, c.stock - c.reserved) })),
        'payment',
        typeof reference === 'string' ? reference : null,
      );
      /** @type {Handled} */
      const handled = {
        eventId: evt.idempotencyKey,
        orderId,
        reservationId: reservation && reservation.status === 'active' ? reservation.id : null,
        changes,
        unknown,
        handledAt: now,
      };
      await ctx.storage.set(recordKey, handled);
      for (const c of changes) if (c.oversold > 0) ctx.warn(`oversold ${c.sku} by ${c.oversold}`);
      if (unknown.length > 0) ctx.warn(`payment for unknown SKUs: ${unknown.join(', ')}`);
      return {
        decremented: changes.map((c) => ({ sku: c.sku, stock: c.stock })),
        unknown,
      };
    },
  },

  widgets: {
    async 'stock-display'(config, context, ctx) {
      const options = /** @type {{ sku?: string, showQuantity: boolean, lowStockThreshold?: number }} */ (
        /** @type {unknown} */ (config)
      );
      const fromPage = /** @type {Record<string, unknown>} */ (context ?? {}).sku;
      const sku = options.sku ?? (typeof fromPage === 'string' && SKU.test(fromPage) ? fromPage : null);
      const html = ctx.html;
      const item = sku ? await getItem(ctx, sku) : null;
      // Whoever places the widget sees why it shows no stock: it needs a SKU that is in the inventory.
      if (!sku) {
        return {
          html: html`<p class="tp-inv tp-out" data-sku="" data-state="no-sku">Unavailable <small class="tp-hint">(no SKU: set "sku" in the widget config, or pass it as context.sku on a product page)</small></p>`,
          css: CSS,
        };
      }
      if (!item) {
        return {
          html: html`<p class="tp-inv tp-out" data-sku="${sku}" data-state="unknown">Unavailable <small class="tp-hint">(SKU ${sku} is not in the inventory: add it with update-stock)</small></p>`,
          css: CSS,
        };
      }
      const { className, label, state } = level(item, thresholdOf(ctx, options.lowStockThreshold));
      const left = available(item);
      return {
        html: html`<p class="tp-inv ${className}" data-sku="${item.sku}" data-state="${state}" data-available="${left}">
  <strong>${label}</strong>${options.showQuantity && state === 'in' ? html` <span>(${left} available)</span>` : ''}
</p>`,
        css: CSS,
      };
    },

    async 'low-stock-alert'(config, _context, ctx) {
      const options = /** @type {{ title: string, threshold?: number, maxItems: number }} */ (
        /** @type {unknown} */ (config)
      );
      const threshold = thresholdOf(ctx, options.threshold);
      const low = (await listItems(ctx))
        .filter((item) => item.stock <= threshold)
        .sort((a, b) => a.stock - b.stock || (a.sku < b.sku ? -1 : 1))
        .slice(0, options.maxItems);
      const html = ctx.html;
      return {
        html: html`<section class="tp-inv" role="status" data-count="${low.length}">
  <h2>${options.title}</h2>
  ${
    low.length === 0
      ? html`<p class="tp-in">All items are above ${threshold} in stock.</p>`
      : html`<ul>${low.map(
          (item) => html`<li data-sku="${item.sku}" class="${item.stock === 0 ? 'tp-out' : 'tp-low'}">
          ${item.name} (${item.sku}): ${item.stock === 0 ? 'out of stock' : `${item.stock} left`}</li>`,
        )}</ul>`
  }
</section>`,
        css: CSS,
      };
    },

    async 'inventory-table'(config, _context, ctx) {
      const options = /** @type {{ title: string, showReserved: boolean, maxRows: number }} */ (
        /** @type {unknown} */ (config)
      );
      const items = await listItems(ctx, options.maxRows);
      const threshold = thresholdOf(ctx, undefined);
      const html = ctx.html;
      return {
        html: html`<section class="tp-inv">
  <h2>${options.title}</h2>
  <table>
    <thead><tr><th>SKU</th><th>Name</th><th class="tp-num">Stock</th>${
      options.showReserved ? html`<th class="tp-num">Reserved</th><th class="tp-num">Available</th>` : ''
    }<th>Status</th></tr></thead>
    <tbody>${
      items.length === 0
        ? html`<tr><td colspan="6">No items yet.</td></tr>`
        : items.map((item) => {
            const { className, label } = level(item, threshold);
            return html`<tr data-sku="${item.sku}"><td>${item.sku}</td><td>${item.name}</td><td class="tp-num">${item.stock}</td>${
              options.showReserved
                ? html`<td class="tp-num">${item.reserved}</td><td class="tp-num">${available(item)}</td>`
                : ''
            }<td class="${className}">${label}</td></tr>`;
          })
    }</tbody>
  </table>
</section>`,
        css: CSS,
      };
    },
  },
};
