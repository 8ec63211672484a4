import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import sanitizeHtml from 'sanitize-html';
import { AppError, ErrorCode } from '../errors/index.js';
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

/** Largest widget markup and stylesheet (UTF-8 bytes) a render may return; both are parsed here. */
export const MAX_WIDGET_HTML_BYTES = 64 * 1024;
export const MAX_WIDGET_CSS_BYTES = 32 * 1024;

const GLOBAL_ATTRIBUTES = ['class', 'id', 'title', 'role', 'lang', 'dir', 'hidden', 'tabindex', 'style'];
const FORM_FIELD = ['name', 'disabled', 'required', 'autocomplete', 'inputmode'];

/**
 * The allow-list addon markup is held to (sanitize-html): content and form elements with their
 * plain attributes, `data-*` and `aria-*`. Gone are scripts, styles, frames, objects, `<base>`,
 * `<meta>`, `<link>`, every event handler attribute, `srcdoc`, form targets (`action`,
 * `formaction`) and URLs other than http(s), mailto and tel (images: https and data). The
 * output is rebuilt from the parsed tree, so its tags are balanced: nothing in it can close the
 * root element early. Ids must contain a dash, so they cannot shadow the page's globals (DOM
 * clobbering), and `data-tp-widget` is the platform's own.
 */
const SANITIZE_OPTIONS: sanitizeHtml.IOptions = {
  allowedTags: [
    ...sanitizeHtml.defaults.allowedTags,
    'img',
    'picture',
    'form',
    'fieldset',
    'legend',
    'label',
    'input',
    'button',
    'select',
    'option',
    'optgroup',
    'textarea',
    'output',
    'progress',
    'meter',
    'details',
    'summary',
  ],
  allowedAttributes: {
    '*': [...GLOBAL_ATTRIBUTES, 'data-*', 'aria-*'],
    a: ['href', { name: 'target', multiple: false, values: ['_blank', '_self'] }, 'rel', 'hreflang'],
    img: ['src', 'alt', 'width', 'height', 'loading', 'decoding'],
    label: ['for'],
    input: [
      ...FORM_FIELD,
      'type',
      'value',
      'placeholder',
      'checked',
      'readonly',
      'min',
      'max',
      'step',
      'minlength',
      'maxlength',
      'pattern',
      'size',
      'multiple',
      'list',
    ],
    button: [...FORM_FIELD, 'type', 'value'],
    select: [...FORM_FIELD, 'multiple', 'size'],
    option: ['value', 'selected', 'disabled', 'label'],
    optgroup: ['label', 'disabled'],
    textarea: [...FORM_FIELD, 'rows', 'cols', 'placeholder', 'readonly', 'minlength', 'maxlength', 'wrap'],
    fieldset: ['disabled'],
    output: ['for'],
    progress: ['value', 'max'],
    meter: ['value', 'min', 'max', 'low', 'high', 'optimum'],
    details: ['open'],
    td: ['colspan', 'rowspan', 'headers'],
    th: ['colspan', 'rowspan', 'headers', 'scope', 'abbr'],
    col: ['span'],
    colgroup: ['span'],
    ol: ['start', 'reversed', 'type'],
    li: ['value'],
    time: ['datetime'],
    data: ['value'],
    q: ['cite'],
    blockquote: ['cite'],
  },
  allowedSchemes: ['http', 'https', 'mailto', 'tel'],
  allowedSchemesByTag: { img: ['https', 'data'] },
  allowedSchemesAppliedToAttributes: ['href', 'src', 'cite'],
  allowProtocolRelative: false,
  disallowedTagsMode: 'discard',
  transformTags: {
    '*': (tagName, attribs) => {
      const kept = { ...attribs };
      delete kept[WIDGET_ROOT_ATTRIBUTE];
      if (kept.id !== undefined && !/^[A-Za-z][\w-]*-[\w-]*$/.test(kept.id)) delete kept.id;
      // A link the widget opens must not hand the page to the page it opens.
      if (tagName === 'a' && kept.href !== undefined) kept.rel = 'noopener noreferrer';
      return { tagName, attribs: kept };
    },
  },
};

/** Sanitizes addon markup (see {@link SANITIZE_OPTIONS}) and wraps it in the widget's root element. */
export function wrapHtml(html: string, rootId: string): string {
  return `<div ${WIDGET_ROOT_ATTRIBUTE}="${rootId}">${sanitizeHtml(html, SANITIZE_OPTIONS)}</div>`;
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

/**
 * Turns raw sandbox output into what is cached and served. Markup and stylesheet are parsed on
 * the API's event loop, so each is bounded first (over its cap the render fails with
 * OUTPUT_TOO_LARGE, the addon's error) and they are parsed in separate turns of the loop, so other
 * requests run in between.
 */
export async function finishRender(
  output: { html?: unknown; css?: unknown; javascript?: unknown },
  ids: { rootId: string; cacheKey: string; version: string },
): Promise<RenderedWidget> {
  const text = (value: unknown) => (typeof value === 'string' ? value : '');
  const html = text(output.html);
  const css = text(output.css);
  for (const [field, value, max] of [
    ['html', html, MAX_WIDGET_HTML_BYTES],
    ['css', css, MAX_WIDGET_CSS_BYTES],
  ] as const) {
    const bytes = value.length * 3 <= max ? value.length : Buffer.byteLength(value);
    if (bytes > max) {
      throw new AppError(
        ErrorCode.OutputTooLarge,
        `The widget returned ${bytes} bytes of ${field}; the limit is ${max}.`,
        { field, bytes, limit: max },
      );
    }
  }
  const wrapped = wrapHtml(html, ids.rootId);
  if (css) await new Promise((resolve) => setImmediate(resolve));
  return {
    html: wrapped,
    css: scopeWidgetCss(css, ids.rootId),
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
