import type { IncomingMessage } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';
import ipaddr from 'ipaddr.js';

/** Whether an address (at a hop from the socket) is a proxy whose X-Forwarded-For is believed. */
export type ProxyTrust = (address: string, hop: number) => boolean;

/**
 * The trust rule for TRUST_PROXY's addresses (IPs, CIDRs, or `loopback`, `linklocal`,
 * `uniquelocal`); false when none are trusted. One rule serves Fastify's `request.ip` and the
 * WebSocket upgrades, so both count a caller under the same address. Throws on an entry that is
 * not an address.
 */
export function compileProxyTrust(addresses: readonly string[]): ProxyTrust | false {
  return addresses.length === 0 ? false : proxyAddr.compile([...addresses]);
}

/**
 * The caller's address of a raw request: the socket's peer, or, when that peer is a trusted proxy,
 * the nearest address in X-Forwarded-For that is not one.
 */
export function createClientAddress(trust: ProxyTrust | false): (request: IncomingMessage) => string {
  if (!trust) return (request) => request.socket.remoteAddress ?? '';
  return (request) => proxyAddr(request, trust);
}

/**
 * The address the per-address limits count a caller under: an IPv4 address as it is (an
 * IPv4-mapped IPv6 one too), an IPv6 address as its network of `ipv6Subnet` bits, since one host
 * commonly holds a whole /64 or more. Anything else (no address) is returned as it is.
 */
export function createLimitAddress(ipv6Subnet: number): (ip: string) => string {
  return (ip) => {
    if (!ipaddr.isValid(ip)) return ip;
    const parsed = ipaddr.process(ip);
    if (parsed.kind() === 'ipv4') return parsed.toString();
    const bytes = parsed.toByteArray();
    for (let bit = ipv6Subnet; bit < 128; bit++) bytes[bit >> 3] &= ~(0x80 >> (bit & 7));
    return `${ipaddr.fromByteArray(bytes).toString()}/${ipv6Subnet}`;
  };
}
