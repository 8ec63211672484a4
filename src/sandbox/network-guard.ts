import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';

/**
 * Addresses an addon's `ctx.http.fetch` may not reach unless the operator allows private networks:
 * loopback, private ranges, link-local (cloud metadata at 169.254.169.254), carrier-grade NAT,
 * benchmarking, multicast and reserved ranges, and their IPv6 counterparts.
 */
const NON_PUBLIC = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  // Documentation ranges (TEST-NET-1, 2 and 3): never a real destination.
  ['192.0.2.0', 24],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  NON_PUBLIC.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 127], // :: and ::1
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96], // NAT64: an IPv4 address in disguise
  ['2001:db8::', 32], // documentation
] as const) {
  NON_PUBLIC.addSubnet(network, prefix, 'ipv6');
}

/** Raised (as a fetch failure's cause) when a request would reach a non-public address. */
export class PrivateAddressError extends Error {
  readonly code = 'TP_PRIVATE_ADDRESS';
  constructor(
    readonly host: string,
    readonly address: string,
  ) {
    super(`${host} resolves to ${address}, a private, loopback or reserved address`);
  }
}

/** True for an address on the public internet (see {@link NON_PUBLIC}). */
export function isPublicAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  const family = isIP(bare);
  if (family === 0) return false;
  if (family === 6) {
    // IPv4-mapped (::ffff:10.0.0.1) and IPv4-compatible forms are judged as the IPv4 they carry.
    const mapped = /^::(?:ffff:)?(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
    if (mapped) return !NON_PUBLIC.check(mapped[1], 'ipv4');
    const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(bare);
    if (hex) {
      const value = (parseInt(hex[1], 16) << 16) | parseInt(hex[2], 16);
      const ipv4 = [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.');
      return !NON_PUBLIC.check(ipv4, 'ipv4');
    }
    return !NON_PUBLIC.check(bare, 'ipv6');
  }
  return !NON_PUBLIC.check(bare, 'ipv4');
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A DNS lookup for outgoing connections that fails when any address of the name is not public.
 * The connection then uses exactly the addresses checked here, so a name that resolves to a public
 * address for the check and to 127.0.0.1 for the connection (DNS rebinding) gets nowhere.
 */
function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, '');
    const blocked = addresses.find((entry) => !isPublicAddress(entry.address));
    if (blocked) return callback(new PrivateAddressError(hostname, blocked.address), '');
    if (options.all) return callback(null, addresses);
    const [first] = addresses;
    callback(null, first.address, first.family);
  });
}

/**
 * `fetch` for addon code: refuses URLs whose host is, or resolves to, a non-public address (an
 * allow-listed name cannot be pointed at the platform's own network), and pins the connection to
 * the checked addresses. Fails with a TypeError whose `cause` is a {@link PrivateAddressError}.
 */
export function createGuardedFetch(): typeof fetch {
  const agent = new Agent({ connect: { lookup: guardedLookup } });
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) !== 0 && !isPublicAddress(host)) {
      throw new TypeError('fetch failed', { cause: new PrivateAddressError(host, host) });
    }
    return undiciFetch(url, { ...(init as object), dispatcher: agent }) as unknown as Response;
  }) as typeof fetch;
}
