/**
 * Scopes a widget's (hostile) stylesheet to the widget's root element.
 *
 * The input is tokenized the way browsers tokenize CSS (CSS Syntax Level 3), parsed into rules,
 * and the output is re-serialized from that structure: every emitted selector, prelude and value
 * is checked to be self-contained (balanced brackets, no braces or semicolons, no bad strings or
 * URLs), so however the input was crafted the browser parses the output into exactly the rules we
 * wrote, and no `<` survives (it is escaped as `\3c `), so `</style>` or `<!--` cannot appear.
 *
 * Policy:
 * - every selector is prefixed by the root selector (descendant); a leading `:root`, `html` or
 *   `body` compound becomes the root itself (`body > p` → `[root] > p`);
 * - nested style rules (CSS nesting) are flattened (`&` → `:is(parent)`) and scoped again, so
 *   `body:has(&)` cannot select outside the root;
 * - at-rules: `@media`, `@supports`, `@container`, `@starting-style` keep their contents (scoped),
 *   `@layer` blocks are unwrapped (layer names are global), `@keyframes` are renamed with a
 *   per-widget suffix (and `animation`/`animation-name` references follow); every other at-rule
 *   (`@import`, `@font-face`, `@property`, `@scope`, `@namespace`, `@page`, `@counter-style`,
 *   `@layer` statements, unknown ones) is dropped: each defines something page-global;
 * - declarations loading resources keep only `https:` and `data:image/...` URLs; `expression()`,
 *   `element()`, `behavior` and `-moz-binding` are dropped.
 */

type TokenType =
  | 'ws'
  | 'comment'
  | 'string'
  | 'bad-string'
  | 'url'
  | 'bad-url'
  | 'ident'
  | 'function'
  | 'at'
  | 'hash'
  | 'delim'
  | 'number'
  | 'cdo'
  | 'cdc'
  | ':'
  | ';'
  | ','
  | '['
  | ']'
  | '('
  | ')'
  | '{'
  | '}';

interface Token {
  type: TokenType;
  /** Source slice. */
  text: string;
  /** Decoded name (ident, function, at, hash), string value, or URL. */
  value: string;
}

