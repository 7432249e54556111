/**
 * htpasswd entries made by Apache's own `htpasswd` tool (Debian `apache2-utils`), and its
 * `htpasswd -v` as the oracle of which passwords are right.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Htpasswd, HtpasswdError } from './htpasswd.js';

/** `htpasswd -nb FLAG user password` prints `user:hash`. */
function made(flag: string, user: string, password: string): string {
  return execFileSync('htpasswd', ['-nb', flag, user, password], { encoding: 'utf8' }).trim();
}

const PASSWORDS = { bcrypt: 'b-secret', apr1: 'a-secret', sha: 's-secret', long: 'a much longer password than sixteen bytes, past one MD5 block', utf8: 'pässwörd-✓' };

describe('Htpasswd with files made by Apache htpasswd', () => {
  let dir = '';
  let file = '';
  const lines: string[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portico-htpasswd-'));
    file = join(dir, 'users');
    lines.push(
      '# made by htpasswd',
      made('-B', 'bob', PASSWORDS.bcrypt),
      made('-m', 'alice', PASSWORDS.apr1),
      made('-s', 'sam', PASSWORDS.sha),
      '',
      made('-m', 'lena', PASSWORDS.long),
      made('-B', 'uwe', PASSWORDS.utf8),
      made('-m', 'ute', PASSWORDS.utf8),
      made('-s', 'udo', PASSWORDS.utf8),
    );
    writeFileSync(file, lines.join('\n') + '\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the tool wrote the schemes we expect', () => {
    assert.match(lines[1] as string, /^bob:\$2y\$05\$/);
    assert.match(lines[2] as string, /^alice:\$apr1\$/);
    assert.match(lines[3] as string, /^sam:\{SHA\}/);
    const users = Htpasswd.load(file);
    assert.equal(users.size, 7);
    assert.equal(users.scheme('bob'), 'bcrypt');
    assert.equal(users.scheme('alice'), 'apr1');
    assert.equal(users.scheme('sam'), 'sha1');
  });

  it('right passwords pass, wrong ones and unknown users fail, agreeing with htpasswd -v', async () => {
    const users = Htpasswd.load(file);
    const cases: [string, string][] = [
      ['bob', PASSWORDS.bcrypt],
      ['alice', PASSWORDS.apr1],
      ['sam', PASSWORDS.sha],
      ['lena', PASSWORDS.long],
      ['uwe', PASSWORDS.utf8],
      ['ute', PASSWORDS.utf8],
      ['udo', PASSWORDS.utf8],
      ['bob', PASSWORDS.apr1],
      ['alice', `${PASSWORDS.apr1}x`],
      ['sam', PASSWORDS.sha.toUpperCase()],
      ['lena', PASSWORDS.long.slice(0, 16)],
      ['ute', 'passwort'],
      ['bob', ''],
      ['nobody', PASSWORDS.bcrypt],
    ];
    for (const [user, password] of cases) {
      let oracle = true;
      try {
        execFileSync('htpasswd', ['-vb', file, user, password], { stdio: 'ignore' });
      } catch {
        oracle = false;
      }
      assert.equal(await users.verify(user, password), oracle, `${user} / ${JSON.stringify(password)}: htpasswd -v says ${oracle}`);
      assert.equal(await users.verify(user, Buffer.from(password)), oracle, `${user} as bytes`);
    }
    // The oracle is not vacuous: the right ones really pass.
    assert.equal(await users.verify('bob', PASSWORDS.bcrypt), true);
    assert.equal(await users.verify('alice', PASSWORDS.apr1), true);
    assert.equal(await users.verify('sam', PASSWORDS.sha), true);
  });

  it('$2a$ and $2b$ are the same bcrypt as $2y$ for these passwords', async () => {
    const entry = made('-B', 'bea', PASSWORDS.bcrypt).slice('bea:'.length);
    for (const prefix of ['$2a$', '$2b$', '$2y$']) {
      const users = Htpasswd.parse(`bea:${prefix}${entry.slice(4)}\n`);
      assert.equal(users.scheme('bea'), 'bcrypt');
      assert.equal(await users.verify('bea', PASSWORDS.bcrypt), true, prefix);
      assert.equal(await users.verify('bea', 'wrong'), false, prefix);
    }
  });

  it('bcrypt with a higher cost (htpasswd -C 8)', async () => {
    const line = execFileSync('htpasswd', ['-nbB', '-C', '8', 'cora', 'costly'], { encoding: 'utf8' }).trim();
    const users = Htpasswd.parse(line);
    assert.equal(await users.verify('cora', 'costly'), true);
    assert.equal(await users.verify('cora', 'costlY'), false);
  });

  it('{SSHA} (salted SHA-1, as nginx and OpenLDAP write it)', async () => {
    const { createHash } = await import('node:crypto');
    const salt = Buffer.from('s4lt!');
    const digest = createHash('sha1').update('salty').update(salt).digest();
    const users = Htpasswd.parse(`sal:{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`);
    assert.equal(await users.verify('sal', 'salty'), true);
    assert.equal(await users.verify('sal', 'salt'), false);
  });

  it('the first entry of a user wins; comments, blank lines, CRLF and trailing fields are fine', async () => {
    const first = made('-s', 'dup', 'one');
    const second = made('-s', 'dup', 'two');
    const users = Htpasswd.parse(`# users\r\n\r\n${first}:a comment\r\n${second}\r\n`);
    assert.equal(await users.verify('dup', 'one'), true);
    assert.equal(await users.verify('dup', 'two'), false);
  });

  it('refuses the schemes it does not verify, naming the line', () => {
    const refused: [string, RegExp][] = [
      [made('-d', 'des', 'secret'), /crypt\(3\) DES/],
      [made('-5', 'sha512', 'secret'), /\$5\$\/\$6\$/],
      [made('-2', 'sha256', 'secret'), /\$5\$\/\$6\$/],
      ['plain:{PLAIN}secret', /plain-text/],
      ['plain:secret', /not a supported hash/],
      ['yes:$y$j9T$abc$def', /unsupported hash scheme "\$y\$"/],
      ['sha:{SHA}tooshort', /20-byte/],
      ['nocolon', /expected "user:hash"/],
    ];
    for (const [line, message] of refused) {
      assert.throws(
        () => Htpasswd.parse(`# first\n${made('-s', 'ok', 'x')}\n${line}\n`, 'users.htpasswd'),
        (error: unknown) => error instanceof HtpasswdError && error.line === 3 && error.message.startsWith('users.htpasswd:3: ') && message.test(error.message),
        line,
      );
    }
  });
});
