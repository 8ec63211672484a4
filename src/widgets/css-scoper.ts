import { TokenType, tokenize, type CSSToken } from '@csstools/css-tokenizer';
import {
  isCommentNode,
  isFunctionNode,
  isSimpleBlockNode,
  isTokenNode,
  isWhitespaceNode,
  parseListOfComponentValues,
  type ComponentValue,
} from '@csstools/css-parser-algorithms';

/**
 * Scopes a widget's (hostile) stylesheet to the widget's root element.
 *
 * The input is tokenized and parsed into component values (blocks and functions matched) by
 * @csstools/css-tokenizer and @csstools/css-parser-algorithms, which follow CSS Syntax Level 3 as
 * browsers do; rules and declarations are read from those, and the output is re-serialized from
 * that structure: every emitted selector, prelude and value is checked to be self-contained
 * (balanced, no braces or semicolons, no bad strings or URLs), so however the input was crafted the
 * browser parses the output into exactly the rules we wrote, and no `<` survives (it is escaped as
 * `\3c `), so `</style>` or `<!--` cannot appear.
 *
 * Guarantee: no emitted selector matches an element outside the root. Every selector is the root
 * selector followed by a descendant or child combinator, or by qualifiers of the root itself.
 *
 * Policy:
 * - every selector is prefixed by the root selector (descendant); a leading `:root`, `html` or
 *   `body` compound becomes the root itself (`body > p` → `[root] > p`), and is dropped when a
 *   sibling (`~`, `+`) or any other combinator but descendant and child follows it (the root's
 *   siblings are outside); a selector starting with a combinator is dropped;
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

type Nodes = ComponentValue[];

interface Rule {
  kind: 'style' | 'at';
  /** At-rule name, lowercase, without `@`. */
  name: string;
  prelude: Nodes;
  /** Contents of the `{}` block; null for a statement at-rule (`@import ...;`). */
  body: Nodes | null;
}

interface Declaration {
  kind: 'decl';
  name: string;
  /** Name as written (escapes kept). */
  nameToken: CSSToken;
  value: Nodes;
}

const tokenOf = (node: ComponentValue | undefined): CSSToken | null =>
  node && isTokenNode(node) ? node.value : null;
const isType = (node: ComponentValue | undefined, type: TokenType) => tokenOf(node)?.[0] === type;
const isSkippable = (node: ComponentValue) => isWhitespaceNode(node) || isCommentNode(node);
const tokenValue = (token: CSSToken): string => {
  const data = token[4] as { value?: unknown } | undefined;
  return typeof data?.value === 'string' ? data.value : '';
};
const isCurlyBlock = (node: ComponentValue) =>
  isSimpleBlockNode(node) && node.startToken[0] === TokenType.OpenCurly;

function trim(nodes: Nodes): Nodes {
  let a = 0;
  let b = nodes.length;
  while (a < b && isSkippable(nodes[a])) a += 1;
  while (b > a && isSkippable(nodes[b - 1])) b -= 1;
  return nodes.slice(a, b);
}

/**
 * Parses CSS text into component values (CSS Syntax §3.3 preprocessing first); empty when the
 * parser gives up (blocks nested more than 512 deep): such a sheet is dropped whole.
 */
function componentValues(css: string): Nodes {
  const text = css.replace(/\r\n?|\f/g, '\n').replace(/\0/g, '\uFFFD');
  try {
    return parseListOfComponentValues(tokenize({ css: text }));
  } catch {
    return [];
  }
}

