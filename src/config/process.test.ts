/**
 * The process settings of a config (`workers`, `gracefulTimeout`, `pidFile`): what is accepted,
 * the error line for what is not, and the resolved defaults.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from './errors.js';
import { validateConfig } from './load.js';
import { defaultPidFile } from './resolve.js';

const servers = [{ listen: '127.0.0.1:8080' }];

function problems(input: unknown): string[] {
  try {
    validateConfig(input, '/srv/site', null);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return [...error.problems];
  }
  assert.fail('expected the config to be refused');
}

describe('workers, gracefulTimeout, pidFile', () => {
  it('resolves the defaults: workers unset (the CLI decides), 30 s grace, a pid file named after the config path', () => {
    const config = validateConfig({ servers }, '/srv/site', '/srv/site/portico.config.json');
    assert.equal(config.workers, null);
    assert.equal(config.gracefulTimeout, 30_000);
    assert.equal(config.pidFile, defaultPidFile('/srv/site/portico.config.json'));
    assert.notEqual(defaultPidFile('/srv/other/portico.config.json'), config.pidFile);
    assert.equal(validateConfig({ servers }, '/srv/site', null).pidFile, null, 'an embedded config writes no pid file by default');
  });

  it('takes "auto", a count, a duration and a relative pid file', () => {
    const config = validateConfig({ servers, workers: 'auto', gracefulTimeout: '5s', pidFile: 'run/portico.pid' }, '/srv/site', null);
    assert.equal(config.workers, 'auto');
    assert.equal(config.gracefulTimeout, 5000);
    assert.equal(config.pidFile, '/srv/site/run/portico.pid');
    assert.equal(validateConfig({ servers, workers: 4 }, '/srv/site', null).workers, 4);
  });

  it('refuses other values with the field path', () => {
    assert.deepEqual(problems({ servers, workers: 0 }), ['workers: expected "auto" or a whole number of processes 1-1024, got 0']);
    assert.deepEqual(problems({ servers, workers: 'many' }), ['workers: expected "auto" or a whole number of processes 1-1024, got "many"']);
    assert.deepEqual(problems({ servers, workers: 1.5 }), ['workers: expected "auto" or a whole number of processes 1-1024, got 1.5']);
    assert.deepEqual(problems({ servers, gracefulTimeout: 'soon' }), ['gracefulTimeout: expected a duration like "1h", got "soon"']);
    assert.deepEqual(problems({ servers, pidFile: '' }).length, 1);
  });
});

describe('the resolved config crosses a process boundary', () => {
  it('survives JSON (the supervisor sends it to each edge worker as JSON)', () => {
    const dir = fileURLToPath(new URL('../../test/fixtures/configs/valid/', import.meta.url));
    const config = validateConfig(JSON.parse(readFileSync(`${dir}full.config.json`, 'utf8')), dir, `${dir}full.config.json`);
    assert.deepEqual(JSON.parse(JSON.stringify(config)), config);
  });
});
