import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ExecutionEffectsRegistry, MAX_EFFECT_BYTES_PER_CALL } from './execution-effects.js';
import type { EventService } from '../events/event.service.js';
import type { DbClient } from '../infrastructure/database/database.js';

const registry = () => new ExecutionEffectsRegistry({ events: {} as EventService, root: {} as DbClient });
const write = (key: string, sizeBytes: number) => ({
  addonId: 'addon',
  siteId: 'site',
  key,
  deleted: false,
  value: 'x',
  sizeBytes,
});

describe('ExecutionEffectsRegistry.forget (a call the sandbox runs again)', () => {
  it('drops the first run’s writes and events and gives their bytes back', () => {
    // given: a call that wrote almost all it may hold, and emitted
    const effects = registry();
    const call = effects.begin('exec-1');
    call.setStorage(write('a', MAX_EFFECT_BYTES_PER_CALL - 10));
    call.addEvent({ event: { id: 'e1' }, idempotencyKey: 'k' } as never, 5);
    // when
    const forgotten = effects.forget('exec-1');
    // then: nothing is left to commit, and the second run has the whole budget again
    assert.equal(forgotten, true);
    assert.deepEqual(call.contents(), { events: [], storage: [] });
    assert.equal(call.storageState('addon', 'site', 'a'), undefined);
    assert.doesNotThrow(() => call.setStorage(write('b', MAX_EFFECT_BYTES_PER_CALL - 10)));
  });

  it('refuses while a dependency call is open, or once one merged its effects', () => {
    const effects = registry();
    const caller = effects.begin('caller');
    caller.setStorage(write('a', 10));
    const dependency = effects.begin('dependency', { parentId: 'caller' });
    dependency.setStorage(write('b', 10));
    assert.equal(effects.forget('caller'), false, 'a dependency is still open');
    void effects.settle('dependency', dependency);
    assert.equal(effects.forget('caller'), false, 'a dependency merged into it');
    assert.equal(caller.contents().storage.length, 2, 'nothing was dropped');
  });

  it('refuses an execution it does not know', () => {
    assert.equal(registry().forget('nobody'), false);
  });
});
