/**
 * `portico dev`: one process, reload on change, readable errors (terminal + HTML page).
 */
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { get, sleep, startApp, type RunningApp } from '../helpers/app.js';
import { tempDir } from '../helpers/portico.js';

describe('portico dev', () => {
  const dir = tempDir('portico-dev-');
  const file = join(dir.path, 'app.ts');
  let dev: RunningApp;
  before(async () => {
    writeFileSync(file, `export default { fetch: (request: Request): Response => new Response('version 1') };\n`);
    dev = await startApp(['dev', file, '--port', '0']);
  });
  after(async () => {
    await dev.stop();
    dir.remove();
  });

  it('serves and says it is for development only', async () => {
    assert.equal((await get(`${dev.url}/`)).text, 'version 1');
    assert.match(dev.stdout(), /not for production/);
  });

  it('editing the app file changes the response after the reload', async () => {
    await sleep(200); // let the watcher settle
    writeFileSync(file, `export default { fetch: (request: Request): Response => new Response('version 2') };\n`);
    let text = '';
    for (let i = 0; i < 60 && text !== 'version 2'; i++) {
      await sleep(100);
      text = (await get(`${dev.url}/`)).text;
    }
    assert.equal(text, 'version 2');
    assert.match(dev.stdout(), /changed, reloading/);
  });

  it('editing a module the app imports reloads it too', async () => {
    writeFileSync(join(dir.path, 'message.ts'), `export const message: string = 'from dep 1';\n`);
    writeFileSync(file, `import { message } from './message.ts';\nexport default { fetch: (request: Request): Response => new Response(message) };\n`);
    let text = '';
    for (let i = 0; i < 60 && text !== 'from dep 1'; i++) {
      await sleep(100);
      text = (await get(`${dev.url}/`)).text;
    }
    assert.equal(text, 'from dep 1');
    writeFileSync(join(dir.path, 'message.ts'), `export const message: string = 'from dep 2';\n`);
    for (let i = 0; i < 60 && text !== 'from dep 2'; i++) {
      await sleep(100);
      text = (await get(`${dev.url}/`)).text;
    }
    assert.equal(text, 'from dep 2');
  });

  /** Waits for the dev server to answer `expected` (it reloads after a change), at most 6 s. */
  async function until(expected: string): Promise<string> {
    let text = '';
    for (let i = 0; i < 60 && text !== expected; i++) {
      await sleep(100);
      text = (await get(`${dev.url}/`)).text;
    }
    return text;
  }
  const version = (v: string) => `export default { fetch: (request: Request): Response => new Response('${v}') };\n`;
  /** An editor's atomic save (vim, sed -i, VS Code's default): a new file renamed over the old one. */
  const renameSave = (path: string, text: string) => {
    writeFileSync(`${path}.tmp-save`, text);
    renameSync(`${path}.tmp-save`, path);
  };

  it('saves by rename, again and again, then in place: each is served', async () => {
    renameSave(file, version('renamed 1'));
    assert.equal(await until('renamed 1'), 'renamed 1');
    renameSave(file, version('renamed 2'));
    assert.equal(await until('renamed 2'), 'renamed 2', 'a second rename-save is seen too');
    writeFileSync(file, version('in place after renames'));
    assert.equal(await until('in place after renames'), 'in place after renames', 'an in-place write after rename-saves is seen');
  });

  it('a new file the app then imports, saved by rename, is watched', async () => {
    renameSave(join(dir.path, 'fresh.ts'), `export const fresh: string = 'fresh 1';\n`);
    renameSave(file, `import { fresh } from './fresh.ts';\nexport default { fetch: (request: Request): Response => new Response(fresh) };\n`);
    assert.equal(await until('fresh 1'), 'fresh 1');
    renameSave(join(dir.path, 'fresh.ts'), `export const fresh: string = 'fresh 2';\n`);
    assert.equal(await until('fresh 2'), 'fresh 2');
  });

  it('a thrown error shows an HTML page with the escaped message and the stack, and in the terminal', async () => {
    writeFileSync(
      file,
      `export default { fetch(request: Request): Response { if (new URL(request.url).pathname === '/boom') throw new Error('bad <script>alert(1)</script> & "quotes"'); return new Response('version 3'); } };\n`,
    );
    for (let i = 0; i < 60 && (await get(`${dev.url}/`)).text !== 'version 3'; i++) await sleep(100);
    const res = await get(`${dev.url}/boom`);
    assert.equal(res.status, 500);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.ok(res.text.includes('Error: bad &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;'), res.text);
    assert.ok(!res.text.includes('<script>'));
    assert.match(res.text, /at Object\.fetch/); // the stack
    // This folder has no package.json: on Node 20 tsx runs the module as CommonJS from a data:
    // URL, which the stack names by its file (compiled position) instead of printing the compiled
    // module; newer Node lines map the frame to the source. Either way the frame names app.ts.
    assert.doesNotMatch(res.text, /data:text\/javascript/);
    assert.match(res.text, /app\.ts:\d+:\d+( \[compiled code\])?\)/);
    await dev.waitFor((out) => /portico dev: error in GET \/boom\nError: bad <script>/.test(out));
    assert.doesNotMatch(dev.stderr(), /"level"/); // readable, not JSON
  });

  it('a module that fails to load shows the error until it is fixed', async () => {
    writeFileSync(file, `throw new Error('broken at import');\n`);
    let res = await get(`${dev.url}/`);
    for (let i = 0; i < 60 && res.status !== 500; i++) {
      await sleep(100);
      res = await get(`${dev.url}/`);
    }
    assert.equal(res.status, 500);
    assert.match(res.text, /broken at import/);
    writeFileSync(file, `export default (request: Request) => new Response('fixed');\n`);
    for (let i = 0; i < 60 && res.text !== 'fixed'; i++) {
      await sleep(100);
      res = await get(`${dev.url}/`);
    }
    assert.equal(res.text, 'fixed');
  });
});

describe('portico dev in an ES module project: the error page shows the failing line', () => {
  const dir = tempDir('portico-dev-esm-');
  const file = join(dir.path, 'app.ts');
  let dev: RunningApp;
  before(async () => {
    writeFileSync(join(dir.path, 'package.json'), JSON.stringify({ type: 'module' }));
    writeFileSync(file, ['type Order = { total: number };', 'export default {', '  fetch(request: Request): Response {', "    const order: Order = { total: 0 };", "    if (order.total === 0) throw new Error('empty order');", "    return new Response('ok');", '  },', '};', ''].join('\n'));
    dev = await startApp(['dev', file, '--port', '0']);
  });
  after(async () => {
    await dev.stop();
    dir.remove();
  });

  it('a code frame of the app file (TypeScript line numbers), above the stack', async () => {
    const res = await get(`${dev.url}/`);
    assert.equal(res.status, 500);
    const frame = /<pre class="frame">([\s\S]*?)<\/pre>/.exec(res.text)?.[1];
    assert.ok(frame, res.text);
    assert.match(frame, /app\.ts:5:\d+\n/);
    assert.match(frame, /^&gt; 5 \| {5}if \(order\.total === 0\) throw new Error\(&#39;empty order&#39;\);$/m);
    assert.match(frame, /^ {2}4 \| {5}const order: Order/m, 'the lines around it');
    assert.ok(res.text.indexOf('class="frame"') < res.text.indexOf('Error: empty order\n'), 'before the stack');
  });
});