const enum C {
  Tab = 9,
  Newline = 10,
  Space = 32,
  Quote = 34,
  Hash = 35,
  Percent = 37,
  Apostrophe = 39,
  LParen = 40,
  RParen = 41,
  Plus = 43,
  Comma = 44,
  Minus = 45,
  Dot = 46,
  Slash = 47,
  Colon = 58,
  Semicolon = 59,
  Less = 60,
  At = 64,
  LBracket = 91,
  Backslash = 92,
  RBracket = 93,
  LBrace = 123,
  RBrace = 125,
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isHex = (c: number) => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
const isLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isIdentStart = (c: number) => isLetter(c) || c >= 0x80 || c === 95;
const isIdentChar = (c: number) => isIdentStart(c) || isDigit(c) || c === C.Minus;
const isWs = (c: number) => c === C.Space || c === C.Tab || c === C.Newline;
const isNonPrintable = (c: number) => (c >= 0 && c <= 8) || c === 11 || (c >= 14 && c <= 31) || c === 127;

/** Splits CSS into tokens as a browser does; every character belongs to exactly one token. */
function tokenize(input: string): Token[] {
  // Preprocessing (CSS Syntax §3.3).
  const s = input.replace(/\r\n?|\f/g, '\n').replace(/\0/g, '\uFFFD');
  const n = s.length;
  const at = (i: number) => (i < n ? s.charCodeAt(i) : -1);
  const validEscape = (i: number) => at(i) === C.Backslash && at(i + 1) !== C.Newline && i + 1 < n;
  const startsIdent = (i: number) => {
    const c = at(i);
    if (c === C.Minus) return isIdentStart(at(i + 1)) || at(i + 1) === C.Minus || validEscape(i + 1);
    if (isIdentStart(c)) return true;
    return validEscape(i);
  };
  const startsNumber = (i: number) => {
    const c = at(i);
    if (c === C.Plus || c === C.Minus) {
      return isDigit(at(i + 1)) || (at(i + 1) === C.Dot && isDigit(at(i + 2)));
    }
    if (c === C.Dot) return isDigit(at(i + 1));
    return isDigit(c);
  };
  const tokens: Token[] = [];
  let i = 0;

  // Consumes an escape whose backslash is at s[j - 1]; returns [decoded, next index].
  function escape(j: number): [string, number] {
    if (j >= n) return ['\uFFFD', j];
    if (isHex(at(j))) {
      let k = j;
      while (k < n && k - j < 6 && isHex(at(k))) k += 1;
      const code = parseInt(s.slice(j, k), 16);
      if (isWs(at(k))) k += 1;
      const ok = code !== 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff);
      return [ok ? String.fromCodePoint(code) : '\uFFFD', k];
    }
    return [String.fromCodePoint(s.codePointAt(j)!), j + (s.codePointAt(j)! > 0xffff ? 2 : 1)];
  }

  function identSequence(j: number): [string, number] {
    let out = '';
    for (;;) {
      const c = at(j);
      if (isIdentChar(c)) {
        out += s[j];
        j += 1;
      } else if (validEscape(j)) {
        const [ch, k] = escape(j + 1);
        out += ch;
        j = k;
      } else return [out, j];
    }
  }

  function push(type: TokenType, start: number, end: number, value = '') {
    tokens.push({ type, text: s.slice(start, end), value });
  }

  while (i < n) {
    const start = i;
    const c = at(i);
    if (c === C.Slash && at(i + 1) === 42) {
      const close = s.indexOf('*/', i + 2);
      i = close < 0 ? n : close + 2;
      push('comment', start, i);
    } else if (isWs(c)) {
      while (isWs(at(i))) i += 1;
      push('ws', start, i);
    } else if (c === C.Quote || c === C.Apostrophe) {
      let value = '';
      let type: TokenType = 'string';
      i += 1;
      for (;;) {
        const d = at(i);
        if (d === c) {
          i += 1;
          break;
        }
        if (d === -1) break;
        if (d === C.Newline) {
          type = 'bad-string';
          break;
        }
        if (d === C.Backslash) {
          if (i + 1 >= n) i += 1;
          else if (at(i + 1) === C.Newline) i += 2;
          else {
            const [ch, k] = escape(i + 1);
            value += ch;
            i = k;
          }
        } else {
          value += s[i];
          i += 1;
        }
      }
      push(type, start, i, value);
    } else if (c === C.Hash) {
      if (isIdentChar(at(i + 1)) || validEscape(i + 1)) {
        const [name, k] = identSequence(i + 1);
        i = k;
        push('hash', start, i, name);
      } else {
        i += 1;
        push('delim', start, i, '#');
      }
    } else if (startsNumber(i)) {
      if (at(i) === C.Plus || at(i) === C.Minus) i += 1;
      while (isDigit(at(i))) i += 1;
      if (at(i) === C.Dot && isDigit(at(i + 1))) {
        i += 1;
        while (isDigit(at(i))) i += 1;
      }
      const e = at(i);
      if (
        (e === 69 || e === 101) &&
        (isDigit(at(i + 1)) || ((at(i + 1) === C.Plus || at(i + 1) === C.Minus) && isDigit(at(i + 2))))
      ) {
        i += 2;
        while (isDigit(at(i))) i += 1;
      }
      if (startsIdent(i)) i = identSequence(i)[1];
      else if (at(i) === C.Percent) i += 1;
      push('number', start, i);
    } else if (c === C.Minus && at(i + 1) === C.Minus && at(i + 2) === 62) {
      i += 3;
      push('cdc', start, i);
    } else if (c === C.Less && s.startsWith('!--', i + 1)) {
      i += 4;
      push('cdo', start, i);
    } else if (c === C.At && startsIdent(i + 1)) {
      const [name, k] = identSequence(i + 1);
      i = k;
      push('at', start, i, name);
    } else if (startsIdent(i)) {
      const [name, k] = identSequence(i);
      i = k;
      if (at(i) !== C.LParen) {
        push('ident', start, i, name);
      } else if (name.toLowerCase() !== 'url') {
        i += 1;
        push('function', start, i, name);
      } else {
        i += 1;
        let j = i;
        while (isWs(at(j))) j += 1;
        if (at(j) === C.Quote || at(j) === C.Apostrophe) {
          // url("...") is a function token followed by a string.
          push('function', start, i, name);
        } else {
          i = j;
          let url = '';
          let type: TokenType = 'url';
          for (;;) {
            const d = at(i);
            if (d === C.RParen) {
              i += 1;
              break;
            }
            if (d === -1) break;
            if (isWs(d)) {
              while (isWs(at(i))) i += 1;
              if (at(i) === C.RParen) {
                i += 1;
                break;
              }
              if (at(i) === -1) break;
              type = 'bad-url';
            } else if (d === C.Quote || d === C.Apostrophe || d === C.LParen || isNonPrintable(d)) {
              type = 'bad-url';
            } else if (d === C.Backslash) {
              if (validEscape(i)) {
                const [ch, k] = escape(i + 1);
                url += ch;
                i = k;
                continue;
              }
              type = 'bad-url';
            } else {
              url += s[i];
              i += 1;
              continue;
            }
            if (type === 'bad-url') {
              // Remnants of a bad URL: up to `)` or the end, escapes skipped.
              while (i < n && at(i) !== C.RParen) i += validEscape(i) ? 2 : 1;
              if (i < n) i += 1;
              break;
            }
          }
          push(type, start, i, url);
        }
      }
    } else {
      i += 1;
      const single: Record<number, TokenType> = {
        [C.LParen]: '(',
        [C.RParen]: ')',
        [C.Comma]: ',',
        [C.Colon]: ':',
        [C.Semicolon]: ';',
        [C.LBracket]: '[',
        [C.RBracket]: ']',
        [C.LBrace]: '{',
        [C.RBrace]: '}',
      };
      const type = single[c];
      if (type) push(type, start, i);
      else {
        // A lone backslash (invalid escape) or any other character; surrogate pairs stay whole.
        if (c >= 0xd800 && c <= 0xdbff && i < n) i += 1;
        push('delim', start, i, s.slice(start, i));
      }
    }
  }
  return tokens;
}

