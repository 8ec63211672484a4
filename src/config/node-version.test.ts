import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REQUIRED_NODE_MAJOR, unsupportedNodeReason } from './node-version.js';

describe('unsupportedNodeReason', () => {
  it('names the version found and the version required for an older Node', () => {
    const reason = unsupportedNodeReason('20.20.2');
    assert.ok(reason, 'Node 20 must be refused');
    assert.match(reason, /Node\.js 20\.20\.2/);
    assert.match(reason, new RegExp(`Node\\.js ${REQUIRED_NODE_MAJOR} or newer`));
    assert.ok(unsupportedNodeReason('23.11.0'));
    assert.ok(unsupportedNodeReason('not a version'));
  });

  it(`accepts Node ${REQUIRED_NODE_MAJOR} and newer`, () => {
    assert.equal(unsupportedNodeReason('24.0.0'), null);
    assert.equal(unsupportedNodeReason('24.22.3'), null);
    assert.equal(unsupportedNodeReason('26.1.0'), null);
  });

  it('is satisfied by the Node running the tests', () => {
    assert.equal(unsupportedNodeReason(process.versions.node), null, process.version);
  });
});
