/**
 * Access control over real sockets: IP allow/deny with 127.0.0.1 and ::1 as two client addresses
 * (and X-Forwarded-For from a trusted proxy as a third), basic auth against an htpasswd file made
 * by Apache's own `htpasswd` with one user per hash scheme.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, request, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';

const basic = (user: string, password: string): Record<string, string> => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

describe('access: allow/deny and basic auth', () => {
  const dir = tempDir('portico-access-');
  let portico: RunningPortico;
  let v4 = '';
  let v6 = '';
  const users = { bea: ['-B', 'bcrypt-pw'], alf: ['-m', 'apr1-pw'], sid: ['-s', 'sha-pw'] } as const;

  before(async () => {
    const lines = Object.entries(users).map(([user, [flag, password]]) => execFileSync('htpasswd', ['-nb', flag, user, password], { encoding: 'utf8' }).trim());
    writeFileSync(join(dir.path, 'users.htpasswd'), `${lines.join('\n')}\n`);
    const port = await freePort();
    portico = await startWithConfig(dir.path, {
      log: { access: false },
      http: { trustedProxies: ['127.0.0.1'] },
      servers: [
        {
          listen: [`127.0.0.1:${port}`, `[::1]:${port}`],
          routes: [
            { prefix: '/', respond: { body: 'open $remote_addr\n' } },
            { prefix: '/v4-only/', access: [{ allow: '127.0.0.1' }, { deny: 'all' }], respond: { body: 'v4 $remote_addr\n' } },
            { prefix: '/no-v6/', access: [{ deny: '::1' }], respond: { body: 'not v6\n' } },
            // First match wins: 10.1.0.0/16 is allowed before 10.0.0.0/8 is denied.
            { prefix: '/lan/', access: [{ allow: '10.1.0.0/16' }, { deny: '10.0.0.0/8' }, { allow: 'all' }], respond: { body: 'lan $remote_addr\n' } },
            {
              prefix: '/private/',
              basicAuth: { realm: 'Private "zone"', htpasswd: 'users.htpasswd' },
              respond: { body: 'private\n' },
            },
            { prefix: '/private/public/', basicAuth: false, respond: { body: 'public\n' } },
            // A rewrite cannot skip the access phase: it runs on the final route.
            { exact: '/sneak', rewrite: [{ from: '^/sneak$', to: '/private/x', flag: 'last' }] },
          ],
        },
      ],
    });
    v4 = `http://127.0.0.1:${port}`;
    v6 = `http://[::1]:${port}`;
  });
  after(async () => {
    await portico?.stop();
    dir.remove();
  });

  it('allow 127.0.0.1, deny all: 200 over IPv4, 403 over IPv6', async () => {
    const ok = await request(`${v4}/v4-only/x`);
    assert.equal(ok.status, 200);
    assert.equal(ok.text, 'v4 127.0.0.1\n');
    const denied = await request(`${v6}/v4-only/x`);
    assert.equal(denied.status, 403);
    assert.equal((await request(`${v6}/no-v6/x`)).status, 403);
    assert.equal((await request(`${v4}/no-v6/x`)).status, 200);
    assert.equal((await request(`${v6}/`)).status, 200, 'routes without rules are open to both');
  });

  it('the real IP from a trusted proxy is what the rules see (CIDR, first match wins)', async () => {
    const allowed = await request(`${v4}/lan/x`, { headers: { 'X-Forwarded-For': '10.1.2.3' } });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.text, 'lan 10.1.2.3\n');
    assert.equal((await request(`${v4}/lan/x`, { headers: { 'X-Forwarded-For': '10.2.2.3' } })).status, 403);
    assert.equal((await request(`${v4}/lan/x`, { headers: { 'X-Forwarded-For': '192.0.2.1' } })).status, 200);
    // ::1 is not a trusted proxy: its X-Forwarded-For is ignored, the peer ::1 is allowed by "all".
    assert.equal((await request(`${v6}/lan/x`, { headers: { 'X-Forwarded-For': '10.2.2.3' } })).status, 200);
    // A denied IPv4 client behind the proxy on a v4-only route.
    assert.equal((await request(`${v4}/v4-only/x`, { headers: { 'X-Forwarded-For': '192.0.2.9' } })).status, 403);
  });

  it('basic auth: 401 with the challenge without or with wrong credentials, 200 with right ones, for each hash scheme', async () => {
    const none = await request(`${v4}/private/x`);
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Basic realm="Private \\"zone\\"", charset="UTF-8"');
    for (const [user, [flag, password]] of Object.entries(users)) {
      const wrong = await request(`${v4}/private/x`, { headers: basic(user, `${password}!`) });
      assert.equal(wrong.status, 401, `${user} (${flag}) with a wrong password`);
      assert.match(String(wrong.headers['www-authenticate']), /^Basic realm=/);
      const right = await request(`${v4}/private/x`, { headers: basic(user, password) });
      assert.equal(right.status, 200, `${user} (${flag}) with the right password`);
      assert.equal(right.text, 'private\n');
      // Again: the verified-credentials cache answers the same.
      assert.equal((await request(`${v4}/private/x`, { headers: basic(user, password) })).status, 200);
    }
    assert.equal((await request(`${v4}/private/x`, { headers: basic('nobody', 'bcrypt-pw') })).status, 401, 'unknown user');
    assert.equal((await request(`${v4}/private/x`, { headers: basic('bea', 'apr1-pw') })).status, 401, "another user's password");
    assert.equal((await request(`${v4}/private/x`, { headers: { Authorization: 'Basic !!!' } })).status, 401, 'malformed');
    assert.equal((await request(`${v4}/private/x`, { headers: { Authorization: `Bearer ${Buffer.from('bea:bcrypt-pw').toString('base64')}` } })).status, 401, 'another scheme');
    assert.equal((await request(`${v4}/private/x`, { headers: { Authorization: `bAsIc ${Buffer.from('bea:bcrypt-pw').toString('base64')}` } })).status, 200, 'the scheme is case-insensitive');
  });

  it('a route can turn basic auth off; a rewrite into a protected route is still protected', async () => {
    assert.equal((await request(`${v4}/private/public/x`)).status, 200);
    assert.equal((await request(`${v4}/sneak`)).status, 401);
    assert.equal((await request(`${v4}/sneak`, { headers: basic('sid', 'sha-pw') })).status, 200);
  });
});
