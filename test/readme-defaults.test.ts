/**
 * The config reference (docs/config.md) states each field and its default; the schema declares
 * them (config/sections/*.ts). This test holds them together, both ways:
 * - every field the schema has at a table's level has a row in that table (a dotted row such as
 *   `http.maxBodySize` covers `http`, and then every field of `http` needs its own row);
 * - for every row whose default is one literal (`"60s"`, `1`, `false`, `["error", "timeout"]`…),
 *   a config that sets the field to that literal resolves exactly as the config that leaves it
 *   out. A row whose default is prose ("one per core") is not a literal and is read by people only.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { keysAt } from '../src/config/errors.js';
import { validateConfig } from '../src/config/load.js';
import { makeCa, makeCert } from './helpers/tls.js';
import { configSchema } from '../src/config/schema.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const REFERENCE = readFileSync(join(ROOT, 'docs', 'config.md'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'portico-readme-defaults-'));
writeFileSync(join(dir, 'app.mjs'), 'export default () => new Response("ok");\n');
const site = makeCert(dir, makeCa(dir), 'site', ['localhost']);
after(() => rmSync(dir, { recursive: true, force: true }));

type Json = Record<string, unknown>;

/** Where a table's fields live: a base config, the object in it that the fields go into, and its path in the schema. */
interface TableSpec {
  readonly base: () => Json;
  readonly target: (config: Json) => Json;
  readonly schemaPath: readonly (string | number)[];
}

const UPSTREAM = 'http://127.0.0.1:9';
const server = (config: Json): Json => (config.servers as Json[])[0] as Json;

/** The reference tables, by the text just before them. */
const TABLES: ReadonlyArray<readonly [RegExp, TableSpec]> = [
  [/^Top level:/, { base: () => ({ servers: [{}] }), target: (c) => c, schemaPath: [] }],
  [/^A server:/, { base: () => ({ servers: [{}] }), target: server, schemaPath: ['servers', 0] }],
  [/^An app \(`apps\.NAME`\)/, { base: () => ({ servers: [{}], apps: { a: { module: './app.mjs' } } }), target: (c) => (c.apps as Json).a as Json, schemaPath: ['apps', 'a'] }],
  [/^A Python WSGI app \(`apps\.NAME` with `wsgi`\)/, { base: () => ({ servers: [{}], apps: { a: { wsgi: 'app:app' } } }), target: (c) => (c.apps as Json).a as Json, schemaPath: ['apps', 'a'] }],
  [/^Or an existing app server/, { base: () => ({ servers: [{}], apps: { a: { command: ['true'], socket: 'unix:/tmp/portico-readme.sock' } } }), target: (c) => (c.apps as Json).a as Json, schemaPath: ['apps', 'a'] }],
  [/^An upstream group/, { base: () => ({ servers: [{}], upstreams: { u: { servers: [UPSTREAM] } } }), target: (c) => (c.upstreams as Json).u as Json, schemaPath: ['upstreams', 'u'] }],
  [/^`encode` \(on a server/, { base: () => ({ servers: [{ encode: {} }] }), target: (c) => server(c).encode as Json, schemaPath: ['servers', 0, 'encode'] }],
  [/^\| top-level `cache`/, { base: () => ({ servers: [{}], cache: {} }), target: (c) => c.cache as Json, schemaPath: ['cache'] }],
  [/^\| route `cache`/, { base: () => ({ servers: [{ routes: [{ proxy: { to: UPSTREAM }, cache: {} }] }] }), target: (c) => ((server(c).routes as Json[])[0] as Json).cache as Json, schemaPath: ['servers', 0, 'routes', 0, 'cache'] }],
  [/^\| server `tls`/, { base: () => ({ servers: [{ tls: { cert: site.cert, key: site.key } }] }), target: (c) => server(c).tls as Json, schemaPath: ['servers', 0, 'tls'] }],
  [/^\| top-level `admin`/, { base: () => ({ servers: [{}], admin: {} }), target: (c) => c.admin as Json, schemaPath: ['admin'] }],
  [/^\| top-level `state`/, { base: () => ({ servers: [{}], state: { redis: { url: 'redis://127.0.0.1:6379' } } }), target: (c) => c.state as Json, schemaPath: ['state'] }],
  [/^\| top-level `acme`/, { base: () => ({ servers: [{}], acme: { onDemand: { ask: 'http://127.0.0.1:9/ask' } } }), target: (c) => c.acme as Json, schemaPath: ['acme'] }],
  [/^The `forward` section:/, { base: () => ({ forward: {} }), target: (c) => c.forward as Json, schemaPath: ['forward'] }],
];

interface Row {
  readonly table: string;
  readonly field: string;
  readonly literal: string;
}

/** The reference tables: each header row with a "default" column, the line before it, and its rows. */
function tables(): { heading: string; rows: { field: string; value: string }[] }[] {
  const lines = REFERENCE.split('\n');
  const found: { heading: string; rows: { field: string; value: string }[] }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    // Config tables only: the CLI's flag tables have a default column too.
    if (!/^\| .* \| default \|/.test(line) || line.startsWith('| flag |')) continue;
    let heading = line;
    if (line.startsWith('| field |')) {
      // The paragraph before the table names it (its first line).
      let j = i - 1;
      while (j > 0 && (lines[j] as string).trim() === '') j--;
      while (j > 0 && (lines[j - 1] as string).trim() !== '') j--;
      heading = lines[j] as string;
    }
    const rows: { field: string; value: string }[] = [];
    for (let k = i + 2; k < lines.length && (lines[k] as string).startsWith('|'); k++) {
      const cells = (lines[k] as string).split(' | ');
      rows.push({ field: (cells[0] as string).replace(/^\| /, ''), value: cells[1] as string });
    }
    found.push({ heading, rows });
  }
  return found;
}

