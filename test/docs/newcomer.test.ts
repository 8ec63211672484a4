import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser } from 'playwright-core';
import { freePort } from '../support/free-port.js';
import { colouredPixels } from '../support/screenshot-pixels.js';
import { documentedFiles, errorCodes, extractBlocks, onPort, type DocBlock } from './doc-blocks.js';

/** The repository this test was compiled from (dist/test/docs/ is three levels down). */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = path.resolve('test-artifacts', 'newcomer-dashboard.png');

/**
 * A fresh clone of the work tree as it is now: every file git tracks or would track (committed or
 * not, ignored ones left out), copied with its mode. No node_modules, dist or .data.
 */
function cloneWorkTree(target: string): number {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.equal(listed.status, 0, `git ls-files failed: ${listed.stderr}`);
  let count = 0;
  for (const file of listed.stdout.split('\0')) {
    if (!file || file.startsWith('test-artifacts/')) continue;
    const from = path.join(ROOT, file);
    if (!existsSync(from)) continue;
    const to = path.join(target, file);
    mkdirSync(path.dirname(to), { recursive: true });
    copyFileSync(from, to);
    chmodSync(to, statSync(from).mode & 0o777);
    count += 1;
  }
  return count;
}

/**
 * The environment of a newcomer's terminal: this machine's PATH (Node 24 first, as CI puts it) and
 * npm cache, a home of its own (so ~/.config and ~/addons are scratch), npm's global prefix in the
 * scratch space (npm link), and nothing of the test runner's settings (NODE_ENV=test, npm's
 * lifecycle variables, THEMEPRESS_*, database URLs). PORT is the one setting added: the port the
 * docs' localhost:4000 is pointed at.
 */
