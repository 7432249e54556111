/**
 * Finds and loads a config file (`portico.config.ts`, `.mts`, `.mjs`, `.js`, `.json`), validates it
 * against the schema and resolves it. TypeScript configs are loaded through tsx (esbuild), so no
 * separate build step is needed. Returns `{ path, config, dependencies }` (as Vite's loader) so a
 * watcher knows which files to watch for a reload.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCodes, PorticoError } from '../core/errors.js';
import { ConfigError, formatIssues } from './errors.js';
import { resolveConfig } from './resolve.js';
import type { ResolvedConfig } from './resolved.js';
import { configSchema } from './schema.js';

export const CONFIG_FILE_NAMES = ['portico.config.ts', 'portico.config.mts', 'portico.config.mjs', 'portico.config.js', 'portico.config.json'];

export interface LoadedConfig {
  readonly path: string | null;
  readonly config: ResolvedConfig;
  readonly dependencies: readonly string[];
}

/** The first `portico.config.*` in `dir`, or undefined. */
export function findConfigFile(dir: string): string | undefined {
  for (const name of CONFIG_FILE_NAMES) {
    const candidate = resolve(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Validates and resolves a config object (from a file, the embedded demo, or an API caller). */
export function validateConfig(input: unknown, baseDir: string, source: string | null): ResolvedConfig {
  const result = configSchema.safeParse(input, { reportInput: true });
  if (!result.success) throw new ConfigError(formatIssues(result.error.issues, [], configSchema), source ?? undefined);
  return resolveConfig(result.data, baseDir, source);
}

async function importModule(path: string): Promise<{ exported: unknown; dependencies: string[] }> {
  const ext = extname(path);
  if (ext === '.json') return { exported: JSON.parse(await readFile(path, 'utf8')) as unknown, dependencies: [path] };
  // A query string defeats the module cache so a reload sees the edited file.
  const stamp = `?t=${Date.now()}`;
  if (ext === '.ts' || ext === '.mts' || ext === '.cts') {
    const { tsImport } = await import('tsx/esm/api');
    const dependencies: string[] = [path];
    const mod = (await tsImport(pathToFileURL(path).href + stamp, {
      parentURL: import.meta.url,
      onImport: (file: string) => {
        if (file.startsWith('file:') && !file.includes('/node_modules/')) dependencies.push(new URL(file).pathname);
      },
    })) as Record<string, unknown>;
    return { exported: pickExport(mod), dependencies: [...new Set(dependencies)] };
  }
  const mod = (await import(pathToFileURL(path).href + stamp)) as Record<string, unknown>;
  return { exported: pickExport(mod), dependencies: [path] };
}

function pickExport(mod: Record<string, unknown>): unknown {
  let value = mod.default ?? mod.config;
  // tsx may wrap a CommonJS-looking module: { default: { default: config } }.
  if (value && typeof value === 'object' && 'default' in value && !('servers' in value)) value = (value as { default: unknown }).default;
  return value;
}

/**
 * The message of an import failure, without the CommonJS "Require stack:" list (internal paths
 * with tsx's namespace query, no help to the user); a missing `portico` package gets a hint, since
 * a config outside a project that installs Portico cannot import `defineConfig`.
 */
function loadProblem(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const text = message.split(/\nRequire stack:/)[0]?.trimEnd() ?? message;
  if (/Cannot find (?:module|package) '?portico'?/.test(text)) {
    return `${text} (install portico in this project, or remove the import: defineConfig only adds types, the default export may be a plain object)`;
  }
  return text;
}

/** Loads `path` (or the first `portico.config.*` in `cwd`). Throws ConfigError / PorticoError. */
export async function loadConfig(path: string | undefined, cwd = process.cwd()): Promise<LoadedConfig> {
  const file = path ? resolve(cwd, path) : findConfigFile(cwd);
  if (!file) throw new PorticoError(ErrorCodes.ERR_CONFIG_NOT_FOUND, `no config file: looked for ${CONFIG_FILE_NAMES.join(', ')} in ${cwd}`);
  if (!existsSync(file)) throw new PorticoError(ErrorCodes.ERR_CONFIG_NOT_FOUND, `config file not found: ${file}`);
  let loaded: { exported: unknown; dependencies: string[] };
  try {
    loaded = await importModule(file);
  } catch (error) {
    throw new PorticoError(ErrorCodes.ERR_CONFIG_LOAD, `${file}: could not load: ${loadProblem(error)}`, { cause: error });
  }
  if (loaded.exported === undefined) throw new ConfigError(['(root): expected the file to export a config (export default defineConfig({...})), got nothing'], file);
  return { path: file, config: validateConfig(loaded.exported, dirname(file), file), dependencies: loaded.dependencies };
}
