/**
 * The imported config as a file: `portico.config.ts` (typed with `satisfies UserConfig`, each
 * server, route and upstream under a comment naming the nginx block it came from, and the
 * directives that were not translated listed at the top) or `portico.config.json`.
 */
import { SOURCE, type ImportFinding, type ImportResult } from './translate.js';

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** The config without the source notes. */
export function plainConfig(config: unknown): unknown {
  return JSON.parse(JSON.stringify(config, (key, value: unknown) => (key === SOURCE ? undefined : value)));
}

function render(value: unknown, indent: string): string {
  if (Array.isArray(value)) {
    if (value.every((item) => typeof item !== 'object' || item === null)) {
      const line = `[${value.map((item) => render(item, indent)).join(', ')}]`;
      if (line.length <= 100) return line;
    }
    const inner = `${indent}  `;
    return `[\n${value.map((item) => `${inner}${render(item, inner)},`).join('\n')}\n${indent}]`;
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).filter(([key, item]) => key !== SOURCE && item !== undefined);
    const inner = `${indent}  `;
    const source = (value as Record<string, unknown>)[SOURCE];
    const lines = entries.map(([key, item]) => `${inner}${IDENTIFIER.test(key) ? key : JSON.stringify(key)}: ${render(item, inner)},`);
    if (typeof source === 'string') lines.unshift(`${inner}// nginx: ${source}`);
    if (lines.length === 0) return '{}';
    return `{\n${lines.join('\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}

const listed = (findings: readonly ImportFinding[]) => findings.map((f) => `//   ${f.file}:${f.line}: ${f.directive.replace(/\n/g, ' ')}: ${f.reason}`).join('\n');

export function renderConfig(result: ImportResult, format: 'ts' | 'json', source: string): string {
  if (format === 'json') return `${JSON.stringify(plainConfig(result.config), null, 2)}\n`;
  const head = [
    `// Imported from ${source} by \`portico import\`. Check it with \`portico check --config <this file>\`.`,
    '// Each server, route and upstream names the nginx block it came from. Reference: docs/config.md;',
    '// what the import translates and how: docs/migrating.md.',
  ];
  if (result.warnings.length > 0) head.push('//', `// Not translated (${result.warnings.length}): the config below does not do these.`, listed(result.warnings));
  if (result.kept.length > 0) head.push('//', `// Nothing to set (${result.kept.length}): Portico does these by itself.`, listed(result.kept));
  return `${head.join('\n')}\nimport type { UserConfig } from 'portico';\n\nexport default ${render(result.config, '')} satisfies UserConfig;\n`;
}
