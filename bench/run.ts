// `npm run bench`: runs every benchmark, one after another (each starts its own server processes),
// and writes their Markdown sections to bench/RESULTS.md under a header naming the machine and
// the command. `npm run bench -- widget mixed` runs only the benchmarks whose file names match.
import { spawn } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine } from './support/bench-server.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const resultsFile = path.resolve(here, '../../bench/RESULTS.md');

/** Runs one compiled benchmark and resolves to its stdout (its Markdown section). */
function runOne(file: string): Promise<{ output: string; code: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-node-snapshot', file], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: process.env,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk);
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ output, code: code ?? 1 }));
  });
}

async function main(): Promise<void> {
  const filters = process.argv.slice(2);
  const files = (await readdir(here))
    .filter((name) => name.endsWith('.js') && !['run.js', 'events-common.js'].includes(name))
    .filter((name) => filters.length === 0 || filters.some((f) => name.includes(f)))
    .sort();
  if (files.length === 0) throw new Error(`no benchmark matches ${filters.join(', ')}`);
  // Sections of benchmarks not run this time are kept, so `npm run bench -- widget` refreshes one.
  const sections = await previousSections();
  let failed = 0;
  // A run with another duration is a variant with a section of its own (e.g. a longer soak), and
  // so is a labelled run (BENCH_LABEL=before, then =after a change: both sections stay).
  const variables = (['BENCH_SECONDS', 'BENCH_LABEL'] as const)
    .filter((name) => process.env[name])
    .map((name) => `${name}=${process.env[name]}`);
  const variant = variables.length ? ` (${variables.join(' ')})` : '';
  const command = `${variables.map((v) => `${v} `).join('')}npm run bench${filters.length ? ` -- ${filters.join(' ')}` : ''}`;
  const host = await machine();
  for (const name of files) {
    process.stderr.write(`\n==> ${name}\n`);
    const started = Date.now();
    const { output, code } = await runOne(path.join(here, name));
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    if (code !== 0) failed += 1;
    const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
    sections.set(
      `${name}${variant}`,
      `<!-- ${name}${variant}: \`${command}\`, ${when} UTC, exit ${code}, ${seconds} s -->\n${output.trim() || `(printed nothing; exit code ${code})`}`,
    );
  }
  const header = [
    '# Benchmark results',
    '',
    '`npm run bench` runs every `bench/*.ts` and rewrites this file; `npm run bench -- <name>` reruns',
    'the matching ones and keeps the other sections. Each section starts with a comment giving the',
    `command, the time and the exit code. Machine of the latest run: ${host}. PostgreSQL and Redis`,
    'on 127.0.0.1. The machine is shared and noisy: compare ratios measured side by side in one run.',
    '',
  ].join('\n');
  const body = [...sections.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, text]) => text);
  await writeFile(resultsFile, `${header}\n${body.join('\n\n')}\n`);
  process.stderr.write(`\nwrote ${path.relative(process.cwd(), resultsFile)}\n`);
  if (failed > 0) process.exit(1);
}

/** The sections of the current RESULTS.md, by benchmark file name. */
async function previousSections(): Promise<Map<string, string>> {
  const sections = new Map<string, string>();
  const text = await readFile(resultsFile, 'utf8').catch(() => '');
  for (const part of text.split(/(?=^<!-- [\w.-]+\.js(?: \([^)]*\))?: )/m).slice(1)) {
    const name = /^<!-- ([\w.-]+\.js(?: \([^)]*\))?): /.exec(part)?.[1];
    if (name) sections.set(name, part.trim());
  }
  return sections;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
