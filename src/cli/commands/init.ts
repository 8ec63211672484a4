import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../../errors/index.js';
import { parseAddonManifest } from '../../addons/addon-manifest.js';
import { CliError, EXIT, UsageError, table } from '../cli-io.js';
import type { Command } from '../command.js';
import { PACKAGE_ROOT } from '../package-root.js';

/** The manifest of a new addon: one function, one widget, a config with a default. */
export function scaffoldManifest(name: string): Record<string, unknown> {
  const title = name
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join(' ');
  return {
    name,
    version: '0.1.0',
    displayName: title,
    description: `${title}: a ThemePress addon.`,
    author: '',
    category: 'UTILITIES',
    permissions: ['storage.read', 'storage.write'],
    configSchema: {
      type: 'object',
      properties: { greeting: { type: 'string', default: 'Hello' } },
      additionalProperties: false,
    },
    functions: [
      {
        name: 'greet',
        description: 'Greets someone and counts the greetings of this site.',
        inputSchema: {
          type: 'object',
          properties: { name: { type: 'string', default: 'world', maxLength: 100 } },
        },
      },
    ],
    widgets: [
      {
        name: 'banner',
        displayName: 'Greeting banner',
        category: 'DISPLAY',
        configSchema: {
          type: 'object',
          properties: { title: { type: 'string', default: 'Welcome' } },
        },
        varyOn: ['visitorName'],
      },
    ],
  };
}

const INDEX_JS = `// @ts-check
/// <reference path="./sdk.d.ts" />
// One self-contained script: no require/import. The sandbox gives each entry (data, ctx) or, for
// widgets, (config, context, ctx); see sdk.d.ts.

/** @type {ThemePress.AddonModule<{ greeting: string }>} */
module.exports = {
  functions: {
    greet: async (data, ctx) => {
      const input = /** @type {{ name: string }} */ (data);
      const count = Number((await ctx.storage.get('greetings')) ?? 0) + 1;
      await ctx.storage.set('greetings', count);
      ctx.info('greeted', input.name);
      return { message: \`\${ctx.config.greeting}, \${input.name}!\`, count };
    },
  },
  widgets: {
    banner: (config, context, ctx) => {
      const { title } = /** @type {{ title: string }} */ (config);
      const visitor = /** @type {{ visitorName?: string }} */ (context).visitorName;
      return {
        html: ctx.html\`<p class="banner">\${title}\${visitor ? \`, \${visitor}\` : ''}!</p>\`,
        css: '.banner { font-weight: bold; padding: 1rem; }',
      };
    },
  },
};
`;

const FIXTURES = {
  config: { greeting: 'Hello' },
  functions: { greet: { name: 'Ada' } },
  widgets: { banner: { config: { title: 'Welcome' }, context: { visitorName: 'Ada' } } },
};

function testMjs(): string {
  return `// Runs this addon in the ThemePress sandbox under the production limits, through the CLI's local
// runner ("themepress addon validate --json"), and checks what the entries return.
// Run it with: node --test   (or npm test)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

/**
 * The themepress CLI, found by name: THEMEPRESS_CLI (a path to bin/themepress.mjs) when set, else
 * the package themepress-addon-server resolved from this folder (npm link themepress-addon-server),
 * else the themepress command on PATH (npm link, or npm install -g <clone>).
 */
function cli(args) {
  const options = { encoding: 'utf8', cwd: here };
  if (process.env.THEMEPRESS_CLI) return spawnSync(process.execPath, [process.env.THEMEPRESS_CLI, ...args], options);
  try {
    const pkgFile = createRequire(path.join(here, 'package.json')).resolve('themepress-addon-server/package.json');
    const bin = JSON.parse(readFileSync(pkgFile, 'utf8')).bin.themepress;
    return spawnSync(process.execPath, [path.join(path.dirname(pkgFile), bin), ...args], options);
  } catch {
    return spawnSync('themepress', args, { ...options, shell: process.platform === 'win32' });
  }
}

const run = cli(['addon', 'validate', here, '--json']);
if (run.error || !run.stdout) {
  throw new Error(
    \`cannot run the themepress CLI (\${run.error?.message ?? run.stderr}). Install it once from a clone of the \` +
      \`server: "npm link" there (or "npm install -g <clone>"), or set THEMEPRESS_CLI to its bin/themepress.mjs.\`,
  );
}
const report = JSON.parse(run.stdout);
const entry = (kind, name) => report.localRun?.entries.find((e) => e.kind === kind && e.name === name);

test('the manifest is valid and every function and widget runs under the production limits', () => {
  assert.deepEqual(report.problems, []);
  for (const e of report.localRun.entries) assert.equal(e.status, 'ok', \`\${e.kind} \${e.name}: \${e.message}\`);
  assert.equal(run.status, 0);
});

test('greet answers with the configured greeting and counts in storage', () => {
  assert.deepEqual(entry('function', 'greet').output, { message: 'Hello, Ada!', count: 1 });
});

test('banner renders the title and the visitor', () => {
  assert.match(entry('widget', 'banner').output.html, /Welcome, Ada!/);
});
`;
}

