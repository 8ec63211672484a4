import { randomBytes } from 'node:crypto';

/**
 * JSON text carried as is: an addon's output on its way to a response, or a record already
 * serialised for its batch. {@link stringifyWithRawJson} splices it into the response text, so the
 * host never parses it into objects (nothing an addon returns can become a host object, let alone
 * a prototype) and never serialises it a second time.
 */
export class RawJson {
  constructor(readonly json: string) {}

  /**
   * Inside {@link stringifyWithRawJson}: a marker that is replaced by the text. Anywhere else
   * (a plain `JSON.stringify`, e.g. a logger): the parsed value, which is correct, only slower.
   */
  toJSON(): unknown {
    if (splicing === null) return JSON.parse(this.json);
    splicing.push(this.json);
    return MARKER;
  }
}

/**
 * Stands for a RawJson in the text `JSON.stringify` produces. The random part is never written
 * anywhere, so no other string of a response (all of which the serialiser writes quoted and
 * escaped) can equal it.
 */
const MARKER = `rawjson:${randomBytes(16).toString('hex')}`;
const QUOTED_MARKER = `"${MARKER}"`;

/** Texts of the RawJson values met by the `JSON.stringify` running now, in the order it met them. */
let splicing: string[] | null = null;

/**
 * `JSON.stringify` that writes each {@link RawJson} in `value` as its text. `JSON.stringify` meets
 * values in the order it writes them, so the n-th marker in its output is the n-th text recorded.
 */
export function stringifyWithRawJson(value: unknown): string | undefined {
  if (value instanceof RawJson) return value.json;
  const outer = splicing;
  const texts: string[] = [];
  splicing = texts;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } finally {
    splicing = outer;
  }
  if (texts.length === 0 || text === undefined) return text;
  let spliced = '';
  let from = 0;
  for (const raw of texts) {
    const at = text.indexOf(QUOTED_MARKER, from);
    if (at < 0) throw new Error('stringifyWithRawJson: a marker is missing from the output.');
    spliced += text.slice(from, at) + raw;
    from = at + QUOTED_MARKER.length;
  }
  return spliced + text.slice(from);
}

// What the validator reads next, and the containers it is inside.
const EXPECT_VALUE = 0;
const EXPECT_KEY = 1;
const EXPECT_AFTER_VALUE = 2;
const ARRAY = 0;
const OBJECT = 1;

/**
 * True when `text` is exactly one JSON value (RFC 8259), whitespace around it allowed: what
 * `JSON.parse` accepts. It builds nothing, so it checks the text another process hands over for
 * splicing at a fraction of the cost of parsing it.
 */
export function isJsonText(text: string): boolean {
  const end = text.length;
  const stack: number[] = [];
  let i = skipSpace(text, 0);
  let expect = EXPECT_VALUE;
  for (;;) {
    if (expect === EXPECT_VALUE) {
      const c = text.charCodeAt(i);
      if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        i = skipSpace(text, i + 1);
        const close = c === 0x7b ? 0x7d : 0x5d;
        if (text.charCodeAt(i) === close) {
          i += 1;
          expect = EXPECT_AFTER_VALUE;
        } else {
          stack.push(c === 0x7b ? OBJECT : ARRAY);
          expect = c === 0x7b ? EXPECT_KEY : EXPECT_VALUE;
        }
        continue;
      }
      if (c === 0x22 /* " */) i = skipString(text, i);
      else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) i = skipNumber(text, i);
      else if (c === 0x74 /* t */ && text.startsWith('true', i)) i += 4;
      else if (c === 0x66 /* f */ && text.startsWith('false', i)) i += 5;
      else if (c === 0x6e /* n */ && text.startsWith('null', i)) i += 4;
      else return false;
      if (i < 0) return false;
      expect = EXPECT_AFTER_VALUE;
    } else if (expect === EXPECT_KEY) {
      if (text.charCodeAt(i) !== 0x22) return false;
      i = skipString(text, i);
      if (i < 0) return false;
      i = skipSpace(text, i);
      if (text.charCodeAt(i) !== 0x3a /* : */) return false;
      i = skipSpace(text, i + 1);
      expect = EXPECT_VALUE;
    } else {
      i = skipSpace(text, i);
      if (stack.length === 0) return i === end;
      const c = text.charCodeAt(i);
      const top = stack[stack.length - 1];
      if (c === 0x2c /* , */) {
        i = skipSpace(text, i + 1);
        expect = top === OBJECT ? EXPECT_KEY : EXPECT_VALUE;
      } else if (c === (top === OBJECT ? 0x7d /* } */ : 0x5d) /* ] */) {
        stack.pop();
        i += 1;
      } else {
        return false;
      }
    }
  }
}

function skipSpace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i += 1;
  }
}

/** Index after the string starting at `i` (its opening quote), or -1 when it is malformed. */
function skipString(text: string, i: number): number {
  const end = text.length;
  for (i += 1; i < end; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 0x22) return i + 1;
    if (c < 0x20) return -1;
    if (c === 0x5c /* \ */) {
      i += 1;
      const e = text.charCodeAt(i);
      if (e === 0x75 /* u */) {
        for (let k = 1; k <= 4; k += 1) if (!isHex(text.charCodeAt(i + k))) return -1;
        i += 4;
      } else if (
        e !== 0x22 &&
        e !== 0x5c &&
        e !== 0x2f /* / */ &&
        e !== 0x62 /* b */ &&
        e !== 0x66 /* f */ &&
        e !== 0x6e /* n */ &&
        e !== 0x72 /* r */ &&
        e !== 0x74 /* t */
      ) {
        return -1;
      }
    }
  }
  return -1;
}

/** Index after the number starting at `i`, or -1 when it is malformed. */
function skipNumber(text: string, i: number): number {
  if (text.charCodeAt(i) === 0x2d) i += 1;
  if (text.charCodeAt(i) === 0x30) i += 1;
  else if (isDigit(text.charCodeAt(i))) while (isDigit(text.charCodeAt(i))) i += 1;
  else return -1;
  if (text.charCodeAt(i) === 0x2e /* . */) {
    i += 1;
    if (!isDigit(text.charCodeAt(i))) return -1;
    while (isDigit(text.charCodeAt(i))) i += 1;
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 /* e */ || e === 0x45 /* E */) {
    i += 1;
    const sign = text.charCodeAt(i);
    if (sign === 0x2b /* + */ || sign === 0x2d) i += 1;
    if (!isDigit(text.charCodeAt(i))) return -1;
    while (isDigit(text.charCodeAt(i))) i += 1;
  }
  return i;
}

// charCodeAt past the end is NaN, which every comparison below rejects.
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isHex = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