const CLOSER: Partial<Record<TokenType, TokenType>> = { '{': '}', '[': ']', '(': ')', function: ')' };

/**
 * Index after the component value starting at `i` (a whole block when `i` opens one). Inside a
 * block only its own closer ends it, as in browsers; iterative, so deep nesting cannot overflow.
 */
function componentEnd(t: Token[], i: number): number {
  const first = CLOSER[t[i].type];
  if (!first) return i + 1;
  const stack: TokenType[] = [first];
  let j = i + 1;
  while (j < t.length && stack.length > 0) {
    const type = t[j].type;
    if (type === stack[stack.length - 1]) stack.pop();
    else {
      const closer = CLOSER[type];
      if (closer) stack.push(closer);
    }
    j += 1;
  }
  return j;
}

interface Rule {
  kind: 'style' | 'at';
  name: string;
  prelude: Token[];
  /** Tokens between the braces; null for a statement at-rule (`@import ...;`). */
  body: Token[] | null;
}

interface Declaration {
  kind: 'decl';
  name: string;
  /** Name as written (escapes kept) and value tokens. */
  nameToken: Token;
  value: Token[];
}

/** The contents of a `{}` block, without its braces (an unclosed block runs to the end). */
function blockBody(t: Token[], open: number, end: number): Token[] {
  const closed = end - 1 > open && t[end - 1].type === '}';
  return t.slice(open + 1, closed ? end - 1 : end);
}

/** A list of rules: a stylesheet, or the inside of `@media {}` and similar. */
function parseRules(t: Token[]): Rule[] {
  const rules: Rule[] = [];
  let i = 0;
  while (i < t.length) {
    const tok = t[i];
    if (tok.type === 'ws' || tok.type === 'comment' || tok.type === 'cdo' || tok.type === 'cdc') {
      i += 1;
      continue;
    }
    const isAt = tok.type === 'at';
    const start = isAt ? i + 1 : i;
    let j = start;
    let rule: Rule | null = null;
    while (j < t.length) {
      const type = t[j].type;
      if (isAt && type === ';') {
        rule = { kind: 'at', name: tok.value.toLowerCase(), prelude: t.slice(start, j), body: null };
        j += 1;
        break;
      }
      if (type === '{') {
        const end = componentEnd(t, j);
        rule = {
          kind: isAt ? 'at' : 'style',
          name: isAt ? tok.value.toLowerCase() : '',
          prelude: t.slice(start, j),
          body: blockBody(t, j, end),
        };
        j = end;
        break;
      }
      j = componentEnd(t, j);
    }
    if (rule) rules.push(rule);
    i = j;
  }
  return rules;
}