/** A list of rules: a stylesheet, or the inside of `@media {}` and similar. */
function parseRules(nodes: Nodes): Rule[] {
  const rules: Rule[] = [];
  let i = 0;
  while (i < nodes.length) {
    const node = nodes[i];
    if (isSkippable(node) || isType(node, TokenType.CDO) || isType(node, TokenType.CDC)) {
      i += 1;
      continue;
    }
    const at = isType(node, TokenType.AtKeyword) ? tokenOf(node)! : null;
    const start = at ? i + 1 : i;
    let j = start;
    let rule: Rule | null = null;
    for (; j < nodes.length; j += 1) {
      if (at && isType(nodes[j], TokenType.Semicolon)) {
        rule = { kind: 'at', name: tokenValue(at).toLowerCase(), prelude: nodes.slice(start, j), body: null };
        break;
      }
      const block = nodes[j];
      if (isCurlyBlock(block) && isSimpleBlockNode(block)) {
        rule = {
          kind: at ? 'at' : 'style',
          name: at ? tokenValue(at).toLowerCase() : '',
          prelude: nodes.slice(start, j),
          body: block.value,
        };
        break;
      }
    }
    if (rule) rules.push(rule);
    i = j + 1;
  }
  return rules;
}

/** The contents of a style rule: declarations, nested rules and nested at-rules, in order. */
function parseBlockContents(nodes: Nodes): (Declaration | Rule)[] {
  const items: (Declaration | Rule)[] = [];
  let i = 0;
  while (i < nodes.length) {
    const node = nodes[i];
    if (isSkippable(node) || isType(node, TokenType.Semicolon)) {
      i += 1;
      continue;
    }
    if (isType(node, TokenType.AtKeyword)) {
      const rule = parseRules(nodes.slice(i, nextStatementEnd(nodes, i + 1) + 1))[0];
      if (rule) items.push(rule);
      i = nextStatementEnd(nodes, i + 1) + 1;
      continue;
    }
    // A declaration runs to `;`; meeting a `{}` block first makes it a nested rule (CSS nesting).
    let j = i;
    while (j < nodes.length && !isType(nodes[j], TokenType.Semicolon) && !isCurlyBlock(nodes[j])) j += 1;
    const block = nodes[j];
    if (block && isCurlyBlock(block) && isSimpleBlockNode(block)) {
      const name = tokenOf(node);
      if (name?.[0] === TokenType.Ident && tokenValue(name).startsWith('--')) {
        // A custom property holding a {} block: dropped, up to its `;`.
        while (j < nodes.length && !isType(nodes[j], TokenType.Semicolon)) j += 1;
        i = j + 1;
        continue;
      }
      items.push({ kind: 'style', name: '', prelude: nodes.slice(i, j), body: block.value });
      i = j + 1;
      continue;
    }
    const decl = asDeclaration(nodes.slice(i, j));
    if (decl) items.push(decl);
    i = j + 1;
  }
  return items;
}

/** Index of the `;` or `{}` block ending the at-rule whose prelude starts at `from` (or the last index). */
function nextStatementEnd(nodes: Nodes, from: number): number {
  for (let j = from; j < nodes.length; j += 1) {
    if (isType(nodes[j], TokenType.Semicolon) || isCurlyBlock(nodes[j])) return j;
  }
  return nodes.length - 1;
}

function asDeclaration(nodes: Nodes): Declaration | null {
  const name = tokenOf(nodes[0]);
  if (!name || name[0] !== TokenType.Ident) return null;
  let k = 1;
  while (k < nodes.length && isSkippable(nodes[k])) k += 1;
  if (!isType(nodes[k], TokenType.Colon)) return null;
  return {
    kind: 'decl',
    name: tokenValue(name).toLowerCase(),
    nameToken: name,
    value: trim(nodes.slice(k + 1)),
  };
}

/** Every token of `nodes`, blocks and functions flattened (their end tokens included). */
function flatTokens(nodes: Nodes): CSSToken[] {
  const out: CSSToken[] = [];
  for (const node of nodes) out.push(...node.tokens());
  return out;
}

/**
 * True when `nodes` can be emitted as one piece (selector, prelude, value) and will be parsed back
 * by a browser as exactly that piece: every block and function closed, no braces, semicolons, bad
 * tokens, at-keywords or `<`, strings and comments terminated.
 */
