/**
 * `portico import nginx.conf`: read (parse.ts), translate (translate.ts), write (emit.ts), and
 * check the result as `portico check` would, so what the user gets is a config Portico accepts
 * or a list of what it lacks.
 */
import { writeFileSync } from 'node:fs';
import { dirname, extname, relative, resolve } from 'node:path';
import { ConfigError } from '../../config/errors.js';
import { validateConfig } from '../../config/load.js';
import { plainConfig, renderConfig } from './emit.js';
import { parseNginxConfig } from './parse.js';
import { translateNginx, type ImportResult } from './translate.js';

export { NginxSyntaxError } from './parse.js';

export interface NginxImport extends ImportResult {
  /** The file's text (TypeScript, or JSON for a .json output). */
  readonly text: string;
  /** What `portico check` refuses in the result (a static root that does not exist here…), one per line. */
  readonly problems: string[];
  /** What it warns about. */
  readonly checkWarnings: readonly string[];
}

export function importNginx(file: string, output: string | null): NginxImport {
  const parsed = parseNginxConfig(file);
  const outputPath = output === null ? null : resolve(output);
  const outputDir = outputPath === null ? process.cwd() : dirname(outputPath);
  const result = translateNginx(parsed.directives, { prefix: parsed.prefix, outputDir });
  const format = outputPath !== null && extname(outputPath) === '.json' ? 'json' : 'ts';
  const text = renderConfig(result, format, relative(outputDir, resolve(file)) || file);
  let problems: string[] = [];
  let checkWarnings: readonly string[] = [];
  try {
    checkWarnings = validateConfig(plainConfig(result.config), outputDir, outputPath).warnings;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems = [...error.problems];
  }
  if (outputPath !== null) writeFileSync(outputPath, text);
  return { ...result, text, problems, checkWarnings };
}
