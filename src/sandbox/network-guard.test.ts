import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isPublicAddress } from './network-guard.js';

describe('isPublicAddress', () => {
  it('refuses loopback, private, link-local and reserved IPv4 ranges', () => {
    for (const address of [
      '127.0.0.1',
      '127.8.9.10',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '203.0.113.7',
      '255.255.255.255',
    ]) {
      assert.equal(isPublicAddress(address), false, address);
    }
  });

  it('refuses their IPv6 counterparts, IPv4-mapped forms included', () => {
    for (const address of [
      '::1',
      '::',
      'fe80::1',
      'fd12:3456::1',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:a9fe:a9fe',
      '[::1]',
      '64:ff9b::a00:1',
      '2001:db8::1',
    ]) {
      assert.equal(isPublicAddress(address), false, address);
    }
  });

  it('accepts public addresses, next to the private ranges too', () => {
    for (const address of [
      '8.8.8.8',
      '172.15.255.255',
      '172.32.0.1',
      '93.184.216.34',
      '2606:4700:4700::1111',
      '::ffff:8.8.8.8',
    ]) {
      assert.equal(isPublicAddress(address), true, address);
    }
  });

  it('treats what is not an address as not public', () => {
    assert.equal(isPublicAddress('localhost'), false);
    assert.equal(isPublicAddress(''), false);
  });
});
