/**
 * Turns schema issues into lines a person can act on: the JSON path of the field, what was
 * expected and what was found, e.g.
 *   servers[0].routes[2].static.maxAge: expected a duration like "1h", got "forever"
 */
import { distance } from 'fastest-levenshtein';
import type { z } from 'zod';
import { ErrorCodes, PorticoError } from '../core/errors.js';

export class ConfigError extends PorticoError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[], source?: string) {
    super(ErrorCodes.ERR_CONFIG_INVALID, `${source ? `${source}: ` : ''}invalid config:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
    this.name = 'ConfigError';
  }
}

/** `["servers", 0, "routes", 2, "static"]` → `servers[0].routes[2].static`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else if (typeof part === 'string' && /^[A-Za-z_$][\w$]*$/.test(part)) text += text ? `.${part}` : part;
    else text += `[${JSON.stringify(String(part))}]`;
  }
  return text || '(root)';
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

const article = (type: string): string => (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);

/** The parts of a zod v4 schema definition that lead to the object shapes under it. */
interface SchemaDef {
  readonly type: string;
  readonly shape?: Readonly<Record<string, z.core.$ZodType>>;
  readonly element?: z.core.$ZodType;
  readonly valueType?: z.core.$ZodType;
  readonly innerType?: z.core.$ZodType;
  readonly in?: z.core.$ZodType;
  readonly out?: z.core.$ZodType;
  readonly options?: readonly z.core.$ZodType[];
  readonly left?: z.core.$ZodType;
  readonly right?: z.core.$ZodType;
  readonly getter?: () => z.core.$ZodType;
}

/**
 * The keys the schema accepts in the object at `path` (every branch's, where a union leaves
 * several shapes possible there).
 */
export function keysAt(schema: z.core.$ZodType, path: readonly PropertyKey[]): Set<string> {
  const keys = new Set<string>();
  const visit = (node: z.core.$ZodType | undefined, at: number, depth: number): void => {
    if (node === undefined || depth > 64) return;
    const def = node._zod.def as SchemaDef;
    const step = path[at];
    switch (def.type) {
      case 'object':
        if (at === path.length) for (const key of Object.keys(def.shape ?? {})) keys.add(key);
        else if (typeof step === 'string') visit(def.shape?.[step], at + 1, depth + 1);
        return;
      case 'array':
        if (typeof step === 'number') visit(def.element, at + 1, depth + 1);
        return;
      case 'record':
        if (at < path.length) visit(def.valueType, at + 1, depth + 1);
        return;
      case 'union':
        for (const option of def.options ?? []) visit(option, at, depth + 1);
        return;
      case 'intersection':
        visit(def.left, at, depth + 1);
        visit(def.right, at, depth + 1);
        return;
      case 'pipe':
        // Both ends: a preprocessed object (tls: "auto" → { mode }) has its fields on the out side.
        visit(def.in, at, depth + 1);
        visit(def.out, at, depth + 1);
        return;
      case 'lazy':
        visit(def.getter?.(), at, depth + 1);
        return;
      default:
        // optional, nullable, default, prefault, readonly, catch, nonoptional: one inner type.
        visit(def.innerType, at, depth + 1);
    }
  };
  visit(schema, 0, 0);
  return keys;
}

/**
 * The known key an unknown one was most likely meant to be: a difference of case, or a few
 * edits (one for a key of up to three characters, else two or one in three: `lisen` → `listen`,
 * `stauts` → `status`), the nearest first.
 */
export function closestKey(unknown: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = unknown.length <= 3 ? 1 : Math.max(2, Math.floor(unknown.length / 3));
  for (const key of known) {
    if (key.toLowerCase() === unknown.toLowerCase()) return key;
    const d = distance(unknown, key);
    if (d <= bestDistance) {
      best = key;
      bestDistance = d - 1;
    }
  }
  return best;
}

/**
 * One readable line per issue; unions report the branch that got furthest. With the `schema`
 * the issues came from, an unknown key close to a known one says which one was meant.
 */
export function formatIssues(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[] = [], schema?: z.core.$ZodType): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    const input = (issue as { input?: unknown }).input;
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) {
          const meant = schema ? closestKey(key, keysAt(schema, path)) : undefined;
          lines.push(`${formatPath([...path, key])}: unknown key (not a Portico setting here)${meant ? `; did you mean \`${meant}\`?` : ''}`);
        }
        break;
      case 'invalid_type':
        // A missing field says so ("got nothing") so every line names what was found.
        lines.push(`${formatPath(path)}: ${input === undefined ? 'is required: expected' : 'expected'} ${article(typeName(issue.expected))}, got ${describe(input)}`);
        break;
      case 'invalid_value':
        lines.push(`${formatPath(path)}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(input)}`);
        break;
      case 'invalid_union': {
        // Pick the branch whose first issue is deepest: it is the one the user meant.
        const branches = issue.errors.filter((b) => b.length > 0);
        const best = branches.sort((a, b) => Math.max(...b.map((i) => i.path.length)) - Math.max(...a.map((i) => i.path.length)))[0];
        // A branch that only says "not this type" or "not this literal" at the union's own level
        // is no better than the others (for literal unions such as redirect statuses, picking one
        // branch said "expected one of 301" for 305): then the union's own message lists them all.
        const deep = best && best.some((i) => i.path.length > 0 || (i.code !== 'invalid_type' && i.code !== 'invalid_value'));
        if (best && deep) lines.push(...formatIssues(best, path, schema));
        else lines.push(`${formatPath(path)}: ${issue.message.startsWith('expected') ? issue.message : `expected ${unionExpectation(issue)}, got ${describe(input)}`}`);
        break;
      }
      case 'too_small':
      case 'too_big':
        // zod's own text ("Too small: expected array to have >=1 items, got an array") says
        // neither how many there were nor in plain words what is wanted.
        lines.push(`${formatPath(path)}: ${bound(issue, input)}`);
        break;
      case 'invalid_format':
        if (issue.format === 'starts_with' && 'prefix' in issue) {
          lines.push(`${formatPath(path)}: expected a string starting with ${JSON.stringify(issue.prefix)}, got ${describe(input)}`);
          break;
        }
        lines.push(`${formatPath(path)}: ${withFound(issue.message, input)}`);
        break;
      case 'custom':
      default:
        lines.push(`${formatPath(path)}: ${withFound(issue.message, input)}`);
    }
  }
  return lines;
}

/** A message that does not say what was found gets ", got …" (e.g. a regex check's own message). */
function withFound(message: string, input: unknown): string {
  if (message.startsWith('is ') || (message.startsWith('expected') && / got /.test(message))) return message;
  return `${message}, got ${describe(input)}`;
}

const typeName = (expected: string): string => (expected === 'int' ? 'integer' : expected);

function bound(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig, input: unknown): string {
  const small = issue.code === 'too_small';
  const limit = Number(small ? (issue as z.core.$ZodIssueTooSmall).minimum : (issue as z.core.$ZodIssueTooBig).maximum);
  const inclusive = issue.inclusive !== false;
  if (issue.origin === 'array' || issue.origin === 'string' || issue.origin === 'set') {
    const unit = issue.origin === 'string' ? 'character' : 'item';
    const count = small ? (inclusive ? limit : limit + 1) : inclusive ? limit : limit - 1;
    const found = Array.isArray(input) ? (input.length === 0 ? 'an empty array' : `${input.length} ${unit}${input.length === 1 ? '' : 's'}`) : describe(input);
    return `expected ${small ? 'at least' : 'at most'} ${count} ${unit}${count === 1 ? '' : 's'}, got ${found}`;
  }
  return `expected a number ${small ? (inclusive ? '>=' : '>') : inclusive ? '<=' : '<'} ${limit}, got ${describe(input)}`;
}

function unionExpectation(issue: z.core.$ZodIssueInvalidUnion): string {
  const expected = new Set<string>();
  for (const branch of issue.errors) {
    for (const inner of branch) {
      if (inner.code === 'invalid_type') expected.add(article(inner.expected));
      else if (inner.code === 'invalid_value') for (const v of inner.values) expected.add(JSON.stringify(v));
    }
  }
  return [...expected].join(' or ') || 'another value';
}
