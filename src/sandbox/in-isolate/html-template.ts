/**
 * The `html` tagged template given to widgets. This file's {@link createHtmlKit} is injected into every
 * isolate as source text (`Function.prototype.toString`), so it must stay self-contained: no imports,
 * no references to anything outside its own body.
 */

/** Markup that `html` will insert without escaping. Only `html` and `raw` can make one. */
export interface SafeHtml {
  readonly __html: string;
  toString(): string;
  toJSON(): string;
}

export interface HtmlKit {
  /** Tagged template that escapes every interpolated value for the position it lands in. */
  html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml;
  /** Marks trusted markup so `html` inserts it verbatim. Never pass user or config data to it. */
  raw(markup: unknown): SafeHtml;
  isSafeHtml(value: unknown): value is SafeHtml;
  /** Escapes `& < > " ' \` =` as character references. */
  escapeHtml(text: string): string;
}

/** Builds an independent `html`/`raw` pair; markers of one kit are not trusted by another. */
export function createHtmlKit(): HtmlKit {
  'use strict';
  const marks = new WeakSet<object>();
  const ENTITIES: Record<string, string> = {
    '&': '&amp;',
    '<': '&lt;',
    '>': '&gt;',
    '"': '&quot;',
    "'": '&#39;',
    '`': '&#96;',
    '=': '&#61;',
  };
  const RAW_TEXT = ['script', 'style'];
  const RCDATA = ['textarea', 'title'];
  const URL_ATTRIBUTES = [
    'href',
    'src',
    'action',
    'formaction',
    'xlink:href',
    'poster',
    'cite',
    'background',
    'ping',
    'data',
    'codebase',
  ];
  const SAFE_SCHEME = /^(?:https?|mailto|tel):/i;
  const ANY_SCHEME = /^[a-z][a-z0-9+.-]*:/i;

  function escapeHtml(text: string): string {
    return String(text).replace(/[&<>"'`=]/g, (c) => ENTITIES[c]);
  }

  function make(markup: string): SafeHtml {
    const value: SafeHtml = Object.freeze({
      __html: markup,
      toString: () => markup,
      toJSON: () => markup,
    });
    marks.add(value);
    return value;
  }

  function isSafeHtml(value: unknown): value is SafeHtml {
    return typeof value === 'object' && value !== null && marks.has(value);
  }

  function raw(markup: unknown): SafeHtml {
    if (isSafeHtml(markup)) return markup;
    return make(markup === null || markup === undefined ? '' : String(markup));
  }

  type State =
    | 'text'
    | 'comment'
    | 'rawtext'
    | 'tagName'
    | 'inTag'
    | 'attrName'
    | 'afterAttrName'
    | 'beforeValue'
    | 'valueDq'
    | 'valueSq'
    | 'valueUnq';

  /** Where the scanner stands after the static text seen so far. */
  interface Scan {
    state: State;
    tag: string;
    closing: boolean;
    attr: string;
    /** Characters of the current attribute value written by static text before the interpolation. */
    valueSoFar: string;
    rawTag: string;
  }

  function endTag(s: Scan): void {
    const name = s.tag.toLowerCase();
    if (!s.closing && (RAW_TEXT.indexOf(name) >= 0 || RCDATA.indexOf(name) >= 0)) {
      s.state = 'rawtext';
      s.rawTag = name;
    } else {
      s.state = 'text';
    }
  }

  // A small subset of the HTML tokenizer, enough to know whether an interpolation lands in text, a
  // quoted or unquoted attribute value, a tag name, or a script/style body.
  function advance(s: Scan, chunk: string): void {
    let i = 0;
    while (i < chunk.length) {
      const c = chunk[i];
      switch (s.state) {
        case 'text':
          if (c === '<') {
            if (i + 1 === chunk.length) {
              // `<${value}`: the value would become the tag name.
              s.state = 'tagName';
              s.closing = false;
              s.tag = '';
            } else if (chunk.startsWith('!--', i + 1)) {
              s.state = 'comment';
              i += 3;
            } else if (/[a-zA-Z/]/.test(chunk[i + 1] ?? '')) {
              s.state = 'tagName';
              s.closing = chunk[i + 1] === '/';
              s.tag = '';
              if (s.closing) i += 1;
            }
          }
          break;
        case 'comment':
          if (chunk.startsWith('-->', i)) {
            s.state = 'text';
            i += 2;
          }
          break;
        case 'rawtext':
          if (c === '<' && chunk.slice(i + 2, i + 2 + s.rawTag.length).toLowerCase() === s.rawTag) {
            if (chunk[i + 1] === '/') {
              s.state = 'tagName';
              s.closing = true;
              s.tag = '';
              i += 1;
            }
          }
          break;
        case 'tagName':
          if (c === '>') endTag(s);
          else if (/\s|\//.test(c)) s.state = 'inTag';
          else s.tag += c;
          break;
        case 'inTag':
          if (c === '>') endTag(s);
          else if (!/\s|\//.test(c)) {
            s.state = 'attrName';
            s.attr = c;
          }
          break;
        case 'attrName':
          if (c === '=') {
            s.state = 'beforeValue';
            s.valueSoFar = '';
          } else if (c === '>') endTag(s);
          else if (/\s/.test(c)) s.state = 'afterAttrName';
          else if (c === '/') s.state = 'inTag';
          else s.attr += c;
          break;
        case 'afterAttrName':
          if (c === '=') {
            s.state = 'beforeValue';
            s.valueSoFar = '';
          } else if (c === '>') endTag(s);
          else if (!/\s|\//.test(c)) {
            s.state = 'attrName';
            s.attr = c;
          }
          break;
        case 'beforeValue':
          if (c === '"') s.state = 'valueDq';
          else if (c === "'") s.state = 'valueSq';
          else if (c === '>') endTag(s);
          else if (!/\s/.test(c)) {
            s.state = 'valueUnq';
            s.valueSoFar = c;
          }
          break;
        case 'valueDq':
          if (c === '"') s.state = 'inTag';
          else s.valueSoFar += c;
          break;
        case 'valueSq':
          if (c === "'") s.state = 'inTag';
          else s.valueSoFar += c;
          break;
        case 'valueUnq':
          if (c === '>') endTag(s);
          else if (/\s/.test(c)) s.state = 'inTag';
          else s.valueSoFar += c;
          break;
      }
      i += 1;
    }
  }

  function isEmpty(value: unknown): boolean {
    return value === null || value === undefined || value === false || value === '';
  }

  function plain(value: unknown): string {
    if (isEmpty(value)) return '';
    if (isSafeHtml(value)) return value.__html;
    if (Array.isArray(value)) return value.map(plain).join('');
    return String(value);
  }

  function textValue(value: unknown): string {
    if (isEmpty(value)) return '';
    if (isSafeHtml(value)) return value.__html;
    if (Array.isArray(value)) return value.map(textValue).join('');
    return escapeHtml(String(value));
  }

  function attributeValue(s: Scan, value: unknown): string {
    const name = s.attr.toLowerCase();
    if (name.startsWith('on')) {
      throw new TypeError(`html: interpolation into the event handler attribute "${s.attr}" is not allowed.`);
    }
    let text = plain(value);
    // A URL attribute whose scheme comes from the interpolated value: allow only inert schemes.
    if (URL_ATTRIBUTES.indexOf(name) >= 0 && s.valueSoFar.trim() === '') {
      // eslint-disable-next-line no-control-regex
      const compact = text.replace(/[\u0000-\u0020\u007f-\u009f]/g, '');
      if (ANY_SCHEME.test(compact) && !SAFE_SCHEME.test(compact)) text = 'about:blank#blocked';
    }
    return escapeHtml(text);
  }

  function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
    const s: Scan = { state: 'text', tag: '', closing: false, attr: '', valueSoFar: '', rawTag: '' };
    let out = '';
    for (let i = 0; i < strings.length; i += 1) {
      const chunk = strings[i] ?? '';
      out += chunk;
      advance(s, chunk);
      if (i === values.length) break;
      const value = values[i];
      switch (s.state) {
        case 'text':
        case 'comment':
          out += textValue(value);
          break;
        case 'rawtext':
          if (RCDATA.indexOf(s.rawTag) >= 0) out += escapeHtml(plain(value));
          else if (isSafeHtml(value) || isEmpty(value)) out += plain(value);
          else
            throw new TypeError(
              `html: interpolation inside <${s.rawTag}> is not allowed; use raw() for trusted code.`,
            );
          break;
        case 'valueDq':
        case 'valueSq': {
          const text = attributeValue(s, value);
          s.valueSoFar += text;
          out += text;
          break;
        }
        case 'beforeValue': {
          // Unquoted attribute value: quote it, or a space in the value would start a new attribute.
          out += `"${attributeValue(s, value)}"`;
          s.state = 'inTag';
          break;
        }
        default:
          // Tag names, attribute names, unquoted mid-value: only trusted markup or nothing.
          if (isSafeHtml(value) || isEmpty(value)) out += plain(value);
          else {
            throw new TypeError(
              'html: values may only be interpolated into text or attribute values; quote the attribute or use raw().',
            );
          }
      }
    }
    return make(out);
  }

  return Object.freeze({ html, raw, isSafeHtml, escapeHtml });
}
