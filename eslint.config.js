// Lint: the recommended rule sets plus the house rules (no console outside the logger, node: imports)
// and the layering: cli → supervisor / testing → edge / app → certs → state → config → core (import → config). Each folder may import only
// the layers below it (docs/architecture.md); a deliberate violation fails the lint
// (test/layering.test.ts proves it).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const NODE_PREFIX = { regex: '^(fs|path|http|https|net|tls|os|url|util|stream|events|zlib|crypto|child_process|cluster|dns|worker_threads)(/.*)?$', message: 'Use the node: prefix.' };

/** What each folder under src/ must not import: every layer above it, and its siblings where they must stay apart. */
// `testing` (portico/testing, the in-process test server) sits beside the supervisor: it builds a
// node's edge and apps as the supervisor does. `import` (portico import) reads nginx files and
// writes a config: it needs the config's checks and nothing that runs.
const LAYERS = {
  core: ['config', 'state', 'certs', 'edge', 'app', 'supervisor', 'cli', 'testing', 'import'],
  config: ['state', 'certs', 'edge', 'app', 'supervisor', 'cli', 'testing', 'import'],
  state: ['certs', 'edge', 'app', 'supervisor', 'cli', 'testing', 'import'],
  certs: ['edge', 'app', 'supervisor', 'cli', 'testing', 'import'],
  edge: ['app', 'supervisor', 'cli', 'testing', 'import'],
  app: ['edge', 'supervisor', 'cli', 'testing', 'import'],
  supervisor: ['cli', 'testing', 'import'],
  testing: ['cli', 'import'],
  import: ['state', 'certs', 'edge', 'app', 'supervisor', 'cli', 'testing'],
};

const layerRules = Object.entries(LAYERS).map(([folder, above]) => ({
  files: [`src/${folder}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      patterns: [
        NODE_PREFIX,
        ...above.map((layer) => ({ regex: `^(\\.\\./)+${layer}(/.*)?$`, message: `src/${folder} is below src/${layer} in the layering (cli → supervisor → edge / app → certs → state → config → core): it must not import it.` })),
      ],
    }],
  },
}));

// Node-level settings reach the edge and core handed in (EdgeEnvironment), never read from the
// environment: a PORTICO_* variable is read only by the CLI and the supervisor.
const PORTICO_ENV = 'PORTICO_ environment variables are read only in src/cli and src/supervisor; hand the value in instead.';
const envRule = {
  files: ['src/**/*.ts'],
  ignores: ['src/cli/**', 'src/supervisor/**', 'src/**/*.test.ts'],
  rules: {
    'no-restricted-syntax': ['error',
      { selector: "MemberExpression[object.object.name='process'][object.property.name='env'][property.name=/^PORTICO_/]", message: PORTICO_ENV },
      { selector: "MemberExpression[object.object.name='process'][object.property.name='env'][property.value=/^PORTICO_/]", message: PORTICO_ENV },
    ],
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'demo/public/**', 'test/fixtures/sites/**', 'test/fixtures/lint/**', 'test/fixtures/nginx/www/**'] /* sites' files, served, not run */ },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: { ...globals.node } } },
  {
    files: ['**/*.ts'],
    rules: {
      'no-console': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', { patterns: [NODE_PREFIX] }],
    },
  },
  ...layerRules,
  envRule,
  {
    // The admin dashboard's script runs in the browser, with uPlot's global.
    files: ['src/supervisor/dashboard/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser, uPlot: 'readonly' } },
  },
  {
    // Scripts and fixtures are small programs whose output is their console.
    files: ['scripts/**', 'test/fixtures/**', 'bench/**'],
    rules: { 'no-console': 'off' },
  },
);
