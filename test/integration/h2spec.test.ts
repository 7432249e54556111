/**
 * HTTP/2 conformance: h2spec (../shared/tools/h2spec, 146 cases of RFC 7540/9113 and RFC 7541)
 * against `portico up` over TLS. The failures that remain are node:http2's and nghttp2's
 * behaviour, not Portico's code (docs/config.md, HTTPS and HTTP/2, lists each with its reason);
 * this test holds the count where it is, so a change that breaks a case that passes is caught,
 * and prints the failures.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT, freePort, startWithConfig, tempDir } from '../helpers/portico.js';
import { makeCa, makeCert } from '../helpers/tls.js';

const H2SPEC = join(ROOT, '..', 'shared', 'tools', 'h2spec');
/**
 * Passed here: 138 of 146 on node 20, 137 on node 24 and 26 (their nghttp2 ignores RFC 7540
 * stream priorities, so the two PRIORITY error cases fail, and one WINDOW_UPDATE case passes
 * instead). The reference: node:http2 alone 137, nginx 1.22 119.
 */
const PASSED_AT_LEAST = Number(process.versions.node.split('.')[0]) <= 20 ? 138 : 137;

function intersection(a: ReadonlySet<string>, b: ReadonlySet<string>): Set<string> {
  const both = new Set<string>();
  for (const item of a) if (b.has(item)) both.add(item);
  return both;
}

describe('h2spec', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it(`passes at least ${PASSED_AT_LEAST} of 146 cases over TLS`, async (t) => {
    assert.ok(existsSync(H2SPEC), `h2spec is expected at ${H2SPEC} (../shared/tools beside the checkout)`);
    const ca = makeCa(dir.path);
    const site = makeCert(dir.path, ca, 'site', ['localhost', '127.0.0.1']);
    const port = await freePort();
    const portico = await startWithConfig(dir.path, { workers: 1, log: { access: false }, servers: [{ listen: `127.0.0.1:${port}`, tls: { cert: site.cert, key: site.key }, routes: [{ respond: { status: 200, body: 'h2spec\n' } }] }] });
    try {
      // Up to three runs when the first falls short, and the count is taken of the cases that
      // failed in every run: some cases race the answer closing its stream against h2spec's next
      // frame (e.g. "half closed (remote): Sends a HEADERS frame", or a content-length that
      // disagrees with the DATA sent after the 200 already went). On Node 24 the same unchanged
      // build passed 135, 136 or 137 from run to run (df980e4 and later, run alone); on Node 26
      // two runs in a row gave 136 with different cases failing (2026-12-05); in the whole suite
      // on Node 24 (2026-12-06, e62f720) three runs each gave 136, the same nine cases and a
      // different tenth each time. A case that really broke fails in every run, and counts.
      const allowed = 146 - PASSED_AT_LEAST;
      let persistent: Set<string> | null = null;
      const lines: string[] = [];
      for (let run = 1; run <= 3 && (persistent === null || persistent.size > allowed); run++) {
        const output = await new Promise<string>((resolve) => {
          execFile(H2SPEC, ['-h', '127.0.0.1', '-p', String(port), '-t', '-k', '-o', '2'], { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }, (_error, stdout, stderr) => resolve(`${stdout}${stderr}`));
        });
        const summary = /(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed/.exec(output);
        assert.ok(summary, `no summary line in h2spec's output:\n${output.slice(-2000)}`);
        assert.equal(Number(summary[1]), 146, `h2spec ran ${summary[1]} cases, not 146`);
        const failures = [...output.slice(Math.max(0, output.indexOf('Failures:'))).matchAll(/× (.+)/g)].map((m) => (m[1] as string).trim());
        // Its failure list must account for its count, or the intersection below would be empty for the wrong reason.
        assert.equal(failures.length, Number(summary[4]), `h2spec reported ${summary[4]} failures but listed ${failures.length}:\n${output.slice(-4000)}`);
        t.diagnostic(`run ${run}: ${summary[0]}`);
        for (const failure of failures) t.diagnostic(`run ${run} failed: ${failure}`);
        lines.push(summary[0]);
        // Cases of different sections can share a title: the k-th one of a title is its own case.
        const seen = new Map<string, number>();
        const now = new Set(failures.map((failure) => {
          const k = (seen.get(failure) ?? 0) + 1;
          seen.set(failure, k);
          return k === 1 ? failure : `${failure} (${k})`;
        }));
        persistent = persistent === null ? now : intersection(persistent, now);
      }
      assert.ok(persistent !== null && persistent.size <= allowed, `${persistent?.size} cases failed in every run (${lines.join('; ')}), at most ${allowed} may:\n${[...(persistent ?? [])].join('\n')}`);
      assert.ok(process.kill(portico.pid, 0), 'portico is still running after the whole suite');
    } finally {
      await portico.stop();
    }
  });
});