/** The contents of a style rule: declarations, nested rules and nested at-rules, in order. */
function parseBlockContents(t: Token[]): (Declaration | Rule)[] {
  const items: (Declaration | Rule)[] = [];
  let i = 0;
  while (i < t.length) {
    const tok = t[i];
    if (tok.type === 'ws' || tok.type === 'comment' || tok.type === ';') {
      i += 1;
      continue;
    }
    if (tok.type === 'at') {
      const { rule, end } = parseAtRuleAt(t, i);
      if (rule) items.push(rule);
      i = end;
      continue;
    }
    // A declaration runs to `;`; meeting a `{}` block first makes it a nested rule (CSS nesting).
    let j = i;
    let block = -1;
    while (j < t.length && t[j].type !== ';') {
      if (t[j].type === '{') {
        block = j;
        break;
      }
      j = componentEnd(t, j);
    }
    if (block >= 0) {
      const end = componentEnd(t, block);
      const custom = tok.type === 'ident' && tok.value.startsWith('--');
      if (custom) {
        // A custom property holding a {} block: dropped, up to its `;`.
        let k = end;
        while (k < t.length && t[k].type !== ';') k = componentEnd(t, k);
        i = k;
        continue;
      }
      items.push({ kind: 'style', name: '', prelude: t.slice(i, block), body: blockBody(t, block, end) });
      i = end;
      continue;
    }
    const decl = asDeclaration(t.slice(i, j));
    if (decl) items.push(decl);
    i = j;
  }
  return items;
}

/** One at-rule starting at `i` inside block contents. */
function parseAtRuleAt(t: Token[], i: number): { rule: Rule | null; end: number } {
  const name = t[i].value.toLowerCase();
  let j = i + 1;
  while (j < t.length) {
    if (t[j].type === ';')
      return { rule: { kind: 'at', name, prelude: t.slice(i + 1, j), body: null }, end: j + 1 };
    if (t[j].type === '{') {
      const end = componentEnd(t, j);
      return { rule: { kind: 'at', name, prelude: t.slice(i + 1, j), body: blockBody(t, j, end) }, end };
    }
    j = componentEnd(t, j);
  }
  return { rule: null, end: j };
}

function asDeclaration(t: Token[]): Declaration | null {
  const first = t[0];
  if (!first || first.type !== 'ident') return null;
  let k = 1;
  while (k < t.length && (t[k].type === 'ws' || t[k].type === 'comment')) k += 1;
  if (t[k]?.type !== ':') return null;
  return { kind: 'decl', name: first.value.toLowerCase(), nameToken: first, value: trim(t.slice(k + 1)) };
}

function trim(t: Token[]): Token[] {
  let a = 0;
  let b = t.length;
  while (a < b && (t[a].type === 'ws' || t[a].type === 'comment')) a += 1;
  while (b > a && (t[b - 1].type === 'ws' || t[b - 1].type === 'comment')) b -= 1;
  return t.slice(a, b);
}

/**
 * True when `t` can be emitted as one piece (selector, prelude, value) and will be parsed back by
 * a browser as exactly that piece: brackets balanced, no braces, semicolons, bad tokens or `<`.
 */
function selfContained(t: Token[]): boolean {
  const stack: TokenType[] = [];
  for (const tok of t) {
    switch (tok.type) {
      case '{':
      case '}':
      case ';':
      case 'bad-string':
      case 'bad-url':
      case 'cdo':
      case 'cdc':
      case 'at':
        return false;
      case '(':
      case 'function':
        stack.push(')');
        break;
      case '[':
        stack.push(']');
        break;
      case ')':
      case ']':
        if (stack.pop() !== tok.type) return false;
        break;
      case 'delim':
        if (tok.value === '<' || tok.value === '\\') return false;
        break;
      case 'string':
        // An unterminated string at the end of the input would swallow what we append.
        if (!closesString(tok.text)) return false;
        break;
      case 'url':
        if (!tok.text.endsWith(')')) return false;
        break;
      case 'comment':
        if (!tok.text.endsWith('*/') || tok.text.length < 4) return false;
        break;
    }
  }
  return stack.length === 0;
}

/** True when a string token's text ends with its own (unescaped) closing quote. */
function closesString(text: string): boolean {
  if (text.length < 2 || text[text.length - 1] !== text[0]) return false;
  let backslashes = 0;
  for (let k = text.length - 2; k > 0 && text[k] === '\\'; k -= 1) backslashes += 1;
  return backslashes % 2 === 0;
}

