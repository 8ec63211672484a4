import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenSite } from '../support/fixtures.js';
import { BIN, themepress } from './helpers.js';

/** The package this test belongs to (dist/test/cli/ is three levels down). */
const PACKAGE_ROOT = path.resolve(BIN, '..', '..');

/**
 * The lines under "Next:" (or after a "Start here:" heading) that start with `themepress`: the
 * commands a reader of the CLI's own output is told to run next.
 */
function suggested(output: string, heading: RegExp): string[][] {
  const lines = output.split('\n');
  const start = lines.findIndex((line) => heading.test(line));
  assert.ok(start >= 0, `no ${heading} in:\n${output}`);
  const commands: string[][] = [];
  for (const line of lines.slice(start + 1)) {
    const match = /^\s+(themepress [^\s].*?)(?:\s{2,}.*)?$/.exec(line);
    if (!match) break;
    commands.push(match[1].trim().split(/\s+/).slice(1));
  }
  return commands;
}

/** `themepress addon dev` as a long-running process; its output is kept as it arrives. */
class DevProcess {
  output = '';
  readonly child: ChildProcess;
  constructor(args: string[], cwd: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, ['--no-node-snapshot', BIN, ...args], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.output += chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.output += chunk));
  }

  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.output);
      if (match) return match;
      if (Date.now() > deadline || this.child.exitCode !== null) {
        throw new Error(`no ${pattern} in the output of addon dev:\n${this.output}`);
      }
      await sleep(50);
    }
  }

  stop(): Promise<number | null> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null) return resolve(this.child.exitCode);
      this.child.once('close', resolve);
      this.child.kill('SIGINT');
    });
  }
}

interface DevState {
  revision: number;
  problems: { field: string; message: string }[];
  entries: {
    kind: string;
    name: string;
    status: string;
    durationMs: number | null;
    cpuTimeMs: number | null;
    memoryBytes: number | null;
    outputBytes: number | null;
  }[];
}

async function stateAfter(preview: string, revision: number): Promise<DevState> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const state = (await (await fetch(`${preview}api/state`)).json()) as DevState;
    if (state.revision > revision) return state;
    await sleep(50);
  }
  throw new Error(`addon dev never got past revision ${revision}`);
}

