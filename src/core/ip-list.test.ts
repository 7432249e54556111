import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IpAccessList, IpSet, parseIpBlock, unmapIpv4 } from './ip-list.js';

describe('parseIpBlock', () => {
  it('addresses and blocks of both families', () => {
    assert.deepEqual(parseIpBlock('192.0.2.1'), { address: '192.0.2.1', prefix: 32, family: 'ipv4' });
    assert.deepEqual(parseIpBlock('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    assert.deepEqual(parseIpBlock('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
    assert.deepEqual(parseIpBlock('2001:db8::/32'), { address: '2001:db8::', prefix: 32, family: 'ipv6' });
    assert.deepEqual(parseIpBlock('0.0.0.0/0'), { address: '0.0.0.0', prefix: 0, family: 'ipv4' });
  });
  it('a mapped IPv6 block is the IPv4 block it covers', () => {
    assert.deepEqual(parseIpBlock('::ffff:10.0.0.0/104'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    assert.deepEqual(parseIpBlock('::FFFF:192.0.2.7'), { address: '192.0.2.7', prefix: 32, family: 'ipv4' });
  });
  it('refuses what is not an address or block', () => {
    for (const bad of ['', 'localhost', '10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/8/1', '10.0.0.0/-1', '10.0.0.0/a', '1.2.3', '10.0.0.0 /8', 'all']) {
      assert.equal(parseIpBlock(bad), null, bad);
    }
  });
});

describe('unmapIpv4', () => {
  it('strips the mapping prefix only from mapped IPv4', () => {
    assert.equal(unmapIpv4('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(unmapIpv4('::FFFF:10.1.2.3'), '10.1.2.3');
    assert.equal(unmapIpv4('127.0.0.1'), '127.0.0.1');
    assert.equal(unmapIpv4('::1'), '::1');
    assert.equal(unmapIpv4('2001:db8::ffff:1'), '2001:db8::ffff:1');
    assert.equal(unmapIpv4('::ffff:abcd'), '::ffff:abcd');
  });
});

describe('IpSet', () => {
  const set = new IpSet(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::1']);
  it('matches addresses inside blocks of both families', () => {
    assert.ok(set.has('10.255.0.1'));
    assert.ok(set.has('192.0.2.7'));
    assert.ok(set.has('2001:db8:1::5'));
    assert.ok(set.has('::1'));
    assert.ok(!set.has('11.0.0.1'));
    assert.ok(!set.has('192.0.2.8'));
    assert.ok(!set.has('2001:db9::1'));
    assert.ok(!set.has('::2'));
  });
  it('matches IPv4-mapped IPv6 addresses as IPv4', () => {
    assert.ok(set.has('::ffff:10.1.2.3'));
    assert.ok(!set.has('::ffff:11.1.2.3'));
    assert.ok(new IpSet(['::ffff:127.0.0.1']).has('127.0.0.1'));
  });
  it('a /0 matches its whole family only', () => {
    const v4 = new IpSet(['0.0.0.0/0']);
    assert.ok(v4.has('8.8.8.8'));
    assert.ok(!v4.has('::1'));
    const v6 = new IpSet(['::/0']);
    assert.ok(v6.has('::1'));
    assert.ok(!v6.has('1.2.3.4'));
  });
  it('never matches a non-address', () => {
    assert.ok(!set.has(''));
    assert.ok(!set.has('garbage'));
    assert.ok(!new IpSet(['0.0.0.0/0', '::/0']).has('unknown'));
  });
  it('refuses a bad entry, naming it', () => {
    assert.throws(() => new IpSet(['10.0.0.0/8', 'nope']), /"nope"/);
  });
});

describe('IpAccessList (nginx allow/deny)', () => {
  it('the first matching rule wins', () => {
    // nginx's documentation example.
    const list = new IpAccessList([{ deny: '192.168.1.1' }, { allow: '192.168.1.0/24' }, { allow: '10.1.1.0/16' }, { allow: '2001:0db8::/32' }, { deny: 'all' }]);
    assert.equal(list.check('192.168.1.1'), 'deny');
    assert.equal(list.check('192.168.1.2'), 'allow');
    assert.equal(list.check('10.1.200.3'), 'allow');
    assert.equal(list.check('2001:db8::42'), 'allow');
    assert.equal(list.check('::ffff:192.168.1.1'), 'deny');
    assert.equal(list.check('::ffff:192.168.1.9'), 'allow');
    assert.equal(list.check('172.16.0.1'), 'deny');
    assert.equal(list.check('::1'), 'deny');
    assert.equal(list.check(''), 'deny', 'deny all covers unix-socket clients too, as in nginx');
  });
  it('no matching rule allows', () => {
    const list = new IpAccessList([{ deny: '10.0.0.0/8' }]);
    assert.equal(list.check('10.0.0.1'), 'deny');
    assert.equal(list.check('127.0.0.1'), 'allow');
    assert.equal(list.check('::1'), 'allow');
    assert.equal(new IpAccessList([]).check('1.2.3.4'), 'allow');
  });
  it('an earlier allow shadows a later deny of the same address', () => {
    const list = new IpAccessList([{ allow: '127.0.0.1' }, { deny: '127.0.0.0/8' }, { allow: '::1' }, { deny: 'all' }]);
    assert.equal(list.check('127.0.0.1'), 'allow');
    assert.equal(list.check('127.0.0.2'), 'deny');
    assert.equal(list.check('::1'), 'allow');
    assert.equal(list.check('::2'), 'deny');
  });
  it('unix: matches only clients without an address', () => {
    const list = new IpAccessList([{ allow: 'unix:' }, { deny: 'all' }]);
    assert.equal(list.check(''), 'allow');
    assert.equal(list.check('127.0.0.1'), 'deny');
  });
  it('names a bad rule by index', () => {
    assert.throws(() => new IpAccessList([{ allow: '::1' }, { deny: 'example.com' }]), /rule 1: .*"example\.com"/);
  });
});
