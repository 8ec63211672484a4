import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileProxyTrust, createLimitAddress } from './client-address.js';

describe('the address a caller is counted under', () => {
  const limitAddress = createLimitAddress(56);

  it('keeps an IPv4 address, and reads an IPv4-mapped IPv6 one as IPv4', () => {
    assert.equal(limitAddress('203.0.113.7'), '203.0.113.7');
    assert.equal(limitAddress('::ffff:203.0.113.7'), '203.0.113.7');
  });

  it('counts IPv6 addresses per network of the prefix length', () => {
    assert.equal(limitAddress('2001:db8:1:200::1'), '2001:db8:1:200::/56');
    assert.equal(limitAddress('2001:db8:1:2ff:ffff:ffff:ffff:9'), '2001:db8:1:200::/56');
    assert.equal(limitAddress('2001:db8:1:300::1'), '2001:db8:1:300::/56');
    assert.equal(createLimitAddress(128)('2001:db8::9'), '2001:db8::9/128');
    assert.equal(createLimitAddress(64)('fe80::1:2:3:4%eth0'), 'fe80::/64');
  });

  it('leaves what is not an address as it is', () => {
    assert.equal(limitAddress(''), '');
    assert.equal(limitAddress('2001:db8::/56'), '2001:db8::/56');
  });

  it('trusts no proxy for an empty list, and refuses an entry that is not an address', () => {
    assert.equal(compileProxyTrust([]), false);
    const trust = compileProxyTrust(['10.0.0.0/8']);
    assert.ok(trust && trust('10.1.2.3', 0) && !trust('11.1.2.3', 0));
    assert.throws(() => compileProxyTrust(['proxy.internal']));
  });
});
