import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NginxSyntaxError, parseNginxConfig, type Directive } from './parse.js';

const dir = mkdtempSync(join(tmpdir(), 'portico-nginx-parse-'));
const parse = (text: string, name = 'nginx.conf') => {
  writeFileSync(join(dir, name), text);
  return parseNginxConfig(join(dir, name)).directives;
};
const shape = (directives: readonly Directive[]): unknown[] => directives.map((d) => (d.block ? [d.name, ...d.args, shape(d.block)] : [d.name, ...d.args]));

describe("nginx's lexing", () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads directives, blocks, comments and lines', () => {
    const directives = parse('worker_processes 1; # one\nhttp {\n  server {\n    listen 80;\n  }\n}\n');
    assert.deepEqual(shape(directives), [['worker_processes', '1'], ['http', [['server', [['listen', '80']]]]]]);
    assert.equal(directives[1]?.block?.[0]?.block?.[0]?.line, 4);
  });

  it('unquotes "…" and \'…\' with their escapes, and keeps other backslashes', () => {
    const [d] = parse(`return 200 "a \\"b\\" \\n c; { }"; add_header X 'it\\'s' ;rewrite ^/a\\.b$ /c;`);
    assert.deepEqual(d?.args, ['200', 'a "b" \n c; { }']);
    assert.deepEqual(shape(parse(`add_header X 'it\\'s';rewrite ^/a\\.b$ /c;`)), [['add_header', 'X', "it's"], ['rewrite', '^/a\\.b$', '/c']]);
  });

  it('keeps "${name}" and a "}" inside a word, as nginx; a "#" inside a word is not a comment', () => {
    assert.deepEqual(shape(parse('set $a ${b}c; return 200 x#y;')), [['set', '$a', '${b}c'], ['return', '200', 'x#y']]);
  });

  it('a "{" ends a word: an unquoted regex with {n} is a syntax error, quoted it is one word', () => {
    assert.throws(() => parse('rewrite ^/(\\d{4})$ /y;'), NginxSyntaxError);
    assert.deepEqual(shape(parse('rewrite "^/(\\d{4})$" /y;')), [['rewrite', '^/(\\d{4})$', '/y']]);
  });

  it('reports a missing ";" or "}" with the file and line', () => {
    assert.throws(() => parse('http {\n  server {\n    listen 80\n  }\n}\n'), (error: Error) => error instanceof NginxSyntaxError && /^nginx\.conf:4: unexpected "}" after "listen 80"/.test(error.message));
    assert.throws(() => parse('http {\n  server {\n'), /nginx\.conf:\d+: unexpected end of file, expecting "}"/);
    assert.throws(() => parse('return 200 "open\n'), /nginx\.conf:1: unexpected end of file, expecting the closing "/);
  });

  it('follows include globs in name order, relative to the main file, with their own file names and lines', () => {
    mkdirSync(join(dir, 'sites'), { recursive: true });
    writeFileSync(join(dir, 'sites', 'b.conf'), 'server {\n  listen 82;\n}\n');
    writeFileSync(join(dir, 'sites', 'a.conf'), 'server { listen 81; }\n');
    const directives = parse('http {\n  include sites/*.conf;\n}\n');
    assert.deepEqual(shape(directives), [['http', [['server', [['listen', '81']]], ['server', [['listen', '82']]]]]]);
    const second = directives[0]?.block?.[1]?.block?.[0];
    assert.equal(`${second?.file}:${second?.line}`, 'sites/b.conf:2');
  });

  it('keeps an include of a stock file (mime.types, uwsgi_params) as a directive, found or not', () => {
    assert.deepEqual(shape(parse('http { include mime.types; include uwsgi_params; }')), [['http', [['include', 'mime.types'], ['include', 'uwsgi_params']]]]);
  });

  it('refuses an include of a missing file with its line', () => {
    assert.throws(() => parse('http {\n  include missing.conf;\n}\n'), /nginx\.conf:2: include "missing\.conf": no such file/);
  });
});
