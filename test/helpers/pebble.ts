/**
 * Pebble, Let's Encrypt's test ACME CA (Debian package `pebble`), on loopback: its directory
 * over HTTPS with a certificate made here, its management port (the issuing roots), and
 * pebble-challtestsrv as its DNS server, which answers every name with 127.0.0.1, so Pebble's
 * validation of "a.test" reaches Portico's ports on this machine. `PEBBLE_VA_NOSLEEP=1`: no
 * random pause before a validation.
 *
 * Orders are counted from Pebble's own log ("Issued certificate serial … for order"), the
 * CA-side count the ACME tests assert on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { accepts, freePort } from './portico.js';
import { makeCa, makeCert } from './tls.js';

export interface RunningPebble {
  /** The ACME directory URL. */
  readonly directory: string;
  /** The PEM file of the CA that signed Pebble's own HTTPS certificate (`acme.ca`). */
  readonly caFile: string;
  readonly pid: number;
  /** Pebble's log so far. */
  log(): string;
  /** Certificates issued so far (from the log). */
  issued(): number;
  /** Validations Pebble made for a name so far: one per authorization, so one per order (with PEBBLE_AUTHZREUSE=0). */
  validations(name: string): number;
  /** Pebble's current issuing root (PEM), from its management port. */
  root(): Promise<string>;
  stop(): Promise<void>;
}

export interface PebbleOptions {
  /** The port Pebble validates HTTP-01 on (Portico's cleartext listener). */
  readonly httpPort: number;
  /** The port Pebble validates TLS-ALPN-01 on (Portico's TLS listener). */
  readonly tlsPort: number;
  /** Certificate lifetime in seconds (Pebble's `certificateValidityPeriod`). */
  readonly validitySeconds?: number;
  /** Fixed ports, e.g. to start Pebble again where Portico already looks for it. */
  readonly listenPort?: number;
  readonly managementPort?: number;
  readonly dnsPort?: number;
  /** External Account Binding required (RFC 8555 §7.3.4), with this key id and base64url HMAC key. */
  readonly eab?: { readonly kid: string; readonly hmacKey: string };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = once(child, 'exit').then(() => undefined);
  process.kill(child.pid as number, 'SIGTERM');
  const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid as number, 'SIGKILL'), 3000);
  return exited.finally(() => clearTimeout(timer));
}

async function waitFor(check: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until 127.0.0.1:`port` accepts connections. */
async function waitForPort(port: number, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await accepts(port))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} to accept on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The CA file Pebble's HTTPS will be signed by in `dir` (made now), for a Portico started before Pebble. */
export function pebbleCaFile(dir: string): string {
  if (!existsSync(join(dir, 'pebble-https-ca.crt'))) {
    const ca = makeCa(dir, 'pebble-https-ca');
    makeCert(dir, ca, 'pebble-https', ['127.0.0.1', 'localhost']);
  }
  return join(dir, 'pebble-https-ca.crt');
}

export async function startPebble(dir: string, options: PebbleOptions): Promise<RunningPebble> {
  // Made once per folder: Pebble started again in the same folder (down, then up) keeps the CA Portico was told to trust.
  const ca = existsSync(join(dir, 'pebble-https-ca.crt')) ? { cert: join(dir, 'pebble-https-ca.crt'), key: join(dir, 'pebble-https-ca.key') } : makeCa(dir, 'pebble-https-ca');
  const leaf = existsSync(join(dir, 'pebble-https.crt')) ? { cert: join(dir, 'pebble-https.crt'), key: join(dir, 'pebble-https.key') } : makeCert(dir, ca, 'pebble-https', ['127.0.0.1', 'localhost']);
  const listenPort = options.listenPort ?? (await freePort());
  const managementPort = options.managementPort ?? (await freePort());
  const dnsPort = options.dnsPort ?? (await freePort());
  const configFile = join(dir, `pebble-${listenPort}.json`);
  writeFileSync(
    configFile,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${listenPort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: leaf.cert,
        privateKey: leaf.key,
        httpPort: options.httpPort,
        tlsPort: options.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: options.eab !== undefined,
        ...(options.eab ? { externalAccountMACKeys: { [options.eab.kid]: options.eab.hmacKey } } : {}),
        ...(options.validitySeconds ? { certificateValidityPeriod: options.validitySeconds } : {}),
      },
    }),
  );
  // Only its DNS server: every name is 127.0.0.1 (no AAAA, so validation does not try ::1).
  const dns = spawn('pebble-challtestsrv', ['-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${await freePort()}`, '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
  let dnsLog = '';
  dns.stdout?.setEncoding('utf8').on('data', (chunk: string) => (dnsLog += chunk));
  dns.stderr?.setEncoding('utf8').on('data', (chunk: string) => (dnsLog += chunk));
  const pebble = spawn('pebble', ['-config', configFile, '-dnsserver', `127.0.0.1:${dnsPort}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
  });
  let log = '';
  pebble.stdout?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
  pebble.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
  const stop = async () => {
    await Promise.all([stopChild(pebble), stopChild(dns)]);
  };
  try {
    await waitFor(() => /Listening on/.test(log) && /Starting challenge servers/.test(dnsLog), 10_000, () => `pebble to listen:\n${log}\n${dnsLog}`);
    // Pebble logs "Listening on" before its listeners are bound, and its management port (the
    // roots) comes up in its own goroutine: wait for both ports, not for the log line alone.
    await waitForPort(listenPort, 10_000, 'pebble (ACME)');
    await waitForPort(managementPort, 10_000, 'pebble (management)');
  } catch (error) {
    await stop();
    throw error;
  }
  const caFile = ca.cert;
  return {
    directory: `https://127.0.0.1:${listenPort}/dir`,
    caFile,
    pid: pebble.pid as number,
    log: () => log,
    issued: () => [...log.matchAll(/Issued certificate serial /g)].length,
    // "Pulled a task from the Tasks queue: &va.vaTask{Identifier:acme.Identifier{Type:"dns", Value:"a.test"}…": one per challenge validated.
    validations: (name) => log.split('\n').filter((line) => line.includes('Pulled a task') && line.includes(`Value:"${name}"`)).length,
    root: () =>
      new Promise<string>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port: managementPort, path: '/roots/0', ca: readFileSync(caFile) }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`pebble /roots/0: ${res.statusCode}`))));
        });
        req.on('error', reject).end();
      }),
    stop,
  };
}