/** Source text of tokens with every `<` escaped; comments become empty comments. */
function serialize(t: Token[]): string {
  let out = '';
  for (const tok of t) {
    if (tok.type === 'comment') out += '/**/';
    else out += tok.text.includes('<') ? tok.text.replace(/\\</g, '\\3c ').replace(/</g, '\\3c ') : tok.text;
  }
  return out;
}

/** Serializes an identifier (e.g. a renamed keyframes name) with CSS escapes where needed. */
function serializeIdent(name: string): string {
  let out = '';
  for (let k = 0; k < name.length; k += 1) {
    const c = name.charCodeAt(k);
    const safe =
      isLetter(c) ||
      c === 95 ||
      c >= 0x80 ||
      (k > 0 && (isDigit(c) || c === C.Minus)) ||
      (k === 0 && c === C.Minus && name.length > 1 && !isDigit(name.charCodeAt(1)));
    out += safe && c !== 0x3c ? name[k] : `\\${c.toString(16)} `;
  }
  return out;
}

const ALLOWED_URL = /^(?:https:\/\/|data:image\/(?:png|gif|jpeg|jpg|webp|avif|svg\+xml)[;,])/i;
const URL_FUNCTIONS = new Set([
  'url',
  'src',
  'image',
  'image-set',
  '-webkit-image-set',
  'cross-fade',
  '-webkit-cross-fade',
]);
const FORBIDDEN_FUNCTIONS = new Set(['expression', 'element', '-moz-element', 'paint']);
const FORBIDDEN_PROPERTIES = new Set(['behavior', '-ms-behavior', '-moz-binding']);
const ANIMATION_PROPERTIES = new Set([
  'animation',
  'animation-name',
  '-webkit-animation',
  '-webkit-animation-name',
]);
const KEYFRAMES = new Set(['keyframes', '-webkit-keyframes', '-moz-keyframes']);
const CONDITIONAL = new Set(['media', 'supports', 'container', 'starting-style']);

/** False when a declaration value could load a resource we do not allow, or run script. */
function safeValue(t: Token[]): boolean {
  const urlFunctionDepth: boolean[] = [];
  for (const tok of t) {
    if (tok.type === 'url' && !ALLOWED_URL.test(tok.value.trim())) return false;
    if (tok.type === 'function') {
      const name = tok.value.toLowerCase();
      if (FORBIDDEN_FUNCTIONS.has(name)) return false;
      urlFunctionDepth.push(URL_FUNCTIONS.has(name) || urlFunctionDepth.includes(true));
    } else if (tok.type === '(') urlFunctionDepth.push(urlFunctionDepth.includes(true));
    else if (tok.type === ')') urlFunctionDepth.pop();
    else if (
      tok.type === 'string' &&
      urlFunctionDepth.includes(true) &&
      !ALLOWED_URL.test(tok.value.trim())
    ) {
      return false;
    } else if (tok.type === 'ident' && /^(?:javascript|vbscript):?$/i.test(tok.value)) return false;
  }
  return true;
}

/** Splits tokens at top-level commas (outside blocks and functions). */
function splitTopLevel(t: Token[], type: TokenType): Token[][] {
  const parts: Token[][] = [];
  let current: Token[] = [];
  let i = 0;
  while (i < t.length) {
    if (t[i].type === type) {
      parts.push(current);
      current = [];
      i += 1;
      continue;
    }
    const end = componentEnd(t, i);
    for (let k = i; k < end; k += 1) current.push(t[k]);
    i = end;
  }
  parts.push(current);
  return parts;
}

const COMBINATORS = new Set(['>', '+', '~']);

