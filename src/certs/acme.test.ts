/** The RFC 9773 certificate identifier, on a certificate built with the RFC's own example values. */
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { certificateId, issuerKey } from './acme.js';

x509.cryptoProvider.set(webcrypto as never);

async function certificateWith(serialNumber: string, authorityKeyId: string): Promise<string> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber,
    name: 'CN=ari.test',
    notBefore: new Date(),
    notAfter: new Date(Date.now() + 3600_000),
    keys: keys as never,
    signingAlgorithm: algorithm,
    extensions: [new x509.AuthorityKeyIdentifierExtension(authorityKeyId)],
  });
  return cert.toString('pem');
}

describe('certificateId (RFC 9773 §4.1)', () => {
  it('is base64url(AKI keyIdentifier) "." base64url(serial DER bytes): the RFC example', async () => {
    // RFC 9773 §4.1: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4, serial 00:87:65:43:21.
    const pem = await certificateWith('0087654321', '69885b6b87464041e1b37b847ba0ae2cde01c8d4');
    assert.equal(certificateId(pem), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });

  it('keeps a serial without the high bit as it is', async () => {
    const pem = await certificateWith('1234', '0102');
    assert.equal(certificateId(pem), `${Buffer.from('0102', 'hex').toString('base64url')}.${Buffer.from('1234', 'hex').toString('base64url')}`);
  });
});

describe('issuerKey', () => {
  it('names a CA by its host and a hash of the directory URL', () => {
    assert.match(issuerKey('https://acme-v02.api.letsencrypt.org/directory'), /^acme-acme-v02\.api\.letsencrypt\.org-[0-9a-f]{8}$/);
    assert.notEqual(issuerKey('https://127.0.0.1:14000/dir'), issuerKey('https://127.0.0.1:14001/dir'));
  });
});
