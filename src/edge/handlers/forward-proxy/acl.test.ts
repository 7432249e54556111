import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ResolvedForward } from '../../../config/resolved.js';
import { embeddedIpv4, ForwardAcl, type NameResolver } from './acl.js';

const BASE: ResolvedForward = {
  listen: [],
  allow: ['127.0.0.0/8', '::1'],
  allowDest: [],
  denyDest: [],
  onlyAllowDest: false,
  connectPorts: [[443, 443]],
  httpPorts: [[80, 80], [1025, 65535]],
  auth: null,
  connectTimeout: 1000,
  headerTimeout: 1000,
  idleTimeout: 1000,
  maxTunnels: 10,
  dnsCacheTtl: 0,
  keepAliveTimeout: 1000,
  accessLog: true,
  cache: null,
};

/** A fixed name table standing in for DNS; it records each name asked. */
function table(entries: Record<string, string[]>): NameResolver & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    resolve: async (name) => {
      asked.push(name);
      const found = entries[name];
      if (!found) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      return found;
    },
  };
}

const acl = (config: Partial<ResolvedForward>, names: Record<string, string[]> = {}) => new ForwardAcl({ ...BASE, ...config }, table(names));

describe('forward proxy ACL', () => {
  it('allows loopback clients only by default', () => {
    const a = acl({});
    assert.equal(a.clientAllowed('127.0.0.1'), true);
    assert.equal(a.clientAllowed('::1'), true);
    assert.equal(a.clientAllowed('::ffff:127.0.0.5'), true);
    assert.equal(a.clientAllowed('10.0.0.1'), false);
    assert.equal(a.clientAllowed('2001:db8::1'), false);
  });

  it('refuses the SSRF ranges by default, naming the range', async () => {
    const a = acl({});
    const cases: [string, string][] = [
      ['127.0.0.1', 'loopback'],
      ['10.1.2.3', 'private'],
      ['172.20.0.1', 'private'],
      ['192.168.1.1', 'private'],
      ['169.254.169.254', 'cloud metadata'],
      ['169.254.1.1', 'link-local'],
      ['100.64.0.1', 'carrier-grade NAT'],
      ['0.0.0.0', 'reserved'],
      ['::1', 'loopback'],
      ['fd00:ec2::254', 'cloud metadata'],
      ['fd12::1', 'unique-local'],
      ['fe80::1', 'link-local'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:7f00:1', 'loopback'],
      ['64:ff9b::a9fe:a9fe', 'cloud metadata'],
      ['2002:a00:1::1', 'private'],
      ['224.0.0.1', 'multicast'],
    ];
    for (const [address, range] of cases) {
      const decision = await a.check(address);
      assert.equal(decision.ok, false, address);
      if (!decision.ok) {
        assert.equal(decision.status, 403);
        assert.match(decision.reason, new RegExp(`\\(${range}\\)`), address);
      }
    }
    assert.deepEqual(await a.check('93.184.216.34'), { ok: true, addresses: ['93.184.216.34'] });
    assert.deepEqual(await a.check('2606:2800:220:1::1'), { ok: true, addresses: ['2606:2800:220:1::1'] });
  });

  it('checks every address a name resolves to, and keeps only those that pass', async () => {
    const a = acl({}, { 'rebind.test': ['93.184.216.34', '127.0.0.1'], 'internal.test': ['10.0.0.5'], localhost: ['::1', '127.0.0.1'] });
    assert.deepEqual(await a.check('rebind.test'), { ok: true, addresses: ['93.184.216.34'] });
    const internal = await a.check('internal.test');
    assert.equal(internal.ok, false);
    assert.match(internal.ok ? '' : internal.reason, /internal\.test resolves to a refused address: destination 10\.0\.0\.5 .*private/);
    assert.equal((await a.check('localhost')).ok, false);
    const missing = await a.check('nowhere.test');
    assert.deepEqual(missing.ok ? null : [missing.status, /ENOTFOUND/.test(missing.reason)], [502, true]);
  });

  it('allowDest opens names (exact and wildcard), addresses and blocks; denyDest wins over it', async () => {
    const names = { 'db.corp.test': ['10.0.0.7'], 'corp.test': ['10.0.0.8'], 'evil.corp.test': ['10.0.0.9'], localhost: ['::1', '127.0.0.1'] };
    const a = acl({ allowDest: ['*.corp.test', '127.0.0.1', '192.168.0.0/16'], denyDest: ['evil.corp.test', '192.168.66.0/24'] }, names);
    assert.deepEqual(await a.check('db.corp.test'), { ok: true, addresses: ['10.0.0.7'] });
    // "*.corp.test" is the names below corp.test, not corp.test itself.
    assert.equal((await a.check('corp.test')).ok, false);
    assert.equal((await a.check('evil.corp.test')).ok, false);
    assert.deepEqual(await a.check('192.168.1.1'), { ok: true, addresses: ['192.168.1.1'] });
    assert.equal((await a.check('192.168.66.1')).ok, false);
    // localhost: ::1 is still refused, 127.0.0.1 is allowed: only the allowed one is used.
    assert.deepEqual(await a.check('localhost'), { ok: true, addresses: ['127.0.0.1'] });
    assert.deepEqual(await a.check('DB.Corp.Test.'), { ok: true, addresses: ['10.0.0.7'] });
  });

  it('denyDest refuses a name before resolving it', async () => {
    const names = table({ 'ads.test': ['93.184.216.34'] });
    const a = new ForwardAcl({ ...BASE, denyDest: ['ads.test', '*.ads.test'] }, names);
    assert.equal((await a.check('ads.test')).ok, false);
    assert.equal((await a.check('x.ads.test')).ok, false);
    assert.deepEqual(names.asked, []);
  });

  it('onlyAllowDest turns the proxy into a whitelist', async () => {
    const a = acl({ onlyAllowDest: true, allowDest: ['example.test'] }, { 'example.test': ['93.184.216.34'], 'other.test': ['93.184.216.35'] });
    assert.equal((await a.check('example.test')).ok, true);
    assert.equal((await a.check('other.test')).ok, false);
    assert.equal((await a.check('93.184.216.36')).ok, false);
  });

  it('port ranges', () => {
    const a = acl({ connectPorts: [[443, 443], [8000, 8010]] });
    assert.deepEqual([443, 25, 8000, 8010, 8011].map((p) => a.connectPorts.has(p)), [true, false, true, true, false]);
    assert.deepEqual([80, 25, 1024, 1025, 65535].map((p) => a.httpPorts.has(p)), [true, false, false, true, true]);
  });

  it('finds the IPv4 address inside mapped, NAT64 and 6to4 addresses', () => {
    assert.equal(embeddedIpv4('::ffff:10.0.0.1'), '10.0.0.1');
    assert.equal(embeddedIpv4('::ffff:a00:1'), '10.0.0.1');
    assert.equal(embeddedIpv4('64:ff9b::7f00:1'), '127.0.0.1');
    assert.equal(embeddedIpv4('2002:c0a8:101::1'), '192.168.1.1');
    assert.equal(embeddedIpv4('2606:2800:220:1::1'), null);
    assert.equal(embeddedIpv4('not an address'), null);
  });
});
