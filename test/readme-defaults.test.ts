/**
 * The config reference in the README states each field's default; the schema declares it
 * (config/sections/*.ts). This test holds them together: for every row of a reference table whose
 * default is one literal (`"60s"`, `1`, `false`, `["error", "timeout"]`…), a config that sets the
 * field to that literal must resolve exactly as the config that leaves it out. A row whose default
 * is prose ("one per core") is not a literal and is read by people only.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { validateConfig } from '../src/config/load.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'portico-readme-defaults-'));
writeFileSync(join(dir, 'app.mjs'), 'export default () => new Response("ok");\n');
after(() => rmSync(dir, { recursive: true, force: true }));

type Json = Record<string, unknown>;

/** Where a table's fields live: a base config and the object in it that the fields go into. */
interface TableSpec {
  readonly base: () => Json;
  readonly target: (config: Json) => Json;
}

const UPSTREAM = 'http://127.0.0.1:9';
const server = (config: Json): Json => (config.servers as Json[])[0] as Json;

/** The reference tables, by the text just before them. */
const TABLES: ReadonlyArray<readonly [RegExp, TableSpec]> = [
  [/^Top level:/, { base: () => ({ servers: [{}] }), target: (c) => c }],
  [/^A server:/, { base: () => ({ servers: [{}] }), target: server }],
  [/^An app \(`apps\.NAME`\)/, { base: () => ({ servers: [{}], apps: { a: { module: './app.mjs' } } }), target: (c) => (c.apps as Json).a as Json }],
  [/^Or an existing app server/, { base: () => ({ servers: [{}], apps: { a: { command: ['true'], socket: 'unix:/tmp/portico-readme.sock' } } }), target: (c) => (c.apps as Json).a as Json }],
  [/^An upstream group/, { base: () => ({ servers: [{}], upstreams: { u: { servers: [UPSTREAM] } } }), target: (c) => (c.upstreams as Json).u as Json }],
  [/^`encode` \(on a server/, { base: () => ({ servers: [{ encode: {} }] }), target: (c) => server(c).encode as Json }],
  [/^\| top-level `cache`/, { base: () => ({ servers: [{}], cache: {} }), target: (c) => c.cache as Json }],
  [/^\| route `cache`/, { base: () => ({ servers: [{ routes: [{ proxy: { to: UPSTREAM }, cache: {} }] }] }), target: (c) => ((server(c).routes as Json[])[0] as Json).cache as Json }],
  [/^The `forward` section:/, { base: () => ({ forward: {} }), target: (c) => c.forward as Json }],
];

interface Row {
  readonly table: string;
  readonly field: string;
  readonly literal: string;
}

/** The reference tables: each header row with a "default" column, the line before it, and its rows. */
function tables(): { heading: string; rows: { field: string; value: string }[] }[] {
  const lines = README.split('\n');
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
  // The README writes JavaScript object literals (`{ idleTimeout: "60s" }`), not JSON.
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

describe('README config reference', () => {
  const all = tables();
  const rows: (Row & { spec: TableSpec })[] = [];
  for (const { heading, rows: tableRows } of all) {
    const spec = TABLES.find(([pattern]) => pattern.test(heading))?.[1];
    it(`knows the table "${heading.slice(0, 60)}"`, () => {
      assert.ok(spec, `a reference table with a default column that this test does not map to a config path: ${heading}`);
    });
    if (!spec) continue;
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
