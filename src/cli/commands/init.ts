import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../../errors/index.js';
import { parseAddonManifest } from '../../addons/addon-manifest.js';
import { CliError, EXIT, UsageError } from '../cli-io.js';
import type { Command } from '../command.js';
import { CLI_BIN, PACKAGE_ROOT } from '../package-root.js';

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

function testMjs(cliPath: string): string {
  return `// Runs this addon in the ThemePress sandbox under the production limits, through the CLI's local
// runner ("themepress addon validate --json"), and checks what the entries return.
// Run it with: node --test
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
// THEMEPRESS_CLI points at another bin/themepress.mjs; the default is the CLI that created this addon.
const cli = process.env.THEMEPRESS_CLI ?? ${JSON.stringify(cliPath)};

const run = spawnSync(process.execPath, [cli, 'addon', 'validate', here, '--json'], { encoding: 'utf8' });
if (run.error || !run.stdout) {
  throw new Error(\`could not run \${cli} (set THEMEPRESS_CLI): \${run.error?.message ?? run.stderr}\`);
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

function readme(name: string): string {
  return `# ${name}

A ThemePress addon. \`manifest.json\` declares it (name, version, permissions, config schema,
functions, widgets); \`index.js\` is the code, one self-contained script run in the platform's
sandbox (see \`sdk.d.ts\` for \`ctx\`).

| command                                   | what it does                                                          |
| ----------------------------------------- | --------------------------------------------------------------------- |
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
  test.mjs        a node:test file running that local run and checking the outputs ("node --test")
  README.md       how to validate, test, publish and install
  sdk.d.ts        the types of the addon SDK

The name follows the registry's rule: lowercase letters, digits and single dashes. The folder must
not exist or be empty.

Example:
  themepress addon init hello-world && cd hello-world && node --test`,
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
      'test.mjs': testMjs(CLI_BIN),
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
    out.line('  Next:');
    out.line(`    themepress addon validate ${path.relative(io.cwd, directory) || '.'}`);
    out.line(`    (cd ${path.relative(io.cwd, directory) || '.'} && node --test)`);
    return EXIT.ok;
  },
};
