import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KNOWN_OPERATION_NAMES, OperationNameLabels } from './operation-name-labels.js';

/** The repository root: this file runs from dist/src/infrastructure/metrics/. */
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

function files(dir: string, extensions: string[]): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) return files(full, extensions);
    return extensions.some((e) => entry.endsWith(e)) && !entry.endsWith('.test.ts') ? [full] : [];
  });
}

describe('operation-name metric labels', () => {
  it('knows every operation the dashboard, the CLI, the seed, keys:create and the docs send by name', () => {
    // given
    const sources = [
      ...files(path.join(ROOT, 'src/dashboard/public'), ['.js']),
      ...files(path.join(ROOT, 'src/cli'), ['.ts']),
      ...files(path.join(ROOT, 'src/seed'), ['.ts']),
      path.join(ROOT, 'src/auth/create-key-cli.ts'),
      path.join(ROOT, 'README.md'),
      ...files(path.join(ROOT, 'docs'), ['.md']),
    ];
    // when
    const named = new Set<string>();
    for (const file of sources) {
      for (const match of readFileSync(file, 'utf8').matchAll(
        /\b(?:query|mutation|subscription) ([A-Z][A-Za-z0-9_]*)\s*[({]/g,
      )) {
        named.add(match[1]);
      }
    }
    // then
    assert.ok(named.size > 20, `found only ${[...named].join(', ')}`);
    assert.deepEqual(
      [...named].filter((name) => !KNOWN_OPERATION_NAMES.includes(name)),
      [],
    );
  });

  it('labels known names for anyone, folds what anonymous callers invent into other', () => {
    const labels = new OperationNameLabels();
    assert.equal(labels.label('DashboardStats', null), 'DashboardStats');
    assert.equal(labels.label(undefined, null), 'anonymous');
    assert.equal(labels.label('Made_Up_1', null), 'other');
    assert.equal(labels.label('not a name!', 'key-1'), 'other');
  });

  it("admits an authenticated key's own names within its budget and the total, first come", () => {
    // given
    const labels = new OperationNameLabels({ known: [], perKeyBudget: 2, maxAdmitted: 3 });
    // when / then: key 1 spends its budget
    assert.equal(labels.label('ShopProducts', 'key-1'), 'ShopProducts');
    assert.equal(labels.label('ShopCart', 'key-1'), 'ShopCart');
    assert.equal(labels.label('ShopFlood1', 'key-1'), 'other');
    // an admitted name costs nothing to use again, for anyone
    assert.equal(labels.label('ShopProducts', 'key-1'), 'ShopProducts');
    assert.equal(labels.label('ShopProducts', null), 'ShopProducts');
    // anonymous callers flooding names never take a slot: key 2 still gets one
    for (let i = 0; i < 1000; i += 1) assert.equal(labels.label(`Flood${i}`, null), 'other');
    assert.equal(labels.label('BlogPosts', 'key-2'), 'BlogPosts');
    // the total holds
    assert.equal(labels.label('BlogComments', 'key-2'), 'other');
  });
});
