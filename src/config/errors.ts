/**
 * Turns schema issues into lines a person can act on: the JSON path of the field, what was
 * expected and what was found, e.g.
 *   servers[0].routes[2].static.maxAge: expected a duration like "1h", got "forever"
 */
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

/** One readable line per issue; unions report the branch that got furthest. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[] = []): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    const input = (issue as { input?: unknown }).input;
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) lines.push(`${formatPath([...path, key])}: unknown key (not a Portico setting here)`);
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
        if (best && deep) lines.push(...formatIssues(best, path));
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
