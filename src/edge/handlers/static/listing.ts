/**
 * Directory listing (nginx `autoindex`), off by default. Names are HTML-escaped and links
 * percent-encoded, so a file called `<script>` is shown as text.
 */
import { readdir } from 'node:fs/promises';

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

export async function renderListing(dir: string, uri: string, showDotfiles: boolean): Promise<string> {
  const entries = (await readdir(dir, { withFileTypes: true }))
    .filter((entry) => showDotfiles || !entry.name.startsWith('.'))
    .sort((a, b) => Number(b.isDirectory()) - Number(a.isDirectory()) || a.name.localeCompare(b.name));
  const title = escapeHtml(`Index of ${uri}`);
  const rows = entries.map((entry) => {
    const name = entry.isDirectory() ? `${entry.name}/` : entry.name;
    const href = encodeURIComponent(entry.name) + (entry.isDirectory() ? '/' : '');
    return `<li><a href="${escapeHtml(href)}">${escapeHtml(name)}</a></li>`;
  });
  if (uri !== '/') rows.unshift('<li><a href="../">../</a></li>');
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${title}</title></head>\n<body><h1>${title}</h1><ul>\n${rows.join('\n')}\n</ul></body></html>\n`;
}