/** A default cell that is one code span holding a JS literal, or undefined. */
function literalOf(cell: string): string | undefined {
  const match = /^`([^`]+)`$/.exec(cell.trim());
  if (!match) return undefined;
  const text = match[1] as string;
  if (!/^("[^"]*"|-?\d+|true|false|\[.*\]|\{.*\})$/.test(text)) return undefined;
  try {
    evaluate(text);
    return text;
  } catch {
    // Not a value (`{ tries: <servers>, … }` describes one).
    return undefined;
  }
}

function evaluate(literal: string): unknown {
  // The reference writes JavaScript object literals (`{ idleTimeout: "60s" }`), not JSON.
  return new Function(`return (${literal});`)() as unknown;
}

function setPath(target: Json, path: string, value: unknown): void {
  const keys = path.split('.');
  let at = target;
  for (const key of keys.slice(0, -1)) {
    at[key] ??= {};
    at = at[key] as Json;
  }
  at[keys.at(-1) as string] = value;
}

const resolve = (config: Json): unknown => JSON.parse(JSON.stringify(validateConfig(config, dir, join(dir, 'portico.config.json')))) as unknown;

describe('the config reference (docs/config.md)', () => {
  const all = tables();
  const rows: (Row & { spec: TableSpec })[] = [];
  /** The fields each schema level's tables name (two tables may share a level: module and command apps). */
  const documented = new Map<string, { path: readonly (string | number)[]; fields: Set<string> }>();
  for (const { heading, rows: tableRows } of all) {
    const spec = TABLES.find(([pattern]) => pattern.test(heading))?.[1];
    it(`knows the table "${heading.slice(0, 60)}"`, () => {
      assert.ok(spec, `a reference table with a default column that this test does not map to a config path: ${heading}`);
    });
    if (!spec) continue;
    const key = JSON.stringify(spec.schemaPath);
    const names = documented.get(key) ?? { path: spec.schemaPath, fields: new Set<string>() };
    documented.set(key, names);
    for (const { field } of tableRows) for (const match of field.matchAll(/`([^`]+)`/g)) names.fields.add(match[1] as string);
    for (const { field, value } of tableRows) {
      // "`maxFails`, `failTimeout`" with "`1`, `"10s"`": one literal per field.
      const fields = field.split(', ').map((f) => /^`([^`]+)`$/.exec(f)?.[1]);
      const values = fields.length > 1 ? value.split(', ') : [value];
      if (fields.some((f) => f === undefined) || values.length !== fields.length) continue;
      fields.forEach((name, i) => {
        const literal = literalOf(values[i] as string);
        if (literal !== undefined) rows.push({ table: heading, field: name as string, literal, spec });
      });
    }
  }

  it('maps every table and finds literal defaults in each kind', () => {
    assert.ok(rows.length >= 60, `only ${rows.length} literal defaults found`);
    for (const [pattern] of TABLES) assert.ok(rows.some((row) => pattern.test(row.table)), `no literal default read from the table ${pattern}`);
  });

  it('has a row for every field the schema has at each table\'s level', () => {
    const missing: string[] = [];
    for (const { path, fields } of documented.values()) {
      const where = path.length === 0 ? 'top level' : path.join('.');
      const schemaKeys = keysAt(configSchema, path);
      assert.ok(schemaKeys.size > 0, `the schema has no fields at ${where}: the table's schemaPath is wrong`);
      for (const key of schemaKeys) {
        const nested = [...fields].filter((field) => field.startsWith(`${key}.`));
        if (fields.has(key)) continue;
        if (nested.length === 0) {
          missing.push(`${where}: ${key}`);
          continue;
        }
        // Dotted rows (`http.maxBodySize`) stand for the section: each of its fields needs one.
        for (const inner of keysAt(configSchema, [...path, key])) if (!fields.has(`${key}.${inner}`)) missing.push(`${where}: ${key}.${inner}`);
      }
    }
    assert.deepEqual(missing, [], `fields of the schema with no row in docs/config.md:\n${missing.join('\n')}`);
  });

  for (const row of rows) {
    it(`${row.table.slice(0, 30)}… ${row.field} defaults to ${row.literal}`, () => {
      const base = row.spec.base();
      const expected = resolve(base);
      const withDefault = row.spec.base();
      setPath(row.spec.target(withDefault), row.field, evaluate(row.literal));
      assert.deepEqual(resolve(withDefault), expected);
    });
  }
});
