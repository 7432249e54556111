/**
 * nginx configuration files as a tree of directives, read the way nginx's own reader does
 * (src/core/ngx_conf_file.c, ngx_conf_read_token): a directive is words up to ";" or a "{ … }"
 * block; words are separated by spaces, tabs and newlines; "#" starts a comment only where a word
 * could start; "…" and '…' quote a word, in which \" \' \\ \t \r \n are escapes; a backslash
 * outside quotes keeps the next character; only a space, ";" or "{" ends an unquoted word (so
 * "${name}" is one word). `include` is followed here (globs, relative to the main file's folder, as
 * nginx resolves them against its prefix), so each directive keeps the file and line it came from.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';

export interface Directive {
  readonly name: string;
  readonly args: string[];
  /** The block's directives, for `http { … }`, `server { … }`, `location … { … }` and the like. */
  readonly block: Directive[] | null;
  readonly file: string;
  readonly line: number;
}

export class NginxSyntaxError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
  }
}

interface Token {
  readonly text: string;
  readonly line: number;
  /** `;`, `{` and `}` when they were not quoted (a quoted "{" is a word). */
  readonly special: boolean;
}

function tokenize(text: string, file: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === ';' || c === '{' || c === '}') {
      tokens.push({ text: c, line, special: true });
      i++;
      continue;
    }
    const startLine = line;
    if (c === '"' || c === "'") {
      let word = '';
      i++;
      while (i < text.length && text[i] !== c) {
        const d = text[i] as string;
        if (d === '\\' && i + 1 < text.length) {
          const next = text[i + 1] as string;
          // nginx unescapes these four inside quotes and keeps any other backslash as it is.
          if (next === c || next === '\\') word += next;
          else if (next === 't') word += '\t';
          else if (next === 'r') word += '\r';
          else if (next === 'n') word += '\n';
          else word += `\\${next}`;
          if (next === '\n') line++;
          i += 2;
          continue;
        }
        if (d === '\n') line++;
        word += d;
        i++;
      }
      if (i >= text.length) throw new NginxSyntaxError(file, startLine, `unexpected end of file, expecting the closing ${c}`);
      i++;
      const after = text[i];
      if (after !== undefined && !/[\s;{}]/.test(after)) throw new NginxSyntaxError(file, line, `unexpected "${after}" after a quoted word`);
      tokens.push({ text: word, line: startLine, special: false });
      continue;
    }
    let word = '';
    while (i < text.length) {
      const d = text[i] as string;
      // As nginx: only a space, ";" or "{" ends a word ("}" does not), and "{" right after "$"
      // is the brace of "${name}".
      if (d === '{' && word.endsWith('$')) {
        word += d;
        i++;
        continue;
      }
      if (d === ' ' || d === '\t' || d === '\r' || d === '\n' || d === ';' || d === '{') break;
      if (d === '\\' && i + 1 < text.length) {
        word += text.slice(i, i + 2);
        i += 2;
        continue;
      }
      word += d;
      i++;
    }
    tokens.push({ text: word, line: startLine, special: false });
  }
  return tokens;
}

/** Includes that name a stock file of nginx's package: Portico does what they configure itself. */
export const STOCK_INCLUDES = new Set(['mime.types', 'uwsgi_params', 'proxy_params', 'fastcgi_params', 'scgi_params', 'fastcgi.conf', 'koi-utf', 'koi-win', 'win-utf']);

/** A glob of nginx's `include` ("*", "?", "[…]" in the last parts) expanded to sorted file paths. */
function expandInclude(pattern: string): string[] {
  if (!/[*?[]/.test(pattern)) return [pattern];
  const parts = pattern.split('/');
  let bases = [parts[0] === '' ? '/' : (parts[0] as string)];
  for (const part of parts.slice(1)) {
    if (!/[*?[]/.test(part)) {
      bases = bases.map((base) => join(base, part));
      continue;
    }
    const regex = new RegExp(`^${part.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    bases = bases.flatMap((base) => {
      try {
        return readdirSync(base).filter((name) => regex.test(name) && !name.startsWith('.')).sort().map((name) => join(base, name));
      } catch {
        return [];
      }
    });
  }
  return bases.filter((path) => statSync(path, { throwIfNoEntry: false })?.isFile());
}

/** What parseNginxConfig returns: the directives, and includes of stock files that were not read. */
export interface ParsedNginx {
  readonly directives: Directive[];
  /** The main file's folder, which relative paths of the config are resolved against (nginx's prefix). */
  readonly prefix: string;
}

/** Reads `file` and every file it includes into one tree. */
export function parseNginxConfig(file: string): ParsedNginx {
  const main = resolve(file);
  const prefix = dirname(main);
  // Files are named relative to the main file's folder ("nginx.conf", "conf.d/site.conf").
  const shown = (path: string) => {
    const rel = relative(prefix, path);
    return rel === '' ? basename(path) : rel.startsWith('..') ? path : rel;
  };
  const read = (path: string, depth: number): Directive[] => {
    if (depth > 16) throw new NginxSyntaxError(shown(path), 1, 'includes nested more than 16 deep (an include loop?)');
    const tokens = tokenize(readFileSync(path, 'utf8'), shown(path));
    let at = 0;
    const block = (closing: boolean): Directive[] => {
      const out: Directive[] = [];
      let words: Token[] = [];
      while (at < tokens.length) {
        const token = tokens[at++] as Token;
        if (!token.special) {
          words.push(token);
          continue;
        }
        if (token.text === '}') {
          if (words.length > 0) throw new NginxSyntaxError(shown(path), token.line, `unexpected "}" after "${words.map((w) => w.text).join(' ')}" (a ";" is missing)`);
          if (!closing) throw new NginxSyntaxError(shown(path), token.line, 'unexpected "}"');
          return out;
        }
        const first = words[0];
        if (!first) throw new NginxSyntaxError(shown(path), token.line, `unexpected "${token.text}"`);
        const directive = { name: first.text, args: words.slice(1).map((w) => w.text), file: shown(path), line: first.line };
        words = [];
        if (token.text === '{') {
          out.push({ ...directive, block: block(true) });
          continue;
        }
        if (directive.name === 'include' && directive.args.length === 1) {
          const target = directive.args[0] as string;
          const full = isAbsolute(target) ? target : join(prefix, target);
          const files = expandInclude(full);
          const missing = files.length === 1 && !statSync(files[0] as string, { throwIfNoEntry: false });
          // A stock file that is not beside the config (the package's /etc/nginx/uwsgi_params) is
          // kept as a directive: the translation knows what it stands for.
          if (missing && STOCK_INCLUDES.has(basename(target))) {
            out.push({ ...directive, block: null });
            continue;
          }
          if (missing) throw new NginxSyntaxError(shown(path), directive.line, `include "${target}": no such file (${full})`);
          if (STOCK_INCLUDES.has(basename(target))) {
            out.push({ ...directive, block: null });
            continue;
          }
          for (const included of files) out.push(...read(included, depth + 1));
          continue;
        }
        out.push({ ...directive, block: null });
      }
      if (words.length > 0) throw new NginxSyntaxError(shown(path), (words[0] as Token).line, `unexpected end of file after "${words.map((w) => w.text).join(' ')}" (a ";" is missing)`);
      if (closing) throw new NginxSyntaxError(shown(path), tokens.at(-1)?.line ?? 1, 'unexpected end of file, expecting "}"');
      return out;
    };
    return block(false);
  };
  return { directives: read(main, 0), prefix };
}
