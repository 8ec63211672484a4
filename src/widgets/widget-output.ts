import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { scopeCss } from './css-scoper.js';

/** What a render produces, ready to mount, before per-response fields (`cached`). */
export interface RenderedWidget {
  /** The widget's markup wrapped in its root element `<div data-tp-widget="...">`. */
  html: string;
  /** The widget's CSS, every rule scoped to the root element. */
  css: string;
  javascript: string;
  /** Identifies this render (addon version, widget, config, varied context, invalidation generation). */
  cacheKey: string;
  /** The addon version rendered: the one installed on the site. */
  version: string;
}

/** The attribute that marks a widget's root element; its CSS is scoped to it. */
export const WIDGET_ROOT_ATTRIBUTE = 'data-tp-widget';

/**
 * Tags whose effect reaches past the widget's own element: style sheets (they would bypass the CSS
 * scoping), scripts (script belongs in `javascript`, under the document's nonce), `<base>` (it
 * changes every relative URL of the page) and `<meta>` (refresh redirects). Their `<` is written as
 * `&lt;`, which reads the same inside attribute values and shows the tag as text elsewhere.
 */
const PAGE_LEVEL_TAG = /<(?=\/?(?:style|script|link|base|meta)(?![a-z0-9-]))/gi;

/** Neutralises page-level tags in addon markup and wraps it in the widget's root element. */
export function wrapHtml(html: string, rootId: string): string {
  return `<div ${WIDGET_ROOT_ATTRIBUTE}="${rootId}">${html.replace(PAGE_LEVEL_TAG, '&lt;')}</div>`;
}

/**
 * Makes script text safe to place inside `<script>`: `</script` would end the element and `<!--`
 * can make the HTML tokenizer ignore the next `</script>`. `\x3C` reads as `<` in strings, regular
 * expressions and templates, where these sequences appear in working code.
 */
export function neutraliseScript(javascript: string): string {
  return javascript.replace(/<(?=\/script|!--)/gi, '\\x3C');
}

/**
 * Root ids scoped through the template cache (see {@link scopeWidgetCss}): ident characters only,
 * and long enough that a random placeholder of their length never occurs in a stylesheet by chance.
 */
const TEMPLATE_SAFE_ROOT_ID = /^[A-Za-z_][A-Za-z0-9_-]{11,63}$/;
/** Scoped stylesheets by source text, with a placeholder where the root id goes. */
const scopedTemplates = new LRUCache<string, { placeholder: string; template: string }>({
  max: 10_000,
  maxSize: 16 * 1024 * 1024,
  sizeCalculation: (entry, css) => 2 * (css.length + entry.template.length),
});

/**
 * A placeholder root id of `length` characters: letters from g to z, which a hex root id never
 * holds, drawn at random so that no stylesheet can be written to contain it.
 */
function placeholderId(length: number): string {
  let out = '';
  for (const byte of randomBytes(length)) out += String.fromCharCode(103 + (byte % 20));
  return out;
}

/**
 * {@link scopeCss} for the root element `rootId`, cached by stylesheet. A widget's CSS is usually
 * the same text in every render, while each render (config, context) gets its own root id; scoping
 * runs a full CSS tokenizer and parser, ~60 µs for a short stylesheet once V8 has optimised it and
 * 250-300 µs before (the first few hundred renders), so an uncached render paid it every time.
 * The stylesheet is scoped once for a random placeholder id of the same length (so the output
 * budget decides alike), and each render replaces the placeholder with its id: both are ident
 * characters, which the scoper writes unescaped wherever the id appears.
 */
export function scopeWidgetCss(css: string, rootId: string): string {
  const rootSelector = (id: string) => `[${WIDGET_ROOT_ATTRIBUTE}="${id}"]`;
  if (!css || !TEMPLATE_SAFE_ROOT_ID.test(rootId)) return scopeCss(css, rootSelector(rootId), rootId);
  let entry = scopedTemplates.get(css);
  if (!entry || entry.placeholder.length !== rootId.length) {
    const placeholder = placeholderId(rootId.length);
    entry = { placeholder, template: scopeCss(css, rootSelector(placeholder), placeholder) };
    scopedTemplates.set(css, entry);
  }
  return entry.template.replaceAll(entry.placeholder, rootId);
}

/** Turns raw sandbox output into what is cached and served. */
export function finishRender(
  output: { html?: unknown; css?: unknown; javascript?: unknown },
  ids: { rootId: string; cacheKey: string; version: string },
): RenderedWidget {
  const text = (value: unknown) => (typeof value === 'string' ? value : '');
  return {
    html: wrapHtml(text(output.html), ids.rootId),
    css: scopeWidgetCss(text(output.css), ids.rootId),
    javascript: neutraliseScript(text(output.javascript)),
    cacheKey: ids.cacheKey,
    version: ids.version,
  };
}

const escapeText = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

/**
 * The Content-Security-Policy of a widget document: nothing loads or runs unless named here. The
 * widget's one `<style>` and one `<script>` carry the nonce; inline event handlers, other inline
 * scripts and styles, plugins, `<base>`, form posts and network calls are refused (widget script
 * talks to its host page through `postMessage`). Style attributes stay allowed: they only reach
 * their own element, and `ctx.html` templates commonly use them.
 */
export function widgetCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "style-src-attr 'unsafe-inline'",
    'img-src https: data:',
    'font-src https: data:',
    'media-src https:',
    "connect-src 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

/** A fresh nonce per response (never cached: a nonce must not be predictable). */
export function newNonce(): string {
  return randomBytes(16).toString('base64');
}

/**
 * A complete HTML document showing one widget, for `<iframe sandbox="allow-scripts">`. Serve it
 * with {@link widgetCsp} for the same nonce.
 */
export function widgetDocument(widget: RenderedWidget, title: string, nonce: string): string {
  const style = widget.css ? `<style nonce="${nonce}">${widget.css}</style>` : '';
  const script = widget.javascript ? `<script nonce="${nonce}">${widget.javascript}</script>` : '';
  return (
    '<!doctype html><html><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${escapeText(title)}</title>${style}</head><body>${widget.html}${script}</body></html>`
  );
}
