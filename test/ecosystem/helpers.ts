import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readAddonPackage, type AddonPackage } from '../../src/addons/addon-package.js';

/** The repository's `addons-examples/` folder (this file runs from dist/test/ecosystem). */
export const EXAMPLES_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../addons-examples',
);

export const EXAMPLE_NAMES = ['payment-gateway', 'inventory', 'email-marketing'] as const;
export type ExampleName = (typeof EXAMPLE_NAMES)[number];

/** Reads the example addon folders as the CLI and the seed do. */
export async function readExamples(): Promise<Record<ExampleName, AddonPackage>> {
  const entries = await Promise.all(
    EXAMPLE_NAMES.map(async (name) => [name, await readAddonPackage(path.join(EXAMPLES_DIR, name))] as const),
  );
  return Object.fromEntries(entries) as Record<ExampleName, AddonPackage>;
}

/** Test cards of the simulated processor. */
export const CARDS = {
  visa: '4242 4242 4242 4242',
  declined: '4000000000000002',
  insufficientFunds: '4000000000009995',
  badChecksum: '4242424242424241',
} as const;

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Decodes the character references `ctx.html` writes. */
export function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, ref: string) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return NAMED[ref.toLowerCase()] ?? whole;
  });
}

function attributes(source: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const match of source.matchAll(/([A-Za-z_:][-A-Za-z0-9_:.]*)(?:\s*=\s*"([^"]*)")?/g)) {
    out[match[1].toLowerCase()] = decodeEntities(match[2] ?? '');
  }
  return out;
}

export interface FormSubmission {
  /** The form's `data-tp-endpoint`, e.g. `/api/addons/payment-gateway/execute`. */
  endpoint: string;
  /** The body the host page relays: `{ action, data }`. */
  body: { action: string; data: Record<string, unknown> };
}

/**
 * What a widget form's script posts to the host page when the visitor submits it: the form's
 * `data-tp-*` attributes and every `data-tp-field` element read as the script reads them (hidden
 * fields as rendered, visible ones as `typed` by the visitor, empty ones left out, dotted names
 * nested, `data-tp-type` number/json/list/boolean converted). The host relays `body` to `endpoint`.
 */
export function submitForm(markup: string, typed: Record<string, string> = {}): FormSubmission {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/.exec(markup);
  if (!form) throw new Error(`no <form> in ${markup.slice(0, 200)}`);
  const formAttributes = attributes(form[1]);
  const data: Record<string, unknown> = {};
  for (const field of form[2].matchAll(/<input\b([^>]*)>|<textarea\b([^>]*)>([\s\S]*?)<\/textarea>/g)) {
    const isTextarea = field[1] === undefined;
    const attrs = attributes(isTextarea ? field[2] : field[1]);
    const name = attrs['data-tp-field'];
    if (name === undefined) continue;
    const rendered = isTextarea ? decodeEntities(field[3]) : (attrs.value ?? '');
    const text = (attrs.type === 'hidden' ? rendered : (typed[name] ?? rendered)).trim();
    const type = attrs['data-tp-type'] ?? 'string';
    let value: unknown;
    if (type === 'boolean') value = typed[name] === 'on';
    else if (text === '') continue;
    else if (type === 'number') value = Number(text);
    else if (type === 'json') value = JSON.parse(text);
    else if (type === 'list')
      value = text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    else value = text;
    const parts = name.split('.');
    let node = data;
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]] = value;
  }
  for (const key of Object.keys(typed)) {
    if (!new RegExp(`data-tp-field="${key.replace(/\./g, '\\.')}"`).test(form[2])) {
      throw new Error(`the form has no field "${key}"`);
    }
  }
  return {
    endpoint: formAttributes['data-tp-endpoint'],
    body: { action: formAttributes['data-tp-action'], data },
  };
}
