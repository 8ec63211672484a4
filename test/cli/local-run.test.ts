import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LocalRunner } from '../../src/cli/local-run.js';
import { emptyFixtures } from '../../src/cli/fixtures.js';
import { parseAddonManifest } from '../../src/addons/addon-manifest.js';
import { manifest } from '../support/fixtures.js';

const SOURCE = `module.exports = { functions: {
  fail: async (d, ctx) => { await ctx.storage.set('k', 1); await ctx.events.emit('thing.done', {}); throw new Error('no'); },
  read: async (d, ctx) => ctx.storage.get('k'),
  emit: async (d, ctx) => [
    await ctx.events.emit('thing.done', {}, { idempotencyKey: 'once' }),
    await ctx.events.emit('thing.done', {}, { idempotencyKey: 'once' }),
  ],
} };`;

describe('the local run (themepress addon validate / dev) keeps the platform rules for effects', () => {
  const runner = new LocalRunner({ siblingsDir: null, network: false });
  before(() => runner.start());
  after(() => runner.close());

  it('commits nothing of a call that fails, and answers a repeated idempotency key with the first event', async () => {
    // given
    const m = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      permissions: ['storage.read', 'storage.write', 'events.emit'],
      functions: [{ name: 'fail' }, { name: 'read' }, { name: 'emit' }],
      events: { emits: ['thing.done'] },
    });
    const addon = runner.load(
      { manifest: m, source: SOURCE, directory: '/nowhere' },
      parseAddonManifest(m),
      emptyFixtures(),
    );
    // when
    const failed = await runner.runFunction(addon, 'fail', { value: {} });
    const read = await runner.runFunction(addon, 'read', { value: {} });
    const emitted = await runner.runFunction(addon, 'emit', { value: {} });
    // then
    assert.equal(failed.status, 'error');
    assert.deepEqual(failed.events, []);
    assert.equal(read.output, null);
    const [first, second] = emitted.output as { id: string; duplicate: boolean }[];
    assert.deepEqual(second, { id: first.id, duplicate: true });
    assert.equal(emitted.events.length, 1);
  });
});
