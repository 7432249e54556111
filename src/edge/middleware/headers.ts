/**
 * The response header filter of a route (remove, set, add), compiled once per generation into a
 * function over the flat header list. Routes without header operations get no filter at all.
 */
import type { ResolvedHeaderOps } from '../../config/resolved.js';

export type HeaderFilter = (headers: string[]) => void;

function removeNamed(headers: string[], lowerNames: ReadonlySet<string>): void {
  let write = 0;
  for (let read = 0; read < headers.length; read += 2) {
    if (lowerNames.has((headers[read] as string).toLowerCase())) continue;
    headers[write] = headers[read] as string;
    headers[write + 1] = headers[read + 1] as string;
    write += 2;
  }
  headers.length = write;
}

export function compileHeaderFilter(ops: ResolvedHeaderOps): HeaderFilter | null {
  if (ops.remove.length === 0 && ops.set.length === 0 && ops.add.length === 0) return null;
  // `set` replaces: remove the names first, then append.
  const removed = new Set([...ops.remove, ...ops.set.map(([name]) => name.toLowerCase())]);
  const append = [...ops.set, ...ops.add].flat();
  return function routeHeaders(headers) {
    removeNamed(headers, removed);
    for (const value of append) headers.push(value);
  };
}
