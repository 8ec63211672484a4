import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createSchema, printSchemaSdl } from '../../src/graphql/schema.js';

describe('schema snapshot', () => {
  it('schema/schema.graphql is what the code emits (run `npm run schema:emit` after changing types)', async () => {
    const committed = await readFile(new URL('../../../schema/schema.graphql', import.meta.url), 'utf8');
    const emitted = printSchemaSdl(await createSchema());
    assert.equal(emitted, committed);
  });
});
