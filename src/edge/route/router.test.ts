/**
 * Route selection with nginx `location` order: exact > longest prefix with skipRegex > regex in
 * config order > longest prefix. Routes are built by hand (the router only reads `config.match`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ResolvedRoute } from '../../config/resolved.js';
import type { RequestContext } from '../context.js';
import { Router, type CompiledRoute } from './router.js';

type Match = ResolvedRoute['match'];

function route(id: string, match: Match, methods: string[] | null = null): CompiledRoute {
  const config: ResolvedRoute = { id, match, methods, rewrite: [], headers: { remove: [], set: [], add: [] }, accessLog: true, encode: null, maxBodySize: 0, handler: { type: 'none' }, cache: null, access: { rules: [], basicAuth: null, rateLimit: [], connLimit: [] } };
  return { id, config, rewrite: [], headers: null, encode: null, accessLog: true, access: null, handler: () => undefined };
}
const exact = (id: string, path: string) => route(id, { kind: 'exact', path });
const prefix = (id: string, path: string, skipRegex = false) => route(id, { kind: 'prefix', path, skipRegex });
const regex = (id: string, source: string, caseInsensitive = false) => route(id, { kind: 'regex', source, caseInsensitive });

/** Selects for `uri`; returns the chosen route id (or null) and the captures. */
function select(router: Router, uri: string, method = 'GET'): { id: string | null; found: boolean; captures: string[] | null } {
  const ctx = { uri, route: null, captures: null, req: { method } } as unknown as RequestContext;
  const found = router.select(ctx);
  return { id: ctx.route?.id ?? null, found, captures: ctx.captures ? [...ctx.captures] : null };
}
const pick = (router: Router, uri: string) => select(router, uri).id;

describe('Router', () => {
  const router = new Router([
    prefix('root', '/'),
    prefix('docs', '/docs/'),
    prefix('docs-api', '/docs/api/'),
    prefix('assets', '/assets/', true),
    regex('images', '\\.(png|jpg)$'),
    regex('any-docs-html', '^/docs/.*\\.html$'),
    regex('case', '^/CaSe/', true),
    exact('exact-docs', '/docs/'),
    exact('exact-logo', '/assets/logo.png'),
  ]);

  it('an exact match wins over everything', () => {
    assert.equal(pick(router, '/docs/'), 'exact-docs');
    assert.equal(pick(router, '/assets/logo.png'), 'exact-logo', 'over a skipRegex prefix and a regex');
  });
  it('exact means exact: no prefix or trailing-slash leniency', () => {
    assert.equal(pick(router, '/docs'), 'root');
    assert.equal(pick(router, '/docs/x'), 'docs');
  });
  it('a longest prefix with skipRegex wins over regexes', () => {
    assert.equal(pick(router, '/assets/app.png'), 'assets');
  });
  it('regexes are tried in config order, the first match wins', () => {
    assert.equal(pick(router, '/docs/a.png'), 'images', 'images comes first in the config');
    assert.equal(pick(router, '/docs/api/page.html'), 'any-docs-html', 'a regex beats even the longest prefix');
  });
  it('without a regex match, the longest prefix wins regardless of order', () => {
    assert.equal(pick(router, '/docs/api/x'), 'docs-api');
    assert.equal(pick(router, '/docs/guide'), 'docs');
    assert.equal(pick(router, '/other'), 'root');
  });
  it('skipRegex only counts on the longest prefix', () => {
    const r = new Router([prefix('static', '/static/', true), prefix('static-img', '/static/img/'), regex('png', '\\.png$')]);
    assert.equal(pick(r, '/static/img/a.png'), 'png', 'the longest prefix /static/img/ has no skipRegex');
    assert.equal(pick(r, '/static/a.png'), 'static');
  });
  it('regex captures are set for $1…', () => {
    const result = select(router, '/x/photo.jpg');
    assert.equal(result.id, 'images');
    assert.deepEqual(result.captures, ['.jpg', 'jpg']);
    assert.equal(select(router, '/docs/guide').captures, null, 'a prefix route sets no captures');
  });
  it('caseInsensitive regexes', () => {
    assert.equal(pick(router, '/case/x'), 'case');
    assert.equal(pick(new Router([regex('cs', '^/CaSe/')]), '/case/x'), null);
  });
  it('no route: false and a null route', () => {
    const r = new Router([prefix('api', '/api/'), exact('home', '/')]);
    assert.deepEqual(select(r, '/other'), { id: null, found: false, captures: null });
    assert.equal(select(r, '/api/v1').found, true);
  });
  it('a duplicate exact path or prefix: the first one in the config wins', () => {
    const r = new Router([exact('first', '/x'), exact('second', '/x'), prefix('p1', '/p/'), prefix('p2', '/p/')]);
    assert.equal(pick(r, '/x'), 'first');
    assert.equal(pick(r, '/p/a'), 'p1');
  });
  it('a prefix is a plain string prefix, as nginx', () => {
    const r = new Router([prefix('root', '/'), prefix('app', '/app')]);
    assert.equal(pick(r, '/application'), 'app');
  });
  it('a route with methods takes those methods from its sibling with the same matcher, whichever way it was chosen', () => {
    const r = new Router([
      route('preflight', { kind: 'prefix', path: '/api/', skipRegex: false }, ['OPTIONS']),
      prefix('api', '/api/'),
      route('no-post', { kind: 'exact', path: '/form' }, ['POST', 'PUT']),
      exact('form', '/form'),
      route('png-delete', { kind: 'regex', source: '\\.png$', caseInsensitive: false }, ['DELETE']),
      regex('png', '\\.png$'),
    ]);
    assert.equal(select(r, '/api/x', 'OPTIONS').id, 'preflight');
    assert.equal(select(r, '/api/x', 'GET').id, 'api');
    assert.equal(select(r, '/form', 'PUT').id, 'no-post');
    assert.equal(select(r, '/form', 'GET').id, 'form');
    assert.equal(select(r, '/a.png', 'DELETE').id, 'png-delete');
    assert.deepEqual(select(r, '/a.png', 'DELETE').captures, ['.png']);
    assert.equal(select(r, '/a.png', 'HEAD').id, 'png');
  });
});
