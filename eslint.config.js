// Lint: the recommended rule sets plus the house rules (no console outside the logger, node: imports).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'demo/public/**', 'test/fixtures/sites/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: { ...globals.node } } },
  {
    files: ['**/*.ts'],
    rules: {
      'no-console': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '^(fs|path|http|https|net|tls|os|url|util|stream|events|zlib|crypto|child_process|cluster|dns|worker_threads)(/.*)?$', message: 'Use the node: prefix.' }],
      }],
    },
  },
  {
    // Scripts and fixtures are small programs whose output is their console.
    files: ['scripts/**', 'test/fixtures/**', 'bench/**'],
    rules: { 'no-console': 'off' },
  },
);
