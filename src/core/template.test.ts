import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTemplate, templateProblem, TEMPLATE_VARIABLES } from './template.js';

describe('parseTemplate', () => {
  it('plain text is one text part; empty text no parts', () => {
    assert.deepEqual(parseTemplate('/static/path'), [{ kind: 'text', text: '/static/path' }]);
    assert.deepEqual(parseTemplate(''), []);
  });
  it('variables, captures and text in order', () => {
    assert.deepEqual(parseTemplate('https://$host$request_uri'), [
      { kind: 'text', text: 'https://' },
      { kind: 'var', name: 'host' },
      { kind: 'var', name: 'request_uri' },
    ]);
    assert.deepEqual(parseTemplate('/docs/$1/$2.html'), [
      { kind: 'text', text: '/docs/' },
      { kind: 'capture', index: 1 },
      { kind: 'text', text: '/' },
      { kind: 'capture', index: 2 },
      { kind: 'text', text: '.html' },
    ]);
  });
  it('a name runs as far as name characters go; braces delimit it', () => {
    assert.deepEqual(parseTemplate('$uri.html'), [{ kind: 'var', name: 'uri' }, { kind: 'text', text: '.html' }]);
    assert.deepEqual(parseTemplate('$uri_x'), [{ kind: 'var', name: 'uri_x' }]);
    assert.deepEqual(parseTemplate('${uri}_x'), [{ kind: 'var', name: 'uri' }, { kind: 'text', text: '_x' }]);
  });
  it('captures are one digit: "$10" is $1 then "0"; "${1}" is a capture too', () => {
    assert.deepEqual(parseTemplate('$10'), [{ kind: 'capture', index: 1 }, { kind: 'text', text: '0' }]);
    assert.deepEqual(parseTemplate('${1}0'), [{ kind: 'capture', index: 1 }, { kind: 'text', text: '0' }]);
    assert.deepEqual(parseTemplate('$0'), [{ kind: 'capture', index: 0 }]);
  });
  it('names are lowercased; a "$" not followed by a name is literal', () => {
    assert.deepEqual(parseTemplate('$HOST'), [{ kind: 'var', name: 'host' }]);
    assert.deepEqual(parseTemplate('cost: $ 5, $-'), [{ kind: 'text', text: 'cost: $ 5, $-' }]);
    assert.deepEqual(parseTemplate('a$'), [{ kind: 'text', text: 'a$' }]);
  });
});

describe('templateProblem', () => {
  it('accepts every documented variable, $http_* and $arg_*, captures and plain text', () => {
    for (const name of TEMPLATE_VARIABLES) assert.equal(templateProblem(`x/$${name}/y`), undefined, name);
    for (const text of ['$http_user_agent', '${http_x_forwarded_for}', '$arg_q', '/a/$1/$9', 'no variables', '', '$', '${1}'])
      assert.equal(templateProblem(text), undefined, text);
  });
  it('names an unknown variable and lists the known ones', () => {
    const problem = templateProblem('/x/$nope');
    assert.ok(problem);
    assert.match(problem, /^unknown variable "\$nope" \(known: \$host, /);
    assert.match(problem, /\$http_<header>, \$arg_<name>, \$1\.\.\$9\)$/);
    assert.match(templateProblem('${nope}') ?? '', /unknown variable "\$nope"/);
  });
  it('refuses "$http_" and "$arg_" without a name', () => {
    assert.match(templateProblem('$http_') ?? '', /unknown variable "\$http_"/);
    assert.match(templateProblem('$arg_') ?? '', /unknown variable "\$arg_"/);
  });
  it('refuses an unclosed or empty "${"', () => {
    assert.match(templateProblem('/x/${host') ?? '', /unclosed or empty "\$\{" at offset 3/);
    assert.match(templateProblem('${}') ?? '', /unclosed or empty/);
    assert.match(templateProblem('${12}') ?? '', /unclosed or empty/);
  });
  it('reports the first unknown variable', () => {
    assert.match(templateProblem('$host$first$second') ?? '', /"\$first"/);
  });
});
