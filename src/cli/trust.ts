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
import { LocalCa } from '../certs/local-ca.js';
import { FileStorage, storageKeys } from '../certs/storage.js';

/** Debian's folder for local roots (update-ca-certificates(8) reads *.crt here). */
const DEBIAN_LOCAL_ROOTS = '/usr/local/share/ca-certificates';

export interface TrustResult {
  readonly lines: string[];
  /** The root was installed in the system store (a failure of that is thrown). */
  readonly installed: boolean;
}

export async function trust(dataDir: string, install: boolean): Promise<TrustResult> {
  const storage = new FileStorage(dataDir);
  const pem = await new LocalCa(storage).rootPem();
  const file = storage.path(storageKeys.caCertificate);
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