/** Scopes one complex selector (already self-contained and trimmed). */
function scopeSelector(sel: Token[], root: string): string {
  // Leading `:root`, `html` and `body` compounds stand for the widget root itself.
  let i = 0;
  let rootLike = false;
  let qualifiers = '';
  let combinator = ' ';
  for (;;) {
    const tok = sel[i];
    let skip = 0;
    if (tok?.type === 'ident' && /^(?:html|body)$/i.test(tok.value)) skip = 1;
    else if (tok?.type === ':' && sel[i + 1]?.type === 'ident' && sel[i + 1].value.toLowerCase() === 'root')
      skip = 2;
    if (skip === 0) break;
    rootLike = true;
    let j = i + skip;
    // The rest of the compound: up to whitespace or a combinator at the top level.
    const qualifierStart = j;
    while (
      j < sel.length &&
      sel[j].type !== 'ws' &&
      !(sel[j].type === 'delim' && COMBINATORS.has(sel[j].value))
    ) {
      j = componentEnd(sel, j);
    }
    qualifiers += serialize(sel.slice(qualifierStart, j));
    combinator = ' ';
    while (
      j < sel.length &&
      (sel[j].type === 'ws' || (sel[j].type === 'delim' && COMBINATORS.has(sel[j].value)))
    ) {
      if (sel[j].type === 'delim') combinator = ` ${sel[j].value} `;
      j += 1;
    }
    i = j;
  }
  if (!rootLike) return `${root} ${serialize(sel)}`;
  const rest = serialize(sel.slice(i));
  return rest ? `${root}${qualifiers}${combinator}${rest}` : `${root}${qualifiers}`;
}

/** Scopes a top-level selector list; null when no selector survives. */
function scopeSelectorList(prelude: Token[], root: string): string[] | null {
  const trimmed = trim(prelude);
  if (trimmed.length === 0 || !selfContained(trimmed)) return null;
  const out: string[] = [];
  for (const part of splitTopLevel(trimmed, ',')) {
    const sel = trim(part);
    if (sel.length > 0) out.push(scopeSelector(sel, root));
  }
  return out.length > 0 ? out : null;
}

/** Flattens a nested selector list against its (scoped) parent, then scopes the result again. */
function flattenNested(prelude: Token[], parent: string[], root: string): string[] | null {
  const trimmed = trim(prelude);
  if (trimmed.length === 0 || !selfContained(trimmed)) return null;
  const is = `:is(${parent.join(',')})`;
  const out: string[] = [];
  for (const part of splitTopLevel(trimmed, ',')) {
    const sel = trim(part);
    if (sel.length === 0) continue;
    const hasAmpersand = sel.some((tok) => tok.type === 'delim' && tok.value === '&');
    const text = sel
      .map((tok) => (tok.type === 'delim' && tok.value === '&' ? is : serialize([tok])))
      .join('');
    const flat = hasAmpersand ? text : `${is} ${text}`;
    // Re-tokenize the flattened text to scope it like a top-level selector.
    const tokens = trim(tokenize(flat));
    if (selfContained(tokens)) out.push(scopeSelector(tokens, root));
  }
  return out.length > 0 ? out : null;
}

/** Nesting deeper than this (blocks in blocks) is dropped rather than followed. */
const MAX_DEPTH = 16;
/** A flattened selector list longer than this is dropped (nested lists multiply). */
const MAX_SELECTOR_CHARS = 16 * 1024;

class Scoper {
  private budget: number;

  constructor(
    private readonly root: string,
    private readonly keyframes: Map<string, string>,
    /** Output characters allowed; nesting could otherwise grow the output exponentially. */
    budget: number,
  ) {
    this.budget = budget;
  }

  private emit(out: string[], text: string): void {
    if (this.budget < text.length) return;
    this.budget -= text.length;
    out.push(text);
  }

  declaration(d: Declaration): string | null {
    if (FORBIDDEN_PROPERTIES.has(d.name) || d.value.length === 0) return null;
    if (!selfContained(d.value) || !safeValue(d.value)) return null;
    let value = serialize(d.value);
    if (ANIMATION_PROPERTIES.has(d.name) && this.keyframes.size > 0) {
      value = d.value
        .map((tok) => {
          const renamed = (tok.type === 'ident' || tok.type === 'string') && this.keyframes.get(tok.value);
          return renamed ? serializeIdent(renamed) : serialize([tok]);
        })
        .join('');
    }
    return `${serialize([d.nameToken])}:${value}`;
  }

  /** A list of rules (stylesheet or conditional group body). */
  rules(t: Token[], out: string[], depth = 0): void {
    if (depth > MAX_DEPTH) return;
    for (const rule of parseRules(t)) {
      if (rule.kind === 'style') {
        const selectors = scopeSelectorList(rule.prelude, this.root);
        if (selectors && rule.body) this.styleBlock(selectors, rule.body, out, depth + 1);
      } else this.atRule(rule, out, null, depth + 1);
    }
  }

