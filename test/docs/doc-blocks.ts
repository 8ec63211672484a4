import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

/**
 * What an HTML comment right before a fenced block tells the doc test (invisible on GitHub):
 * - `<!-- doctest: skip (why) -->`: not run; the reason is listed in the test's output.
 * - `<!-- doctest: server -->`: the server start of the quick start, run in the background.
 * - `<!-- doctest: expect CODE -->`: the requests answer with that error code, and no other.
 * - `<!-- doctest: subscription EVENT -->`: a JavaScript subscriber, run until it prints an
 *   event named EVENT that the test emits meanwhile.
 */
export type Directive =
  | { kind: 'run' }
  | { kind: 'skip'; reason: string }
  | { kind: 'server' }
  | { kind: 'expect'; code: string }
  | { kind: 'subscription'; event: string };

export interface DocBlock {
  /** Relative to the repository root. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  code: string;
  directive: Directive;
}

/** Shell blocks are commands; other languages run only when a directive says how. */
const SHELL = new Set(['bash', 'sh', 'shell']);

function parseDirective(text: string, where: string): Directive {
  const body = text.trim();
  let match: RegExpExecArray | null;
  if ((match = /^skip\s*\((.+)\)$/s.exec(body))) return { kind: 'skip', reason: match[1].trim() };
  if (body === 'server') return { kind: 'server' };
  if ((match = /^expect ([A-Z_]+)$/.exec(body))) return { kind: 'expect', code: match[1] };
  if ((match = /^subscription ([a-z0-9.]+)$/.exec(body))) return { kind: 'subscription', event: match[1] };
  throw new Error(`${where}: unknown doctest directive "${body}"`);
}

/** The fenced blocks of one Markdown file that are commands or requests, with their directives. */
export function extractBlocks(root: string, file: string): DocBlock[] {
  const lines = readFileSync(path.join(root, file), 'utf8').split('\n');
  const blocks: DocBlock[] = [];
  let pending: Directive | null = null;
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    const comment = /^<!--\s*doctest:(.*)-->\s*$/.exec(line);
    if (comment) {
      pending = parseDirective(comment[1], `${file}:${i + 1}`);
      continue;
    }
    const fence = /^```(\S*)\s*$/.exec(line);
    if (!fence) {
      if (line.trim() !== '') pending = null;
      continue;
    }
    const start = i;
    const body: string[] = [];
    for (i += 1; i < lines.length && !/^```\s*$/.test(lines[i]); i += 1) body.push(lines[i]);
    const lang = fence[1].toLowerCase();
    const directive = pending ?? { kind: 'run' };
    pending = null;
    if (!SHELL.has(lang) && directive.kind === 'run') continue;
    blocks.push({ file, line: start + 1, lang, code: body.join('\n'), directive });
  }
  return blocks;
}

/** README.md and every docs/**\/*.md, README first, then the documents the others build on. */
export function documentedFiles(root: string): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory()
        ? walk(path.join(dir, entry.name))
        : entry.name.endsWith('.md')
          ? [path.join(dir, entry.name)]
          : [],
    );
  const order = [
    'README.md',
    'docs/api.md',
    'docs/widgets.md',
    'docs/events.md',
    'docs/authoring-an-addon.md',
  ];
  const rest = walk('docs')
    .filter((file) => !order.includes(file))
    .sort();
  return [...order, ...rest];
}

/**
 * The text run for a block: the documented server address (`localhost:4000`) pointed at the port
 * the test's server listens on. Nothing else is changed.
 */
export function onPort(code: string, port: number): string {
  return code.replace(/\b(localhost|127\.0\.0\.1):4000\b/g, `$1:${port}`);
}

/** Error codes in the JSON lines of some output (`{"errors":[...]}` and `{"error":{...}}`). */
export function errorCodes(output: string): string[] {
  const codes: string[] = [];
  for (const line of output.split('\n')) {
    const text = line.trim();
    if (!text.startsWith('{')) continue;
    let body: { errors?: { extensions?: { code?: string } }[]; error?: { code?: string } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      continue;
    }
    for (const error of body.errors ?? []) codes.push(error.extensions?.code ?? 'ERROR');
    if (body.error && typeof body.error === 'object') codes.push(body.error.code ?? 'ERROR');
  }
  return codes;
}
