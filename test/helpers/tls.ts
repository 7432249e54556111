/**
 * Test certificates, made with the openssl CLI in a test's temporary folder: a CA, and leaf
 * certificates it signs for given names (RSA or ECDSA, a chosen serial, optionally expired).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCa {
  readonly cert: string;
  readonly key: string;
}

export interface TestCert {
  /** The leaf, then the CA (a chain, as a server sends it). */
  readonly cert: string;
  readonly key: string;
  /** Upper-case hex, as `openssl x509 -serial` prints it. */
  readonly serial: string;
}

function openssl(args: string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function makeCa(dir: string, name = 'ca'): TestCa {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=Portico test CA ${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { cert, key };
}

let serials = 0x1000;

/** A leaf for `names` (DNS names or IP addresses), signed by `ca`. */
export function makeCert(dir: string, ca: TestCa, file: string, names: readonly string[], options: { algorithm?: 'ec' | 'rsa'; expired?: boolean; serial?: number } = {}): TestCert {
  const key = join(dir, `${file}.key`);
  const csr = join(dir, `${file}.csr`);
  const leaf = join(dir, `${file}.leaf.crt`);
  const cert = join(dir, `${file}.crt`);
  const ext = join(dir, `${file}.ext`);
  const serial = options.serial ?? ++serials;
  const newKey = options.algorithm === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  openssl(['req', ...newKey, '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${names[0] ?? 'localhost'}`], dir);
  const alt = names.map((name) => (/^[\d.]+$|:/.test(name) ? `IP:${name}` : `DNS:${name}`)).join(',');
  writeFileSync(ext, `subjectAltName=${alt}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
  // An expired certificate: valid for the two days before yesterday (x509 -not_before/-not_after need OpenSSL 3.4; a CA config with explicit dates works everywhere).
  const dates = options.expired ? expiredDates(dir, file) : ['-days', '2'];
  if (options.expired) {
    openssl(['ca', '-batch', '-config', dates[0] as string, '-in', csr, '-out', leaf, '-extfile', ext, '-notext'], dir);
  } else {
    openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(serial), '-out', leaf, '-extfile', ext, ...dates], dir);
  }
  const pem = openssl(['x509', '-in', leaf], dir) + openssl(['x509', '-in', ca.cert], dir);
  writeFileSync(cert, pem);
  const printed = openssl(['x509', '-in', leaf, '-noout', '-serial'], dir).trim().replace(/^serial=/, '');
  return { cert, key, serial: printed };

  function expiredDates(folder: string, name: string): string[] {
    const config = join(folder, `${name}.ca.cnf`);
    const stamp = (date: Date): string => `${date.toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`;
    const day = 24 * 3600 * 1000;
    writeFileSync(join(folder, `${name}.index`), '');
    writeFileSync(
      config,
      [
        '[ca]',
        'default_ca = test',
        '[test]',
        `database = ${join(folder, `${name}.index`)}`,
        `new_certs_dir = ${folder}`,
        `certificate = ${ca.cert}`,
        `private_key = ${ca.key}`,
        `serial = ${join(folder, `${name}.serial`)}`,
        'default_md = sha256',
        'policy = any',
        'copy_extensions = copy',
        `default_startdate = ${stamp(new Date(Date.now() - 3 * day))}`,
        `default_enddate = ${stamp(new Date(Date.now() - day))}`,
        '[any]',
        'commonName = supplied',
        '',
      ].join('\n'),
    );
    writeFileSync(join(folder, `${name}.serial`), `${serial.toString(16).padStart(4, '0')}\n`);
    return [config];
  }
}