  /** An at-rule at the top level (parent null) or nested in a style rule. */
  private atRule(rule: Rule, out: string[], parent: string[] | null, depth: number): void {
    if (!rule.body || depth > MAX_DEPTH) return;
    if (CONDITIONAL.has(rule.name)) {
      const prelude = trim(rule.prelude);
      if (
        !selfContained(prelude) ||
        prelude.some(
          (tok) =>
            tok.type === 'url' || (tok.type === 'function' && URL_FUNCTIONS.has(tok.value.toLowerCase())),
        )
      )
        return;
      const inner: string[] = [];
      if (parent) this.styleBlock(parent, rule.body, inner, depth);
      else this.rules(rule.body, inner, depth);
      if (inner.length > 0) out.push(`@${rule.name} ${serialize(prelude)}{${inner.join('')}}`);
    } else if (rule.name === 'layer') {
      if (parent) this.styleBlock(parent, rule.body, out, depth);
      else this.rules(rule.body, out, depth);
    } else if (KEYFRAMES.has(rule.name) && !parent) {
      this.keyframesRule(rule, out);
    }
    // Anything else is page-global (fonts, imports, properties, layers' order...): dropped.
  }

  private keyframesRule(rule: Rule, out: string[]): void {
    const prelude = trim(rule.prelude);
    if (prelude.length !== 1 || (prelude[0].type !== 'ident' && prelude[0].type !== 'string')) return;
    const renamed = this.keyframes.get(prelude[0].value);
    if (!renamed) return;
    const frames: string[] = [];
    for (const frame of parseRules(rule.body!)) {
      if (frame.kind !== 'style' || !frame.body) continue;
      const selector = trim(frame.prelude);
      const valid =
        selector.length > 0 &&
        selector.every(
          (tok) => tok.type === 'ws' || tok.type === ',' || tok.type === 'number' || tok.type === 'ident',
        );
      if (!valid) continue;
      const decls = parseBlockContents(frame.body)
        .map((item) => (item.kind === 'decl' ? this.declaration(item) : null))
        .filter((d): d is string => d !== null);
      frames.push(`${serialize(selector)}{${decls.join(';')}}`);
    }
    this.emit(out, `@${rule.name} ${serializeIdent(renamed)}{${frames.join('')}}`);
  }

  /** A style rule's block for already-scoped selectors; nested rules are flattened after it. */
  private styleBlock(selectors: string[], body: Token[], out: string[], depth: number): void {
    if (depth > MAX_DEPTH) return;
    let decls: string[] = [];
    const flush = () => {
      if (decls.length > 0) this.emit(out, `${selectors.join(',')}{${decls.join(';')}}`);
      decls = [];
    };
    for (const item of parseBlockContents(body)) {
      if (item.kind === 'decl') {
        const decl = this.declaration(item);
        if (decl) decls.push(decl);
      } else if (item.kind === 'style') {
        flush();
        const nested = flattenNested(item.prelude, selectors, this.root);
        if (nested && item.body && nested.join(',').length <= MAX_SELECTOR_CHARS) {
          this.styleBlock(nested, item.body, out, depth + 1);
        }
      } else {
        flush();
        this.atRule(item, out, selectors, depth + 1);
      }
    }
    flush();
  }
}

/** Names declared by `@keyframes` anywhere in the sheet. */
function keyframeNames(t: Token[]): string[] {
  const names: string[] = [];
  for (let i = 0; i < t.length; i += 1) {
    if (t[i].type !== 'at' || !KEYFRAMES.has(t[i].value.toLowerCase())) continue;
    let j = i + 1;
    while (t[j]?.type === 'ws' || t[j]?.type === 'comment') j += 1;
    if (t[j]?.type === 'ident' || t[j]?.type === 'string') names.push(t[j].value);
  }
  return names;
}

/**
 * Rewrites `css` so it applies only inside the element matched by `rootSelector` (e.g.
 * `[data-tp-widget="w1a2b3"]`), renaming keyframes with `suffix`. Never throws; whatever cannot be
 * scoped safely is dropped. The result contains no `<`.
 */
export function scopeCss(css: string, rootSelector: string, suffix: string): string {
  if (!css) return '';
  const tokens = tokenize(css);
  const keyframes = new Map(keyframeNames(tokens).map((name) => [name, `${name}-${suffix}`] as const));
  const out: string[] = [];
  new Scoper(rootSelector, keyframes, 4 * css.length + 4096).rules(tokens, out);
  return out.join('\n');
}
