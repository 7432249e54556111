/**
 * The load-balancing selectors on their own: sequences and shares are counted exactly where the
 * algorithm is deterministic (smooth weighted round robin, least-conn, hashing) and bounded where
 * it is random (two random choices).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConsistentHash, createSelector, IpHash, LeastConnections, RandomTwoChoices, RoundRobin, type Balanced } from './balancer.js';

class Fake implements Balanced {
  active = 0;
  factor = 1;
  constructor(
    readonly name: string,
    readonly weight = 1,
  ) {}
  effectiveWeightFactor(): number {
    return this.factor;
  }
}

const servers = (...specs: [string, number?][]): Fake[] => specs.map(([name, weight]) => new Fake(name, weight ?? 1));

function counts(picks: readonly Fake[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const pick of picks) out.set(pick.name, (out.get(pick.name) ?? 0) + 1);
  return out;
}

describe('smooth weighted round robin', () => {
  it('weights 5:1:1 give the nginx sequence a a b a c a a, again and again', () => {
    const all = servers(['a', 5], ['b', 1], ['c', 1]);
    const rr = new RoundRobin<Fake>();
    const sequence = Array.from({ length: 21 }, () => rr.select(all, '', 0).name).join('');
    assert.equal(sequence, 'aabacaa'.repeat(3));
  });

  it('weights 3:1 give exactly 75% / 25% over 4000 picks, never two of the light server in a row', () => {
    const all = servers(['a', 3], ['b', 1]);
    const rr = new RoundRobin<Fake>();
    const picks = Array.from({ length: 4000 }, () => rr.select(all, '', 0));
    assert.deepEqual(Object.fromEntries(counts(picks)), { a: 3000, b: 1000 });
    for (let i = 1; i < picks.length; i++) assert.ok(!(picks[i]?.name === 'b' && picks[i - 1]?.name === 'b'), `b twice in a row at ${i}`);
    // Every window of 4 picks holds exactly one b (smooth, not bursty).
    for (let i = 0; i + 4 <= picks.length; i += 4) assert.equal(picks.slice(i, i + 4).filter((p) => p.name === 'b').length, 1);
  });

  it('equal weights cycle through the servers in order', () => {
    const all = servers(['a'], ['b'], ['c']);
    const rr = new RoundRobin<Fake>();
    assert.equal(Array.from({ length: 9 }, () => rr.select(all, '', 0).name).join(''), 'abcabcabc');
  });

  it('a server missing from the candidates (down) is skipped; the others keep their ratio', () => {
    const all = servers(['a', 2], ['b', 1], ['c', 1]);
    const rr = new RoundRobin<Fake>();
    const withoutC = all.filter((s) => s.name !== 'c');
    const picks = Array.from({ length: 300 }, () => rr.select(withoutC, '', 0));
    assert.deepEqual(Object.fromEntries(counts(picks)), { a: 200, b: 100 });
  });

  it('a slow-starting server (weight factor 0.1) gets about a tenth of its usual share', () => {
    const all = servers(['a'], ['b']);
    (all[1] as Fake).factor = 0.1;
    const rr = new RoundRobin<Fake>();
    const c = counts(Array.from({ length: 1100 }, () => rr.select(all, '', 0)));
    // Weights 1 : 0.1 → b gets 1/11 of the picks.
    assert.ok(Math.abs((c.get('b') ?? 0) - 100) <= 2, `b got ${c.get('b')}`);
  });
});

describe('least connections', () => {
  it('picks the server with the fewest requests in flight', () => {
    const [a, b, c] = servers(['a'], ['b'], ['c']) as [Fake, Fake, Fake];
    a.active = 3;
    b.active = 1;
    c.active = 2;
    const lc = new LeastConnections<Fake>();
    for (let i = 0; i < 5; i++) assert.equal(lc.select([a, b, c], '', 0), b);
  });

  it('compares active / weight: 4 in flight on weight 4 beats 2 in flight on weight 1', () => {
    const [a, b] = servers(['a', 4], ['b', 1]) as [Fake, Fake];
    a.active = 4;
    b.active = 2;
    const lc = new LeastConnections<Fake>();
    assert.equal(lc.select([a, b], '', 0), a);
    a.active = 9; // 9/4 > 2/1
    assert.equal(lc.select([a, b], '', 0), b);
  });

  it('breaks ties round robin among the least loaded only', () => {
    const [a, b, c, d] = servers(['a'], ['b'], ['c'], ['d']) as [Fake, Fake, Fake, Fake];
    d.active = 1;
    const lc = new LeastConnections<Fake>();
    const sequence = Array.from({ length: 9 }, () => lc.select([a, b, c, d], '', 0).name).join('');
    assert.equal(sequence, 'abcabcabc');
  });

  it('keeps every server equally busy when each pick holds a connection', () => {
    const all = servers(['a'], ['b'], ['c']);
    const lc = new LeastConnections<Fake>();
    for (let i = 0; i < 30; i++) lc.select(all, '', 0).active++;
    assert.deepEqual(
      all.map((s) => s.active),
      [10, 10, 10],
    );
  });
});

describe('consistent hash (ketama)', () => {
  const KEYS = Array.from({ length: 10_000 }, (_, i) => `/item/${i}?user=${(i * 7919) % 10_007}`);
  const five = servers(['10.0.0.1:80'], ['10.0.0.2:80'], ['10.0.0.3:80'], ['10.0.0.4:80'], ['10.0.0.5:80']);

  function assign(selector: ConsistentHash<Fake>, candidates: readonly Fake[]): string[] {
    return KEYS.map((key) => selector.select(candidates, key).name);
  }

  it('the same key always goes to the same server', () => {
    const ch = new ConsistentHash<Fake>();
    ch.setMembers(five);
    for (const key of KEYS.slice(0, 200)) {
      const first = ch.select(five, key);
      for (let i = 0; i < 3; i++) assert.equal(ch.select(five, key), first);
    }
  });

  it('spreads 10,000 keys roughly evenly over 5 servers (each 10–30%)', () => {
    const ch = new ConsistentHash<Fake>();
    ch.setMembers(five);
    const c = counts(assign(ch, five).map((name) => ({ name }) as Fake));
    assert.equal(c.size, 5);
    for (const [name, n] of c) assert.ok(n >= 1000 && n <= 3000, `${name} got ${n} of 10000 keys`);
  });

  for (const removed of [0, 2, 4]) {
    it(`removing server ${removed + 1} of 5 moves only its own keys (at most 25%)`, () => {
      const ch = new ConsistentHash<Fake>();
      ch.setMembers(five);
      const before = assign(ch, five);
      const rest = five.filter((_, i) => i !== removed);
      const goneName = (five[removed] as Fake).name;
      // Unavailable at lookup (the ring is unchanged) and rebuilt without it (a reload): same answer.
      const after = assign(ch, rest);
      const rebuilt = new ConsistentHash<Fake>();
      rebuilt.setMembers(rest);
      assert.deepEqual(assign(rebuilt, rest), after);
      let moved = 0;
      for (let i = 0; i < KEYS.length; i++) {
        if (before[i] === after[i]) continue;
        moved++;
        assert.equal(before[i], goneName, `key ${KEYS[i]} moved from ${before[i]} though ${goneName} left`);
        assert.notEqual(after[i], goneName);
      }
      const owned = before.filter((name) => name === goneName).length;
      assert.equal(moved, owned, 'exactly the removed server’s keys move');
      assert.ok(moved / KEYS.length <= 0.25, `${moved} of ${KEYS.length} keys moved`);
      assert.ok(moved > 0);
    });
  }

  it('adding a sixth server takes keys only onto itself', () => {
    const ch = new ConsistentHash<Fake>();
    ch.setMembers(five);
    const before = assign(ch, five);
    const six = [...five, new Fake('10.0.0.6:80')];
    const grown = new ConsistentHash<Fake>();
    grown.setMembers(six);
    const after = assign(grown, six);
    let moved = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      assert.equal(after[i], '10.0.0.6:80');
    }
    assert.ok(moved / KEYS.length <= 0.25, `${moved} moved`);
  });

  it('a server of weight 2 owns about twice the keys of a server of weight 1', () => {
    const all = servers(['x:1', 2], ['y:1', 1], ['z:1', 1]);
    const ch = new ConsistentHash<Fake>();
    ch.setMembers(all);
    const c = counts(KEYS.map((key) => ch.select(all, key)));
    const share = (c.get('x:1') ?? 0) / KEYS.length;
    assert.ok(share > 0.4 && share < 0.6, `weight-2 share ${share}`);
  });

  it('createSelector("hash") builds the ring over all servers', () => {
    const sel = createSelector<Fake>('hash', five);
    const ch = new ConsistentHash<Fake>();
    ch.setMembers(five);
    for (const key of KEYS.slice(0, 500)) assert.equal(sel.select(five, key, 0), ch.select(five, key));
  });
});

describe('ip hash', () => {
  const five = servers(['10.0.0.1:80'], ['10.0.0.2:80'], ['10.0.0.3:80'], ['10.0.0.4:80'], ['10.0.0.5:80']);
  const ip = new IpHash<Fake>();
  ip.setMembers(five);

  it('keeps every address of an IPv4 /24 on one server (also written as ::ffff:a.b.c.d)', () => {
    for (let net = 0; net < 50; net++) {
      const prefix = `192.0.${net}`;
      const first = ip.select(five, `${prefix}.1`);
      for (let host = 2; host < 255; host += 17) {
        assert.equal(ip.select(five, `${prefix}.${host}`), first, `${prefix}.${host}`);
        assert.equal(ip.select(five, `::ffff:${prefix}.${host}`), first, `::ffff:${prefix}.${host}`);
      }
    }
  });

  it('spreads different /24 networks over all servers', () => {
    const c = counts(Array.from({ length: 2000 }, (_, i) => ip.select(five, `10.${i >> 8}.${i & 255}.1`)));
    assert.equal(c.size, 5);
    for (const [name, n] of c) assert.ok(n >= 200 && n <= 600, `${name} got ${n} of 2000 networks`);
  });

  it('hashes the whole IPv6 address', () => {
    const picks = new Set(Array.from({ length: 200 }, (_, i) => ip.select(five, `2001:db8::${i.toString(16)}`).name));
    assert.ok(picks.size > 1, 'IPv6 clients in one /64 are not all sent to one server');
    assert.equal(ip.select(five, '2001:db8::1'), ip.select(five, '2001:db8::1'));
  });
});

describe('two random choices', () => {
  it('never picks the busier of two servers when the two choices differ', () => {
    const [idle, busy] = servers(['idle'], ['busy']) as [Fake, Fake];
    busy.active = 10;
    const r2 = new RandomTwoChoices<Fake>();
    const c = counts(Array.from({ length: 4000 }, () => r2.select([idle, busy], '', 0)));
    // The busy one wins only when all five draws land on it: (1/2)^5 ≈ 3% of picks at most.
    assert.ok((c.get('busy') ?? 0) < 4000 * 0.06, `busy got ${c.get('busy')}`);
  });

  it('with three servers the most loaded one is picked only when drawn twice', () => {
    const [a, b, c] = servers(['a'], ['b'], ['c']) as [Fake, Fake, Fake];
    a.active = 0;
    b.active = 1;
    c.active = 5;
    const r2 = new RandomTwoChoices<Fake>();
    const n = counts(Array.from({ length: 6000 }, () => r2.select([a, b, c], '', 0)));
    // a wins whenever drawn (≈ 5/9); c almost never.
    assert.ok((n.get('a') ?? 0) > 6000 * 0.45, `a ${n.get('a')}`);
    assert.ok((n.get('c') ?? 0) < 6000 * 0.02, `c ${n.get('c')}`);
  });

  it('spreads evenly over equally loaded servers', () => {
    const all = servers(['a'], ['b'], ['c'], ['d']);
    const r2 = new RandomTwoChoices<Fake>();
    const n = counts(Array.from({ length: 8000 }, () => r2.select(all, '', 0)));
    for (const [name, k] of n) assert.ok(k > 1600 && k < 2400, `${name} ${k}`);
  });

  it('a single candidate is returned as is', () => {
    const [only] = servers(['only']) as [Fake];
    only.active = 100;
    assert.equal(new RandomTwoChoices<Fake>().select([only], '', 0), only);
  });
});
