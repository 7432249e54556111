/**
 * `portico trust`: the local CA of `tls: "internal"` (made in the data folder if it is not there
 * yet), how to trust it, and, run as root where Debian's `update-ca-certificates` is, installed in
 * the system store (Caddy's `caddy trust`). Browsers with their own store (Firefox, Chromium's NSS
 * database) are named with the command that adds it there.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ResolvedState } from '../config/resolved.js';
import { LocalCa } from '../certs/local-ca.js';
import { certificateStorage, FileStorage, storageKeys } from '../certs/storage.js';

/** Debian's folder for local roots (update-ca-certificates(8) reads *.crt here). */
const DEBIAN_LOCAL_ROOTS = '/usr/local/share/ca-certificates';

export interface TrustResult {
  readonly lines: string[];
  /** The root was installed in the system store (a failure of that is thrown). */
  readonly installed: boolean;
}

/**
 * `state`: the config's shared state, where the fleet's local CA then lives (Redis); its root is
 * also written to the data folder, the file the instructions name.
 */
export async function trust(dataDir: string, install: boolean, state: ResolvedState | null = null): Promise<TrustResult> {
  const files = new FileStorage(dataDir);
  const pem = state ? await sharedRoot(state) : await new LocalCa(files).rootPem();
  if (state) await files.write(storageKeys.caCertificate, pem);
  const file = files.path(storageKeys.caCertificate);
  const root = new X509Certificate(pem);
  const lines = [
    `local CA: ${root.subject.replace(/\n/g, ', ')}`,
    `  file         ${file}`,
    `  SHA-256      ${root.fingerprint256}`,
    `  valid until  ${new Date(root.validTo).toISOString()}`,
    'trust it:',
    `  curl                  curl --cacert ${file} https://localhost/`,
    `  Node.js               NODE_EXTRA_CA_CERTS=${file}`,
    `  Debian/Ubuntu system  sudo cp ${file} ${DEBIAN_LOCAL_ROOTS}/portico-local-ca.crt && sudo update-ca-certificates   (or: sudo portico trust)`,
    `  Chromium/Firefox NSS  certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n "Portico Local CA" -i ${file}`,
  ];
  const canInstall = install && process.getuid?.() === 0 && spawnSync('update-ca-certificates', ['--help'], { stdio: 'ignore' }).error === undefined;
  if (!canInstall) return { lines, installed: false };
  mkdirSync(DEBIAN_LOCAL_ROOTS, { recursive: true });
  const target = join(DEBIAN_LOCAL_ROOTS, `portico-local-ca-${root.fingerprint256.replace(/:/g, '').slice(0, 16).toLowerCase()}.crt`);
  const fresh = !existsSync(target);
  copyFileSync(file, target);
  const run = spawnSync('update-ca-certificates', [], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`update-ca-certificates failed (${run.status}): ${run.stderr || run.stdout}`);
  lines.push(`installed in the system store: ${target}${fresh ? '' : ' (there already, refreshed)'}; update-ca-certificates: ${run.stdout.trim().split('\n').pop() ?? 'done'}`);
  return { lines, installed: true };
}

/** The fleet's local CA from Redis (made there if not yet), waiting up to 5 s for the connection. */
async function sharedRoot(state: ResolvedState): Promise<string> {
  const { SharedRedis, redactedUrl } = await import('../state/redis.js');
  const redis = new SharedRedis(state, 'portico trust', 'the local CA cannot be read');
  try {
    for (const deadline = Date.now() + 5_000; !redis.up; ) {
      if (Date.now() > deadline) throw new Error(`the config's state.redis (${redactedUrl(state.redis.url)}) is not reachable: the fleet's local CA is kept there`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return await new LocalCa(certificateStorage('', redis)).rootPem();
  } finally {
    await redis.close();
  }
}