function selfContained(nodes: Nodes): boolean {
  for (const node of nodes) {
    if (isFunctionNode(node) && node.endToken[0] !== TokenType.CloseParen) return false;
    if (isSimpleBlockNode(node)) {
      if (node.startToken[0] === TokenType.OpenCurly) return false;
      if (node.endToken[0] === TokenType.EOF) return false;
    }
    if ((isFunctionNode(node) || isSimpleBlockNode(node)) && !selfContained(node.value)) return false;
    if (isCommentNode(node) && (node.value[1].length < 4 || !node.value[1].endsWith('*/'))) return false;
    const token = tokenOf(node);
    if (!token) continue;
    switch (token[0]) {
      case TokenType.OpenCurly:
      case TokenType.CloseCurly:
      case TokenType.CloseParen:
      case TokenType.CloseSquare:
      case TokenType.Semicolon:
      case TokenType.BadString:
      case TokenType.BadURL:
      case TokenType.CDO:
      case TokenType.CDC:
      case TokenType.AtKeyword:
      case TokenType.EOF:
        return false;
      case TokenType.Delim:
        if (tokenValue(token) === '<' || tokenValue(token) === '\\') return false;
        break;
      case TokenType.String:
        // An unterminated string at the end of the input would swallow what we append.
        if (!closesString(token[1])) return false;
        break;
      case TokenType.URL:
        if (!token[1].endsWith(')')) return false;
        break;
    }
  }
  return true;
}

/** True when a string token's text ends with its own (unescaped) closing quote. */
function closesString(text: string): boolean {
  if (text.length < 2 || text[text.length - 1] !== text[0]) return false;
  let backslashes = 0;
  for (let k = text.length - 2; k > 0 && text[k] === '\\'; k -= 1) backslashes += 1;
  return backslashes % 2 === 0;
}

/** Source text of tokens with every `<` escaped; comments become empty comments. */
function serializeTokens(tokens: CSSToken[]): string {
  let out = '';
  for (const token of tokens) {
    const text = token[1];
    if (token[0] === TokenType.Comment) out += '/**/';
    else out += text.includes('<') ? text.replace(/\\</g, '\\3c ').replace(/</g, '\\3c ') : text;
  }
  return out;
}

const serialize = (nodes: Nodes) => serializeTokens(flatTokens(nodes));

const isLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isDigit = (c: number) => c >= 48 && c <= 57;

