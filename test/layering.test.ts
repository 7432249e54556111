/**
 * The layering is enforced by the lint (eslint.config.js): each rule is shown to fire on a
 * deliberate violation placed where it is forbidden, and to stay quiet where it is allowed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const eslint = new ESLint({ cwd: ROOT });

async function problems(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, file) });
  return (result?.messages ?? []).map((m) => `${m.ruleId}: ${m.message}`);
}

describe('layering lint rules', () => {
  it('edge may not import the supervisor', async () => {
    const found = await problems('src/edge/handlers/example.ts', "import { runNode } from '../../supervisor/node.js';\nexport const x = runNode;\n");
    assert.ok(found.some((p) => p.startsWith('no-restricted-imports') && p.includes('src/edge is below src/supervisor')), found.join('\n'));
  });

  it('core may import nothing above it (config, edge, app, supervisor, cli)', async () => {
    for (const layer of ['config/load.js', 'edge/server.js', 'app/arbiter.js', 'supervisor/node.js', 'cli/main.js']) {
      const found = await problems('src/core/example.ts', `import * as above from '../${layer}';\nexport const x = above;\n`);
      assert.ok(found.some((p) => p.startsWith('no-restricted-imports')), `${layer}: ${found.join('\n')}`);
    }
  });

  it('app may not import the edge, and the edge not the app', async () => {
    assert.ok((await problems('src/app/example.ts', "import { EdgeServer } from '../edge/server.js';\nexport const x = EdgeServer;\n")).some((p) => p.startsWith('no-restricted-imports')));
    assert.ok((await problems('src/edge/example.ts', "import { Arbiter } from '../app/arbiter.js';\nexport const x = Arbiter;\n")).some((p) => p.startsWith('no-restricted-imports')));
  });

  it('a PORTICO_ environment read is refused outside src/cli and src/supervisor', async () => {
    const dotted = await problems('src/edge/example.ts', 'export const x = process.env.PORTICO_EDGE_WORKER;\n');
    const computed = await problems('src/core/example.ts', "export const x = process.env['PORTICO_X'];\n");
    assert.ok(dotted.some((p) => p.startsWith('no-restricted-syntax')), dotted.join('\n'));
    assert.ok(computed.some((p) => p.startsWith('no-restricted-syntax')), computed.join('\n'));
    assert.deepEqual(await problems('src/supervisor/example.ts', 'export const x = process.env.PORTICO_WORKERS;\n'), []);
  });

  it('allowed imports pass: supervisor → edge, edge → config and core', async () => {
    assert.deepEqual(await problems('src/supervisor/example.ts', "import { EdgeServer } from '../edge/server.js';\nexport const x = EdgeServer;\n"), []);
    assert.deepEqual(await problems('src/edge/example.ts', "import type { ResolvedConfig } from '../config/resolved.js';\nimport { log } from '../core/log.js';\nexport const x = (c: ResolvedConfig) => log().info(c.source ?? '');\n"), []);
  });
});
