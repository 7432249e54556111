/**
 * testssl.sh (Debian package testssl.sh) against a `portico up` TLS listener: its vulnerability
 * checks (`-U`: Heartbleed, CCS, Ticketbleed, ROBOT, renegotiation, CRIME, BREACH, POODLE,
 * SWEET32, FREAK, DROWN, LOGJAM, BEAST, LUCKY13, RC4…) and the protocols offered (`-p`), read from
 * its JSON report: no finding may be rated LOW or worse, and only TLS 1.2 and 1.3 are offered.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort, startWithConfig, tempDir } from '../helpers/portico.js';
import { makeCa, makeCert } from '../helpers/tls.js';

interface Finding {
  readonly id: string;
  readonly severity: string;
  readonly finding: string;
}

describe('testssl.sh against an HTTPS listener', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it('finds no vulnerability, and only TLS 1.2 and 1.3 offered', async (t) => {
    const ca = makeCa(dir.path);
    // An RSA certificate too: ROBOT and the RSA key-exchange checks have something to look at.
    const ecdsa = makeCert(dir.path, ca, 'ecdsa', ['localhost']);
    const rsa = makeCert(dir.path, ca, 'rsa', ['localhost'], { algorithm: 'rsa' });
    const port = await freePort();
    const portico = await startWithConfig(dir.path, { workers: 1, log: { access: false }, servers: [{ listen: `127.0.0.1:${port}`, names: ['localhost'], tls: { certs: [ecdsa, rsa].map(({ cert, key }) => ({ cert, key })) }, routes: [{ respond: { status: 200, body: 'ok\n' } }] }] });
    const report = join(dir.path, 'testssl.json');
    try {
      await new Promise<void>((resolve) => {
        execFile('testssl', ['--quiet', '--color', '0', '--warnings', 'off', '--ip', 'one', '-U', '-p', '--jsonfile', report, `localhost:${port}`], { timeout: 600_000, maxBuffer: 16 * 1024 * 1024 }, () => resolve());
      });
    } finally {
      await portico.stop();
    }
    const findings = JSON.parse(readFileSync(report, 'utf8')) as Finding[];
    assert.ok(findings.some((f) => f.id === 'heartbleed'), 'the report has the vulnerability checks');
    const bad = findings.filter((f) => ['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'].includes(f.severity));
    for (const f of findings.filter((x) => /^(SSLv2|SSLv3|TLS1|TLS1_1|TLS1_2|TLS1_3)$/.test(x.id))) t.diagnostic(`${f.id}: ${f.finding}`);
    assert.deepEqual(bad.map((f) => `${f.id} (${f.severity}): ${f.finding}`), []);
    const offered = (id: string): boolean => /^offered/.test(findings.find((f) => f.id === id)?.finding ?? '');
    assert.deepEqual({ SSLv2: offered('SSLv2'), SSLv3: offered('SSLv3'), TLS1: offered('TLS1'), TLS1_1: offered('TLS1_1'), TLS1_2: offered('TLS1_2'), TLS1_3: offered('TLS1_3') }, { SSLv2: false, SSLv3: false, TLS1: false, TLS1_1: false, TLS1_2: true, TLS1_3: true });
  });
});