function newcomerEnv(scratch: string, port: number): Record<string, string> {
  const env: Record<string, string> = {};
  const dropped =
    /^(npm_|NODE_ENV$|NODE_OPTIONS$|DATABASE_URL$|REDIS_URL$|ADMIN_API_KEY$|DATA_DIR$|LOG_LEVEL$|PORT$|THEMEPRESS_|TEST_)/;
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !dropped.test(key)) env[key] = value;
  }
  const globalPrefix = path.join(scratch, 'npm-global');
  Object.assign(env, {
    HOME: path.join(scratch, 'home'),
    PATH: `${path.join(globalPrefix, 'bin')}${path.delimiter}${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
    npm_config_cache: process.env.npm_config_cache ?? path.join(homedir(), '.npm'),
    npm_config_prefix: globalPrefix,
    npm_config_prefer_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    PORT: String(port),
  });
  mkdirSync(env.HOME, { recursive: true });
  return env;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a bash script to its end (bounded), output captured. */
function bash(script: string, cwd: string, env: Record<string, string>, timeoutMs: number): Promise<Run> {
  const child = spawn('bash', ['-c', script], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => {
    stderr += `\n[doc test: killed after ${timeoutMs} ms]`;
    process.kill(-child.pid!, 'SIGKILL');
  }, timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const where = (block: DocBlock) => `${block.file}:${block.line}`;

describe(
  'a newcomer on a fresh clone: npm install, npm start, the seed, every documented command, the dashboard',
  { timeout: 540_000 },
  () => {
    let scratch: string;
    let clone: string;
    let port: number;
    let env: Record<string, string>;
    let server: ChildProcess | null = null;
    let serverOutput = '';
    let url: string;
    const skipped: string[] = [];
    const blocks = documentedFiles(ROOT).flatMap((file) => extractBlocks(ROOT, file));

    before(async () => {
      scratch = await mkdtemp(path.join(tmpdir(), 'themepress-newcomer-'));
      clone = path.join(scratch, 'themepress-addon-server');
      port = await freePort();
      url = `http://localhost:${port}`;
      env = newcomerEnv(scratch, port);
    });
    after(async () => {
      if (server?.pid && server.exitCode === null) {
        process.kill(-server.pid, 'SIGTERM');
        await new Promise((resolve) => server!.once('close', resolve));
      }
      await rm(scratch, { recursive: true, force: true });
    });

    it('runs the quick start as printed: npm install, then npm start prints where everything is', async (t) => {
      // given: a fresh clone
      const files = cloneWorkTree(clone);
      t.diagnostic(`cloned ${files} files into ${clone}`);
      const [start] = blocks.filter((b) => b.directive.kind === 'server');
      assert.ok(start, 'README.md has a quick start marked <!-- doctest: server -->');
      const lines = start.code
        .split('\n')
        .filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
      const serverLine = lines.pop()!;
      assert.match(serverLine, /^npm start\b/);

      // when: npm install (from the npm cache), then npm start in the background
      const install = await bash(lines.join('\n'), clone, env, 300_000);
      assert.equal(
        install.code,
        0,
        `${where(start)}: ${lines.join('; ')}\n${install.stdout}\n${install.stderr}`,
      );
      server = spawn('bash', ['-c', serverLine], {
        cwd: clone,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      server.stdout!.setEncoding('utf8').on('data', (chunk: string) => (serverOutput += chunk));
      server.stderr!.setEncoding('utf8').on('data', (chunk: string) => (serverOutput += chunk));
      for (let waited = 0; !/Next {7}npm run seed/.test(serverOutput); waited += 250) {
        assert.ok(server.exitCode === null, `npm start exited:\n${serverOutput}`);
        assert.ok(waited < 240_000, `npm start printed no banner in 4 minutes:\n${serverOutput}`);
        await sleep(250);
      }

      // then: the banner names GraphQL, the dashboard, the admin key file (never the key) and what next
      const adminKey = readFileSync(path.join(clone, '.data', 'admin-key'), 'utf8').trim();
      assert.match(serverOutput, new RegExp(`GraphQL {4}${url}/graphql`));
      assert.match(serverOutput, new RegExp(`Dashboard {2}${url}/dashboard`));
      assert.match(serverOutput, /Admin key {2}\.data\/admin-key \(mode 0600/);
      assert.match(serverOutput, /embedded PostgreSQL in \.data\/pglite/);
      assert.ok(!serverOutput.includes(adminKey), 'the admin key must not be printed');
      const root = await fetch(`${url}/`, { redirect: 'manual' });
      assert.equal(root.status, 302);
      assert.equal(root.headers.get('location'), '/dashboard');
    });

    it('runs every command of README.md and docs/*.md as printed (on this server port), with no error answer', async (t) => {
      assert.ok(server && server.exitCode === null, 'the server of the quick start runs');
      const byFile = new Map<string, DocBlock[]>();
      for (const block of blocks) {
        if (block.directive.kind === 'skip') {
          skipped.push(`${where(block)}: ${block.directive.reason}`);
          continue;
        }
        if (block.directive.kind === 'server' || block.directive.kind === 'subscription') continue;
        byFile.set(block.file, [...(byFile.get(block.file) ?? []), block]);
      }
      let ran = 0;
      for (const fileBlocks of byFile.values()) {
        // One shell per document, as a reader pastes its blocks one after the other into one terminal.
        const script = [
          'set -eo pipefail',
          ...fileBlocks.flatMap((block, i) => [
            `printf '\\n::doctest-block ${i}::\\n'`,
            onPort(block.code, port),
          ]),
          `printf '\\n::doctest-block end::\\n'`,
        ].join('\n');
        const result = await bash(script, clone, env, 300_000);
        const parts = result.stdout.split(/\n::doctest-block (\d+|end)::\n/);
        const outputs = new Map<number, string>();
        for (let i = 1; i < parts.length; i += 2)
          if (parts[i] !== 'end') outputs.set(Number(parts[i]), parts[i + 1] ?? '');
        const lastStarted = Math.max(...outputs.keys());
        assert.equal(
          result.code,
          0,
          `${where(fileBlocks[lastStarted])} failed (exit ${result.code}):\n${fileBlocks[lastStarted].code}\n--- stdout\n${outputs.get(lastStarted)}\n--- stderr\n${result.stderr}`,
        );
        fileBlocks.forEach((block, i) => {
          const output = outputs.get(i) ?? '';
          const codes = errorCodes(output);
          if (block.directive.kind === 'expect') {
            const expected = block.directive.code;
            assert.ok(
              codes.includes(expected),
              `${where(block)}: expected ${expected}, got ${codes.join(', ') || 'none'}:\n${output}`,
            );
            assert.deepEqual(
              codes.filter((c) => c !== expected),
              [],
              `${where(block)}:\n${output}`,
            );
          } else {
            assert.deepEqual(
              codes,
              [],
              `${where(block)} answered with errors:\n${block.code}\n---\n${output}`,
            );
          }
          ran += 1;
        });
      }
      t.diagnostic(
        `${ran} documented blocks ran as printed; not run: ${skipped.length ? skipped.join(' | ') : 'none'}`,
      );
      assert.ok(ran >= 10, `only ${ran} blocks ran`);
    });

    it('runs the documented graphql-ws subscriber: it prints an event stored while it listens', async () => {
      const subscriptions = blocks.filter((b) => b.directive.kind === 'subscription');
      assert.ok(subscriptions.length > 0);
      const demo = readFileSync(path.join(clone, '.data', 'demo.env'), 'utf8');
      const site = /^SITE=(\S+)$/m.exec(demo)![1];
      for (const block of subscriptions) {
        const event = (block.directive as { event: string }).event;
        const file = path.join(clone, `.doctest-subscriber-${block.line}.mjs`);
        writeFileSync(file, onPort(block.code, port));
        const child = spawn(process.execPath, [file], {
          cwd: clone,
          env: { ...env, SITE: site },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
        try {
          // The subscription is live once the socket is acknowledged; emit until the event shows.
          for (let attempt = 0; !output.includes(event); attempt += 1) {
            assert.ok(
              attempt < 40 && child.exitCode === null,
              `${where(block)} never printed ${event}:\n${output}`,
            );
            const emitted = await fetch(`${url}/graphql`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', authorization: `Bearer ${site}` },
              body: JSON.stringify({
                query: `mutation { emitEvent(name: "${event}", data: { attempt: ${attempt} }) { id } }`,
              }),
            });
            assert.deepEqual(errorCodes(await emitted.text()), []);
            await sleep(500);
          }
        } finally {
          child.kill();
        }
      }
    });

    it('installs the CLI with npm install -g <clone> as well as npm link', async () => {
      // when
      const prefix = path.join(scratch, 'npm-global-2');
      const installed = await bash(`npm install -g --prefix "${prefix}" "${clone}"`, scratch, env, 120_000);
      const version = await bash(`"${prefix}/bin/themepress" --version`, scratch, env, 30_000);
      // then
      assert.equal(installed.code, 0, installed.stderr);
      assert.equal(version.code, 0, version.stderr);
      assert.equal(
        version.stdout.trim(),
        JSON.parse(readFileSync(path.join(clone, 'package.json'), 'utf8')).version,
      );
    });

    it('opens the dashboard from the server root with the admin key: charts with data, screenshot taken', async () => {
      assert.ok(
        existsSync(CHROMIUM),
        `the newcomer run needs Chromium at ${CHROMIUM} (apt-get install chromium, or CHROMIUM_PATH)`,
      );
      const browser: Browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox'],
        headless: true,
      });
      try {
        const page = await browser.newPage({ viewport: { width: 1360, height: 1600 } });
        page.setDefaultTimeout(20_000);
        const problems: string[] = [];
        page.on('pageerror', (error) => problems.push(error.message));
        // when: the address the banner printed, then the admin key from the file it named
        await page.goto(`${url}/`);
        assert.equal(new URL(page.url()).pathname, '/dashboard');
        await page.fill('#key-input', readFileSync(path.join(clone, '.data', 'admin-key'), 'utf8').trim());
        await page.click('#key-form button[type="submit"]');
        // then: the seeded shop's addons, and the executions of the seed and the docs charted
        await page.locator('#addons-body tr[data-addon="payment-gateway"]').waitFor();
        const executions = page.locator('#charts-grid figure[data-chart="executions"]');
        for (let waited = 0; Number(await executions.getAttribute('data-points')) === 0; waited += 250) {
          assert.ok(waited < 30_000, 'the executions chart has no data');
          await sleep(250);
        }
        const coloured = await colouredPixels(page, await executions.locator('canvas').screenshot());
        assert.ok(coloured > 15, `the executions chart has nothing drawn (${coloured} coloured pixels)`);
        // the previews rendered (the stock display says why it has nothing to show)
        await page
          .frameLocator('iframe[data-widget="inventory/stock-display"]')
          .getByText('no SKU: set "sku" in the widget config')
          .waitFor();
        // Chromium paints an out-of-process frame once it has been in view: scroll them in first.
        await page.locator('#widgets').scrollIntoViewIfNeeded();
        await page.evaluate(
          'new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))',
        );
        mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        assert.deepEqual(problems, []);
      } finally {
        await browser.close();
      }
    });
  },
);
