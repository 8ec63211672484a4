import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import { BIN, themepress, writeAddon } from './helpers.js';
import { freePort } from '../support/free-port.js';

interface EntryRun {
  kind: string;
  name: string;
  status: string;
  code: string | null;
  message: string | null;
  durationMs: number | null;
  cpuTimeMs: number | null;
  memoryBytes: number | null;
  outputBytes: number | null;
  output: unknown;
}

interface Report {
  ok: boolean;
  problems: { field: string; message: string }[];
  localRun: { limits: Record<string, number>; entries: EntryRun[] } | null;
}

describe('themepress CLI', () => {
  let server: TestServer;
  let work: string;
  let developerKey: string;

  before(async () => {
    server = await startTestServer();
    work = await mkdtemp(path.join(tmpdir(), 'themepress-cli-'));
    developerKey = (await givenDeveloper(server.admin)).key;
  });
  after(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  const run = (args: string[], env: Record<string, string> = {}) =>
    themepress(args, { cwd: work, env: { THEMEPRESS_URL: server.url, ...env } });

  it('init -> validate -> publish -> install: a new addon reaches a site', async () => {
    // given: a scaffolded addon
    const init = await run(['addon', 'init', 'hello-cli']);
    assert.equal(init.code, 0, init.stderr);
    const dir = path.join(work, 'hello-cli');
    for (const file of ['manifest.json', 'index.js', 'fixtures.json', 'test.mjs', 'README.md', 'sdk.d.ts']) {
      await readFile(path.join(dir, file));
    }
    const site = await givenSite(server.admin);

    // when
    const validated = await run(['addon', 'validate', 'hello-cli', '--json']);
    const human = await run(['addon', 'validate', 'hello-cli']);
    const authorTest = spawnSync(process.execPath, ['--test', 'test.mjs'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, THEMEPRESS_CLI: BIN },
    });
    const published = await run(['addon', 'publish', 'hello-cli', '--json'], {
      THEMEPRESS_API_KEY: developerKey,
    });
    const installed = await run(
      ['addon', 'install', 'hello-cli', '--config', '{"greeting":"Hi"}', '--json'],
      {
        THEMEPRESS_API_KEY: site.key,
      },
    );
    const republished = await run(['addon', 'publish', 'hello-cli'], { THEMEPRESS_API_KEY: developerKey });

    // then: validate ran every entry under the production limits and measured it
    assert.equal(validated.code, 0, validated.stderr);
    const report = validated.json<Report>();
    assert.equal(report.ok, true);
    assert.deepEqual(report.problems, []);
    assert.equal(report.localRun!.limits.memoryMb, 64);
    assert.equal(report.localRun!.limits.timeoutMs, 1000);
    assert.deepEqual(
      report.localRun!.entries.map((e) => [e.kind, e.name, e.status]),
      [
        ['function', 'greet', 'ok'],
        ['widget', 'banner', 'ok'],
      ],
    );
    for (const entry of report.localRun!.entries) {
      assert.ok(entry.durationMs! > 0 && entry.cpuTimeMs! >= 0, `${entry.name} timed`);
      assert.ok(entry.outputBytes! > 0, `${entry.name} output measured`);
      // the isolate's heap: more than nothing, far less than its 64 MB limit
      assert.ok(
        entry.memoryBytes !== null && entry.memoryBytes > 100_000 && entry.memoryBytes < 64 * 2 ** 20,
        `${entry.name} memory measured: ${entry.memoryBytes}`,
      );
    }
    assert.deepEqual(report.localRun!.entries[0].output, { message: 'Hello, Ada!', count: 1 });
    assert.match(human.stdout, /TIME\s+CPU\s+MEMORY\s+OUTPUT/);
    assert.match(human.stdout, /function\s+greet\s+ok\s+[\d.]+ ms/);
    assert.match(human.stderr, /Running widget banner/, 'progress on stderr');
    // and the scaffolded test passes as the author would run it
    assert.equal(authorTest.status, 0, authorTest.stdout + authorTest.stderr);

    // and publish made it visible in the catalogue
    assert.equal(published.code, 0, published.stderr);
    assert.equal(published.json<{ version: { version: string } }>().version.version, '0.1.0');
    const listed = await server.anonymous.raw<{
      addons: { edges: { node: { name: string; version: string } }[] };
    }>('{ addons(first: 100) { edges { node { name version } } } }');
    assert.deepEqual(
      listed.data!.addons.edges.map((e) => e.node).filter((n) => n.name === 'hello-cli'),
      [{ name: 'hello-cli', version: '0.1.0' }],
    );

    // and install put it on the site with the config, defaults applied by the server
    assert.equal(installed.code, 0, installed.stderr);
    const installations = await site.client.raw<{
      installations: { addon: { name: string }; config: unknown }[];
    }>('{ installations { addon { name } config } }');
    assert.deepEqual(installations.data!.installations, [
      { addon: { name: 'hello-cli' }, config: { greeting: 'Hi' } },
    ]);

    // and publishing the same version again is refused by the server, readably
    assert.equal(republished.code, 1);
    assert.match(
      republished.stderr,
      /Could not publish hello-cli 0\.1\.0: Version 0\.1\.0 .* already published.*\[CONFLICT\]/,
    );
  });

  it('a bad name and a widget that is not exported: each field named, exit code 1, nothing sent', async () => {
    // given
    const dir = await writeAddon(path.join(work, 'broken'), {
      manifest: {
        name: 'Bad_Name',
        version: '1.0.0',
        category: 'UTILITIES',
        widgets: [{ name: 'ghost', category: 'DISPLAY' }],
        functions: [{ name: 'hello' }],
      },
      source: 'module.exports = { functions: { hello: () => "hi" } };',
    });

    // when
    const validated = await run(['addon', 'validate', dir]);
    const asJson = await run(['addon', 'validate', dir, '--json']);
    const published = await run(['addon', 'publish', dir], { THEMEPRESS_API_KEY: developerKey });

    // then
    assert.equal(validated.code, 1);
    assert.match(validated.stdout, /manifest\.name: must be lowercase letters, digits and single dashes/);
    assert.match(validated.stdout, /manifest\.widgets\[0\]\.name: "ghost" is not exported by index\.js/);
    assert.deepEqual(
      asJson.json<Report>().problems.map((p) => p.field),
      ['manifest.name', 'manifest.widgets[0].name'],
    );
    assert.equal(asJson.code, 1);
    assert.equal(published.code, 1);
    assert.match(published.stderr, /nothing was published/);
    assert.match(published.stderr, /manifest\.widgets\[0\]\.name: "ghost" is not exported/);
    const addon = await server.anonymous.raw<{ addon: unknown }>('{ addon(name: "bad-name") { id } }');
    assert.equal(addon.data!.addon, null);
  });

  it('an entry that fails under the limits fails validation with its code; the manifest limits apply', async () => {
    // given: a tight manifest limit, a loop, a throw, and a missing sample for a required input
    const dir = await writeAddon(path.join(work, 'failing'), {
      manifest: {
        name: 'failing',
        version: '1.0.0',
        category: 'UTILITIES',
        limits: { timeoutMs: 300, cpuTimeMs: 200 },
        functions: [
          { name: 'spin' },
          { name: 'boom' },
          { name: 'typed', inputSchema: { type: 'object', required: ['amount'] } },
        ],
      },
      source: `module.exports = { functions: {
        spin: () => { for (;;) {} },
        boom: () => { throw new Error('card declined'); },
        typed: (data) => data,
      } };`,
    });

    // when
    const result = await run(['addon', 'validate', dir, '--json']);

    // then
    assert.equal(result.code, 1);
    const report = result.json<Report>();
    assert.equal(report.localRun!.limits.timeoutMs, 300);
    const byName = Object.fromEntries(report.localRun!.entries.map((e) => [e.name, e]));
    assert.equal(byName.spin.code, 'EXECUTION_TIMEOUT');
    assert.equal(byName.boom.code, 'ADDON_ERROR');
    assert.equal(byName.boom.message, 'card declined');
    assert.equal(byName.typed.status, 'skipped', 'no sample and {} does not match: skipped, not failed');
    assert.match(byName.typed.message!, /data\.amount: is required/);
  });

  it('the local run fakes the SDK in memory: storage, HTTP, events, a dependency from its sibling folder', async () => {
    // given: a dependency next to the addon, and fixtures for storage, HTTP, a handler and the widget
    const family = path.join(work, 'family');
    await writeAddon(path.join(family, 'rates'), {
      manifest: {
        name: 'rates',
        version: '1.0.0',
        category: 'UTILITIES',
        configSchema: { type: 'object', properties: { base: { type: 'string', default: 'EUR' } } },
        functions: [
          { name: 'rate', inputSchema: { type: 'object', properties: { to: { type: 'string' } } } },
        ],
      },
      source: `module.exports = { functions: { rate: (data, ctx) => ({ from: ctx.config.base, to: data.to, rate: 2 }) } };`,
    });
    const dir = await writeAddon(path.join(family, 'shop'), {
      manifest: {
        name: 'shop',
        version: '1.0.0',
        category: 'ECOMMERCE',
        permissions: ['storage.read', 'storage.write', 'events.emit', 'addons.call', 'http.fetch'],
        dependencies: { rates: '^1.0.0' },
        http: { allow: ['api.example.com'] },
        events: { emits: ['order.priced'], handles: { 'payment.*': 'onPayment' } },
        functions: [{ name: 'price' }],
        widgets: [{ name: 'total', category: 'DISPLAY', varyOn: ['cart'] }],
      },
      source: `module.exports = {
        functions: {
          price: async (data, ctx) => {
            const stock = await ctx.storage.get('stock');
            const fx = await ctx.addons.call('rates', 'rate', { to: 'USD' });
            const tax = await (await ctx.http.fetch('https://api.example.com/tax')).json();
            await ctx.events.emit('order.priced', { total: data.amount * fx.rate * tax.factor });
            return { stock, fx, tax };
          },
        },
        widgets: { total: (config, context) => '<p>' + context.cart + '/' + String(context.secret) + '</p>' },
        handlers: { onPayment: async (event, ctx) => { await ctx.storage.set('paid', event.data); return event.name; } },
      };`,
      fixtures: {
        storage: { stock: 3 },
        functions: { price: { amount: 5 } },
        widgets: { total: { context: { cart: 'c1', secret: 'not in varyOn' } } },
        handlers: { onPayment: { orderId: 'o-1' } },
        http: { 'GET https://api.example.com/tax': { body: { factor: 1.5 } } },
      },
    });

    // when
    const result = await run(['addon', 'validate', dir, '--json']);

    // then
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const entries = result.json<Report & { localRun: { entries: (EntryRun & { events: unknown[] })[] } }>()
      .localRun!.entries;
    const [price, total, handler] = entries;
    assert.deepEqual(price.output, {
      stock: 3,
      fx: { from: 'EUR', to: 'USD', rate: 2 },
      tax: { factor: 1.5 },
    });
    assert.deepEqual(price.events, [{ name: 'order.priced', data: { total: 15 } }]);
    assert.equal(
      (total.output as { html: string }).html,
      '<p>c1/undefined</p>',
      'only varyOn fields reach it',
    );
    assert.deepEqual(
      [handler.kind, handler.name, handler.output],
      ['handler', 'onPayment', 'payment.example'],
    );
  });

  it("prints the server's field errors: an unpublished dependency, a config that does not match", async () => {
    // given: an addon whose local checks pass but whose dependency the server does not know
    const dir = await writeAddon(path.join(work, 'needs-dep'), {
      manifest: {
        name: 'needs-dep',
        version: '1.0.0',
        category: 'UTILITIES',
        permissions: ['addons.call'],
        dependencies: { 'no-such-addon': '^1.0.0' },
      },
      source: 'module.exports = {};',
    });
    const site = await givenSite(server.admin);
    const other = manifest();
    await givenPublished(server.admin, other);

    // when
    const published = await run(['addon', 'publish', dir], { THEMEPRESS_API_KEY: developerKey });
    const installed = await run(['addon', 'install', other.name as string, '--config', '{"greeting": 5}'], {
      THEMEPRESS_API_KEY: site.key,
    });

    // then
    assert.equal(published.code, 1);
    assert.match(
      published.stderr,
      /Could not publish needs-dep 1\.0\.0: Invalid manifest \[BAD_USER_INPUT\]/,
    );
    assert.match(
      published.stderr,
      /\n {2}manifest\.dependencies\.no-such-addon: no addon named "no-such-addon" is published/,
    );
    assert.equal(installed.code, 1);
    assert.match(installed.stderr, /\[BAD_USER_INPUT\]/);
    assert.match(installed.stderr, /\n {2}config\.greeting: must be string/);
  });

  it('usage errors exit with 2; --help works for every command', async () => {
    // when
    const unknown = await run(['addon', 'frobnicate']);
    const unknownTop = await run(['deploy']);
    const badOption = await run(['addon', 'validate', '.', '--bogus']);
    const missing = await run(['addon', 'validate']);
    const badName = await run(['addon', 'init', 'Not A Name']);
    const noKey = await run(['addon', 'install', 'hello-cli'], { THEMEPRESS_URL: 'http://example.invalid' });
    const badConfig = await run(['addon', 'install', 'x', '--config', '{oops'], {
      THEMEPRESS_API_KEY: 'tp_x',
    });
    const nothing = await run([]);
    const helps = await Promise.all(
      [
        ['--help'],
        ['addon', '--help'],
        ['help', 'seed'],
        ...['init', 'validate', 'publish', 'install'].map((c) => ['addon', c, '--help']),
        ['seed', '--help'],
      ].map((args) => run(args)),
    );

    // then
    for (const r of [unknown, unknownTop, badOption, missing, badName, noKey, badConfig, nothing]) {
      assert.equal(r.code, 2, `${r.stderr}`);
    }
    assert.match(unknown.stderr, /Unknown command "addon frobnicate"\.\nRun "themepress addon --help"/);
    assert.match(badOption.stderr, /Unknown option '--bogus'.*\nRun "themepress addon validate --help"/s);
    assert.match(missing.stderr, /Missing argument: themepress addon validate <dir>/);
    assert.match(badName.stderr, /Invalid addon name "Not A Name": name must be lowercase/);
    assert.match(
      noKey.stderr,
      /No API key for http:\/\/example.invalid: set THEMEPRESS_API_KEY to a site key/,
    );
    assert.match(badConfig.stderr, /--config: not valid JSON/);
    assert.match(nothing.stderr, /Usage: themepress <command>/);
    for (const help of helps) {
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /Usage: themepress/);
    }
    assert.match(helps[3].stdout, /Usage: themepress addon init <name>/);
    assert.match(helps[3].stdout, /Exit codes: 0 success, 1 failed/);
  });

  it('an unreachable server is a failure (exit 1) with a readable message; --json gives { ok: false }', async () => {
    // given: a port nothing listens on
    const port = await freePort();
    const dir = await writeAddon(path.join(work, 'offline'), {
      manifest: { name: 'offline', version: '1.0.0', category: 'UTILITIES' },
      source: 'module.exports = {};',
    });

    // when
    const result = await run(['addon', 'publish', dir, '--skip-checks', '--json'], {
      THEMEPRESS_URL: `http://127.0.0.1:${port}`,
      THEMEPRESS_API_KEY: developerKey,
    });

    // then
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      new RegExp(`Cannot reach the ThemePress server at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`),
    );
    assert.deepEqual(result.json<{ ok: boolean; error: { code: string } }>().error.code, 'UNREACHABLE');
  });

  it('says how to build when dist/ is missing', async () => {
    // given: the bin in a package folder that was never built
    const fresh = path.join(work, 'unbuilt', 'bin');
    await mkdir(fresh, { recursive: true });
    await copyFile(BIN, path.join(fresh, 'themepress.mjs'));
    await writeFile(path.join(work, 'unbuilt', 'package.json'), '{}');

    // when
    const result = spawnSync(process.execPath, [path.join(fresh, 'themepress.mjs'), '--help'], {
      encoding: 'utf8',
    });

    // then
    assert.equal(result.status, 1);
    assert.match(result.stderr, /the CLI is not built .*\nRun "npm run build"/s);
  });
});