function packageJson(name: string): string {
  const pkg = {
    name,
    private: true,
    description: 'A ThemePress addon (manifest.json, index.js); not an npm package of its own.',
    scripts: {
      dev: 'themepress addon dev .',
      validate: 'themepress addon validate .',
      test: 'node --test',
      'publish-addon': 'themepress addon publish .',
    },
  };
  return `${JSON.stringify(pkg, null, 2)}\n`;
}

function readme(name: string): string {
  return `# ${name}

A ThemePress addon. \`manifest.json\` declares it (name, version, permissions, config schema,
functions, widgets); \`index.js\` is the code, one self-contained script run in the platform's
sandbox (see \`sdk.d.ts\` for \`ctx\`).

| command                                   | what it does                                                          |
| ----------------------------------------- | --------------------------------------------------------------------- |
| \`themepress addon dev .\`                  | runs it locally and previews the widget in a browser; re-runs on save |
| \`themepress addon validate .\`             | server-side manifest checks, then runs each entry under the limits    |
| \`node --test\`                             | \`test.mjs\`: the same local run, plus assertions on the outputs        |
| \`themepress addon publish .\`              | publishes this version (\`THEMEPRESS_API_KEY\`: a developer key)        |
| \`themepress addon install ${name}\` | installs it on a site (a site key, or an admin key with \`--site\`)   |

\`fixtures.json\` holds the sample inputs of the local run: the installation \`config\`, one input
per function, \`{ config, context }\` per widget (\`themepress addon validate --help\` lists every
section). Bump \`version\` in \`manifest.json\` before publishing again: published versions are
immutable.
`;
}

export const initCommand: Command = {
  words: ['addon', 'init'],
  summary: 'Create a new addon folder: manifest, code with one function and one widget, samples and a test.',
  usage: '<name> [--dir <path>] [--json]',
  options: { dir: { type: 'string' } },
  arity: { min: 1, max: 1 },
  details: `
Writes <dir> (default ./<name>) with:
  manifest.json   name, version 0.1.0, a config schema, the function "greet" and the widget "banner"
  index.js        their code (one self-contained script, typed through sdk.d.ts)
  fixtures.json   sample inputs for the local run of "themepress addon validate"
  test.mjs        a node:test file running that local run and checking the outputs ("node --test");
                  it finds the CLI by name (THEMEPRESS_CLI, the package themepress-addon-server, or
                  the themepress command on PATH)
  package.json    npm scripts: dev, validate, test, publish-addon
  README.md       how to validate, test, publish and install
  sdk.d.ts        the types of the addon SDK

The name follows the registry's rule: lowercase letters, digits and single dashes. The folder must
not exist or be empty.

Then "themepress addon dev <dir>" previews the widget in a browser while you edit.

Example:
  themepress addon init hello-world && themepress addon dev hello-world`,
  async run({ positionals, values, io, out }) {
    const name = positionals[0];
    try {
      parseAddonManifest(scaffoldManifest(name));
    } catch (error) {
      if (error instanceof ValidationError) {
        const reason = error.fields
          .map((f) => `${f.field.replace(/^manifest\./, '')} ${f.message}`)
          .join('; ');
        throw new UsageError(`Invalid addon name "${name}": ${reason}.`, 'themepress addon init --help');
      }
      throw error;
    }
    const directory = path.resolve(io.cwd, (values.dir as string | undefined) ?? name);
    const existing = await readdir(directory).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [];
      throw new CliError(`Cannot use ${directory}: ${error.message}`);
    });
    if (existing.length > 0) {
      throw new CliError(`${directory} already exists and is not empty; choose another --dir.`, EXIT.failure);
    }
    await mkdir(directory, { recursive: true });
    const files: Record<string, string> = {
      'manifest.json': `${JSON.stringify(scaffoldManifest(name), null, 2)}\n`,
      'index.js': INDEX_JS,
      'fixtures.json': `${JSON.stringify(FIXTURES, null, 2)}\n`,
      'test.mjs': testMjs(),
      'package.json': packageJson(name),
      'README.md': readme(name),
    };
    for (const [file, text] of Object.entries(files)) await writeFile(path.join(directory, file), text);
    const written = Object.keys(files);
    // The SDK types ship with the examples; an installation without them still gets a working addon.
    try {
      await copyFile(
        path.join(PACKAGE_ROOT, 'addons-examples', 'sdk.d.ts'),
        path.join(directory, 'sdk.d.ts'),
      );
      written.push('sdk.d.ts');
    } catch {
      out.warn('sdk.d.ts was not found next to the CLI; index.js is still valid without it');
    }
    out.result({ ok: true, name, directory, files: written });
    out.line(`✓ Created ${name} in ${directory}: ${written.join(', ')}`);
    const where = path.relative(io.cwd, directory) || '.';
    const next = [
      [`themepress addon dev ${where}`, 'preview the widget and run the function; re-runs on every save'],
      [`themepress addon validate ${where}`, "the server's checks and one run of every entry"],
      [
        `themepress addon publish ${where}`,
        "publish it (a developer key: themepress login, or a local server's admin key)",
      ],
      [`themepress addon install ${name}`, 'put it on a site (a site key, or an admin key with --site)'],
    ];
    out.line('  Next:');
    for (const line of table(next)) out.line(`    ${line}`);
    return EXIT.ok;
  },
};
