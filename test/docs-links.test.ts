/**
 * The README and docs/ link to each other's sections; moving a section breaks such links silently
 * on GitHub. Every relative link in README.md and docs/*.md must name a file that exists and, with
 * a `#fragment`, a heading of that file (GitHub's anchor: lower case, punctuation dropped, spaces
 * as hyphens, a repeated heading suffixed -1, -2…; or an `<a id>` of its own).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => join('docs', name))];

/** The lines outside fenced code blocks, with inline code spans reduced to their text (headings) or dropped (links). */
function prose(markdown: string, codeSpans: 'keep-text' | 'drop'): string[] {
  const lines: string[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) {
      fenced = !fenced;
      continue;
    }
    if (!fenced) lines.push(line.replace(/`([^`]*)`/g, (_span, text: string) => (codeSpans === 'keep-text' ? text : 'x')));
  }
  return lines;
}

function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const found = new Set<string>();
  for (const line of prose(markdown, 'keep-text')) {
    for (const match of line.matchAll(/<a (?:id|name)="([^"]+)">/g)) found.add(match[1] as string);
    const heading = /^#{1,6} (.+)$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const slug = heading
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    found.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return found;
}

function links(markdown: string): string[] {
  const targets: string[] = [];
  for (const line of prose(markdown, 'drop')) for (const match of line.matchAll(/\]\(([^)\s]+)\)/g)) targets.push(match[1] as string);
  return targets;
}

describe('links between the README and docs/', () => {
  it('reads links and headings from every page', () => {
    assert.ok(PAGES.length >= 5, PAGES.join(', '));
    assert.ok(anchors(readFileSync(join(ROOT, 'docs', 'config.md'), 'utf8')).has('response-cache'));
    assert.ok(links(readFileSync(join(ROOT, 'README.md'), 'utf8')).includes('docs/config.md'));
  });

  for (const page of PAGES) {
    it(`${page}: every relative link reaches a file and a heading`, () => {
      const text = readFileSync(join(ROOT, page), 'utf8');
      const broken: string[] = [];
      for (const target of links(text)) {
        if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:
        const [file = '', fragment] = target.split('#');
        const path = file === '' ? join(ROOT, page) : join(ROOT, dirname(page), file);
        if (!existsSync(path)) {
          broken.push(`${target}: no file ${relative(ROOT, path)}`);
          continue;
        }
        if (fragment !== undefined && path.endsWith('.md') && !anchors(readFileSync(path, 'utf8')).has(fragment)) broken.push(`${target}: no such heading in ${relative(ROOT, path)}`);
      }
      assert.deepEqual(broken, [], `${page} has broken links:\n${broken.join('\n')}`);
    });
  }
});
