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
  it('writes a lone message at the end of the turn, unbatched', async () => {
    const { writes, send } = givenSender();
    send({ t: 'm', n: 1 });
    assert.deepEqual(writes, []);
    await nextTurn();
    assert.deepEqual(writes, [{ t: 'm', n: 1 }]);
  });

  it('writes the messages of one turn as one batch, in order', async () => {
    const { writes, send } = givenSender();
    for (let n = 1; n <= 4; n += 1) send({ t: 'm', n });
    assert.equal(writes.length, 0);
    await nextTurn();
    assert.equal(writes.length, 1);
    assert.equal((writes[0] as BatchMessage<Message>).t, 'batch');
    const received: number[] = [];
    unbatch(writes[0], (message) => received.push(message.n));
    assert.deepEqual(received, [1, 2, 3, 4]);
  });

  it('starts a new write for messages sent in a later turn', async () => {
    const { writes, send } = givenSender();
    send({ t: 'm', n: 1 });
    await nextTurn();
    send({ t: 'm', n: 2 });
    send({ t: 'm', n: 3 });
    await nextTurn();
    assert.equal(writes.length, 2);
    assert.deepEqual(writes[0], { t: 'm', n: 1 });
    assert.deepEqual(writes[1], {
      t: 'batch',
      messages: [
        { t: 'm', n: 2 },
        { t: 'm', n: 3 },
      ],
    });
  });
});