describe(
  'an addon author, reading only the CLI output, gets a widget onto a site',
  { timeout: 300_000 },
  () => {
    let server: TestServer;
    let work: string;
    let dev: DevProcess | null = null;

    before(async () => {
      server = await startTestServer();
      work = await mkdtemp(path.join(tmpdir(), 'themepress-author-'));
    });
    after(async () => {
      await dev?.stop();
      await server.close();
      await rm(work, { recursive: true, force: true });
    });

    it("the scaffold's test.mjs finds the CLI by package name, with no path to a clone in it", async () => {
      // given: an addon inside a project that has the package themepress-addon-server (as npm link
      // themepress-addon-server, or a file: dependency, leave it), and no themepress on PATH
      const project = path.join(work, 'shop-project');
      await mkdir(path.join(project, 'node_modules'), { recursive: true });
      await symlink(PACKAGE_ROOT, path.join(project, 'node_modules', 'themepress-addon-server'), 'dir');
      const init = await themepress(['addon', 'init', 'by-name'], { cwd: project });
      assert.equal(init.code, 0, init.stderr);
      const folder = path.join(project, 'by-name');
      const testFile = await readFile(path.join(folder, 'test.mjs'), 'utf8');
      assert.ok(!testFile.includes(PACKAGE_ROOT), 'test.mjs must not name the clone');
      const env: NodeJS.ProcessEnv = { ...process.env, PATH: path.dirname(process.execPath) };
      delete env.THEMEPRESS_CLI;
      delete env.NODE_TEST_CONTEXT; // a test run of its own, reporting on stdout

      // when
      const run = spawnSync(process.execPath, ['--test'], { cwd: folder, env, encoding: 'utf8' });

      // then
      assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
      assert.match(run.stdout, /pass 3/);
    });

    it('--help -> init -> dev (edit, re-render) -> login -> publish -> install -> the widget renders on the site', async (t) => {
      const started = performance.now();
      const env = {
        THEMEPRESS_URL: server.url,
        THEMEPRESS_CONFIG_DIR: path.join(work, '.config'),
        DATA_DIR: path.join(work, 'no-local-server'),
      };
      const run = (args: string[], extra: Record<string, string> = {}) =>
        themepress(args, { cwd: work, env: { ...env, ...extra } });
      const developerKey = (await givenDeveloper(server.admin)).key;
      const site = await givenSite(server.admin);

      // given: the first screen, which says where to start
      const help = await run(['--help']);
      assert.equal(help.code, 0);
      const [initArgs] = suggested(help.stdout, /^Start here:/);
      assert.deepEqual(initArgs.slice(0, 2), ['addon', 'init']);

      // when: init, with the name the help used
      const init = await run(initArgs);
      assert.equal(init.code, 0, init.stderr);
      const next = suggested(init.stdout, /^\s+Next:/);
      const devArgs = next.find((args) => args[1] === 'dev')!;
      const publishArgs = next.find((args) => args[1] === 'publish')!;
      const installArgs = next.find((args) => args[1] === 'install')!;
      const folder = path.join(work, devArgs[2]);

      // when: dev, on any free port (--help: "0: any free port")
      dev = new DevProcess([...devArgs, '--port', '0'], work, env);
      const preview = (await dev.waitFor(/Preview: (http:\/\/127\.0\.0\.1:\d+\/)/))[1];
      // then: every entry ran and the terminal shows time, CPU, memory and output size per call
      await dev.waitFor(/widget\s+banner\s+ok\s+\d+\.\d ms\s+\d+\.\d ms\s+[\d.]+ [KM]?B\s+[\d.]+ [KM]?B/);
      const page = await fetch(preview);
      assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
      assert.match(await page.text(), /<script type="module" src="\/preview.js">/);
      const first = (await (await fetch(`${preview}api/state`)).json()) as DevState;
      assert.deepEqual(
        first.entries.map((e) => [e.kind, e.name, e.status]),
        [
          ['function', 'greet', 'ok'],
          ['widget', 'banner', 'ok'],
        ],
      );
      for (const e of first.entries) {
        for (const figure of [e.durationMs, e.cpuTimeMs, e.memoryBytes, e.outputBytes])
          assert.ok(figure! > 0);
      }
      assert.match(await (await fetch(`${preview}widgets/banner`)).text(), /Welcome, Ada!/);
      // a page elsewhere whose DNS name was rebound to 127.0.0.1 gets nothing
      const rebound = await new Promise<number>((resolve, reject) => {
        const { port } = new URL(preview);
        http
          .get(
            { host: '127.0.0.1', port, path: '/api/state', headers: { host: `evil.example:${port}` } },
            (r) => {
              r.resume();
              resolve(r.statusCode ?? 0);
            },
          )
          .on('error', reject);
      });
      assert.equal(rebound, 421);

      // when: the author edits the widget and saves
      const source = path.join(folder, 'index.js');
      const original = await readFile(source, 'utf8');
      await writeFile(source, original.replace('<p class="banner">', '<p class="banner">Hi there. '));
      // then: it re-ran on its own and the preview shows the edit
      const edited = await stateAfter(preview, first.revision);
      assert.deepEqual(edited.problems, []);
      const framed = await fetch(`${preview}widgets/banner`);
      assert.match(
        framed.headers.get('content-security-policy') ?? '',
        /default-src 'none'; script-src 'nonce-/,
      );
      assert.match(
        await framed.text(),
        /<div data-tp-widget="w[0-9a-f]+"><p class="banner">Hi there\. Welcome, Ada!<\/p><\/div>/,
      );

      // when: a save that breaks the module, then the fix
      await writeFile(source, original.replace('module.exports = {', 'module.exports = {,'));
      const broken = await stateAfter(preview, edited.revision);
      await writeFile(source, original.replace('<p class="banner">', '<p class="banner">Hi there. '));
      const fixed = await stateAfter(preview, broken.revision);
      // then: the problem was named, and the fix cleared it
      assert.match(broken.problems[0].message, /index.js does not load in the sandbox/);
      assert.deepEqual(fixed.problems, []);

      // when: a function called from the preview page with the author's own input
      const call = await fetch(`${preview}api/functions/greet`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ input: { name: 'Grace' } }),
      });
      // then
      assert.equal(call.status, 200);
      const { output } = (await call.json()) as { output: { message: string; count: number } };
      assert.equal(output.message, 'Hello, Grace!');
      // storage lives as long as the dev session: the runs after each save counted too
      assert.ok(output.count >= 3, `count ${output.count}`);
      await dev.waitFor(
        /call greet: ok, time \d+\.\d ms, CPU \d+\.\d ms, memory [\d.]+ [KM]?B, output \d+ B/,
      );
      assert.equal(await dev.stop(), 0);
      dev = null;

      // when: the publish step, whose --help says a developer key comes from "themepress login"
      const publishHelp = await run(['addon', 'publish', '--help']);
      assert.match(publishHelp.stdout, /themepress login/);
      const login = await run(['login', '--key', developerKey]);
      const published = await run(publishArgs);
      // then
      assert.equal(login.code, 0, login.stderr);
      assert.equal(published.code, 0, published.stderr);
      const [installFromPublish] = suggested(published.stdout, /^\s+Next:/);
      assert.deepEqual(installFromPublish.slice(0, 3), installArgs.slice(0, 3));

      // when: installed with the site's key, as install --help says
      const installed = await run(installFromPublish, { THEMEPRESS_API_KEY: site.key });
      assert.equal(installed.code, 0, installed.stderr);
      const widgetUrl = /^\s+(http:\/\/\S+\/api\/widgets\/\S+\/banner\?siteId=\S+)$/m.exec(
        installed.stdout,
      )![1];
      // then: the widget renders on the site, with the author's edit
      const rendered = await fetch(widgetUrl, { headers: { accept: 'text/html' } });
      assert.equal(rendered.status, 200);
      assert.match(await rendered.text(), /Hi there\. Welcome/);

      const seconds = (performance.now() - started) / 1000;
      t.diagnostic(
        `author flow, init to a widget rendered on a site: ${seconds.toFixed(1)} s (target: under 300 s)`,
      );
      assert.ok(seconds < 300, `${seconds} s`);
    });
  },
);
