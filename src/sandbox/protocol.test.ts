import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { createBatchedSender, unbatch, type BatchMessage } from './protocol.js';

type Message = { t: 'm'; n: number };

function givenSender() {
  const writes: Array<Message | BatchMessage<Message>> = [];
  const send = createBatchedSender<Message>((message) => writes.push(message));
  return { writes, send };
}

describe('createBatchedSender', () => {
  it('writes the first message of an idle sender at once, unbatched', () => {
    const { writes, send } = givenSender();
    send({ t: 'm', n: 1 });
    assert.deepEqual(writes, [{ t: 'm', n: 1 }]);
  });

  it('batches the messages that follow in the same turn into one write at the end of the turn', async () => {
    const { writes, send } = givenSender();
    for (let n = 1; n <= 4; n += 1) send({ t: 'm', n });
    assert.equal(writes.length, 1);
    await nextTurn();
    assert.equal(writes.length, 2);
    const received: number[] = [];
    for (const write of writes) unbatch(write, (message) => received.push(message.n));
    assert.deepEqual(received, [1, 2, 3, 4]);
    assert.equal((writes[1] as BatchMessage<Message>).t, 'batch');
  });

  it('is idle again after a turn without messages', async () => {
    const { writes, send } = givenSender();
    send({ t: 'm', n: 1 });
    await nextTurn();
    await nextTurn();
    send({ t: 'm', n: 2 });
    assert.deepEqual(writes, [
      { t: 'm', n: 1 },
      { t: 'm', n: 2 },
    ]);
  });
});