/** Serializes an identifier (e.g. a renamed keyframes name) with CSS escapes where needed. */
function serializeIdent(name: string): string {
  let out = '';
  for (let k = 0; k < name.length; k += 1) {
    const c = name.charCodeAt(k);
    const safe =
      isLetter(c) ||
      c === 95 ||
      c >= 0x80 ||
      (k > 0 && (isDigit(c) || c === 45)) ||
      (k === 0 && c === 45 && name.length > 1 && !isDigit(name.charCodeAt(1)));
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
function safeValue(nodes: Nodes, inUrlFunction = false): boolean {
  for (const node of nodes) {
    if (isFunctionNode(node)) {
      const name = node.getName().toLowerCase();
      if (FORBIDDEN_FUNCTIONS.has(name)) return false;
      if (!safeValue(node.value, inUrlFunction || URL_FUNCTIONS.has(name))) return false;
      continue;
    }
    if (isSimpleBlockNode(node)) {
      if (!safeValue(node.value, inUrlFunction)) return false;
      continue;
    }
    const token = tokenOf(node);
    if (!token) continue;
    if (token[0] === TokenType.URL && !ALLOWED_URL.test(tokenValue(token).trim())) return false;
    if (token[0] === TokenType.String && inUrlFunction && !ALLOWED_URL.test(tokenValue(token).trim()))
      return false;
    if (token[0] === TokenType.Ident && /^(?:javascript|vbscript):?$/i.test(tokenValue(token))) return false;
  }
  return true;
}

/** Splits at top-level commas (commas inside blocks and functions belong to them). */
function splitCommas(nodes: Nodes): Nodes[] {
  const parts: Nodes[] = [[]];
  for (const node of nodes) {
    if (isType(node, TokenType.Comma)) parts.push([]);
    else parts[parts.length - 1].push(node);
  }
  return parts;
}

const COMBINATORS = new Set(['>', '+', '~']);
const isCombinator = (node: ComponentValue | undefined) =>
  isType(node, TokenType.Delim) && COMBINATORS.has(tokenValue(tokenOf(node)!));

/** Length of a leading `html`, `body` or `:root` at `i` (0 when there is none). */
function rootLikeAt(sel: Nodes, i: number): number {
  const token = tokenOf(sel[i]);
  if (token?.[0] === TokenType.Ident && /^(?:html|body)$/i.test(tokenValue(token))) return 1;
  const next = tokenOf(sel[i + 1]);
  if (
    token?.[0] === TokenType.Colon &&
    next?.[0] === TokenType.Ident &&
    tokenValue(next).toLowerCase() === 'root'
  )
    return 2;
  return 0;
}

/**
 * Scopes one complex selector (self-contained and trimmed); null when it could match outside the
 * root (a sibling of the root, or a selector starting with a combinator).
 */
function scopeSelector(sel: Nodes, root: string): string | null {
  if (isCombinator(sel[0])) return null;
  // Leading `:root`, `html` and `body` compounds stand for the widget root itself.
  let i = 0;
  let rootLike = false;
  let qualifiers = '';
  let combinator = ' ';
  for (;;) {
    const skip = rootLikeAt(sel, i);
    if (skip === 0) break;
    rootLike = true;
    let j = i + skip;
    // The rest of the compound: up to whitespace or a combinator.
    const qualifierStart = j;
    while (j < sel.length && !isSkippable(sel[j]) && !isCombinator(sel[j])) j += 1;
    qualifiers += serialize(sel.slice(qualifierStart, j));
    combinator = ' ';
    while (j < sel.length && (isSkippable(sel[j]) || isCombinator(sel[j]))) {
      if (isCombinator(sel[j])) {
        const value = tokenValue(tokenOf(sel[j])!);
        // The root's siblings are outside it: only descendants and children stay inside.
        if (value !== '>' || combinator !== ' ') return null;
        combinator = ' > ';
      }
      j += 1;
    }
    i = j;
  }
  if (!rootLike) return `${root} ${serialize(sel)}`;
  const rest = serialize(sel.slice(i));
  return rest ? `${root}${qualifiers}${combinator}${rest}` : `${root}${qualifiers}`;
}

/** Scopes each selector of a list; null when none survives. */
function scopeSelectors(list: Nodes, root: string): string[] | null {
  const out: string[] = [];
  for (const part of splitCommas(list)) {
    const sel = trim(part);
    if (sel.length === 0) continue;
    const scoped = scopeSelector(sel, root);
    if (scoped !== null) out.push(scoped);
  }
  return out.length > 0 ? out : null;
}

/** Scopes a top-level selector list; null when no selector survives. */
function scopeSelectorList(prelude: Nodes, root: string): string[] | null {
  const trimmed = trim(prelude);
  if (trimmed.length === 0 || !selfContained(trimmed)) return null;
  return scopeSelectors(trimmed, root);
}

/** Flattens a nested selector list against its (scoped) parent, then scopes the result again. */
function flattenNested(prelude: Nodes, parent: string[], root: string): string[] | null {
  const trimmed = trim(prelude);
  if (trimmed.length === 0 || !selfContained(trimmed)) return null;
  const is = `:is(${parent.join(',')})`;
  const flat: string[] = [];
  for (const part of splitCommas(trimmed)) {
    const sel = trim(part);
    if (sel.length === 0) continue;
    const tokens = flatTokens(sel);
    const hasAmpersand = tokens.some((t) => t[0] === TokenType.Delim && tokenValue(t) === '&');
    const text = tokens
      .map((t) => (t[0] === TokenType.Delim && tokenValue(t) === '&' ? is : serializeTokens([t])))
      .join('');
    flat.push(hasAmpersand ? text : `${is} ${text}`);
  }
  // Parsed again, to scope the flattened selectors like top-level ones.
  const reparsed = trim(componentValues(flat.join(',')));
  if (!selfContained(reparsed)) return null;
  return scopeSelectors(reparsed, root);
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
      value = flatTokens(d.value)
        .map((t) => {
          const renamed =
            (t[0] === TokenType.Ident || t[0] === TokenType.String) && this.keyframes.get(tokenValue(t));
          return renamed ? serializeIdent(renamed) : serializeTokens([t]);
        })
        .join('');
    }
    return `${serializeTokens([d.nameToken])}:${value}`;
  }

  /** A list of rules (stylesheet or conditional group body). */
  rules(nodes: Nodes, out: string[], depth = 0): void {
    if (depth > MAX_DEPTH) return;
    for (const rule of parseRules(nodes)) {
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
      const loads = flatTokens(prelude).some(
        (t) =>
          t[0] === TokenType.URL ||
          (t[0] === TokenType.Function && URL_FUNCTIONS.has(tokenValue(t).toLowerCase())),
      );
      if (!selfContained(prelude) || loads) return;
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
    const name = tokenOf(prelude[0]);
    if (prelude.length !== 1 || !name || (name[0] !== TokenType.Ident && name[0] !== TokenType.String))
      return;
    const renamed = this.keyframes.get(tokenValue(name));
    if (!renamed) return;
    const frames: string[] = [];
    for (const frame of parseRules(rule.body!)) {
      if (frame.kind !== 'style' || !frame.body) continue;
      const selector = trim(frame.prelude);
      const valid =
        selector.length > 0 &&
        selector.every((node) => {
          const type = isWhitespaceNode(node) ? TokenType.Whitespace : tokenOf(node)?.[0];
          return (
            type === TokenType.Whitespace ||
            type === TokenType.Comma ||
            type === TokenType.Percentage ||
            type === TokenType.Number ||
            type === TokenType.Ident
          );
        });
      if (!valid) continue;
      const decls = parseBlockContents(frame.body)
        .map((item) => (item.kind === 'decl' ? this.declaration(item) : null))
        .filter((d): d is string => d !== null);
      frames.push(`${serialize(selector)}{${decls.join(';')}}`);
    }
    this.emit(out, `@${rule.name} ${serializeIdent(renamed)}{${frames.join('')}}`);
  }

  /** A style rule's block for already-scoped selectors; nested rules are flattened after it. */
  private styleBlock(selectors: string[], body: Nodes, out: string[], depth: number): void {
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

/** Names declared by `@keyframes` anywhere in the sheet (top level and conditional groups). */
function keyframeNames(nodes: Nodes, names: string[] = [], depth = 0): string[] {
  if (depth > MAX_DEPTH) return names;
  for (let i = 0; i < nodes.length; i += 1) {
    const node = nodes[i];
    if (isSimpleBlockNode(node)) keyframeNames(node.value, names, depth + 1);
    const at = tokenOf(node);
    if (at?.[0] !== TokenType.AtKeyword || !KEYFRAMES.has(tokenValue(at).toLowerCase())) continue;
    let j = i + 1;
    while (j < nodes.length && isSkippable(nodes[j])) j += 1;
    const name = tokenOf(nodes[j]);
    if (name && (name[0] === TokenType.Ident || name[0] === TokenType.String)) names.push(tokenValue(name));
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
  const nodes = componentValues(css);
  const keyframes = new Map(keyframeNames(nodes).map((name) => [name, `${name}-${suffix}`] as const));
  const out: string[] = [];
  new Scoper(rootSelector, keyframes, 4 * css.length + 4096).rules(nodes, out);
  return out.join('\n');
}
