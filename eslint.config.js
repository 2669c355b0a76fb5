// ESLint flat config. `npm run lint` runs it with --max-warnings 0, so every
// rule here is an error in practice. Only rules that differ from the presets
// are listed, each with the reason it is here.
import comments from '@eslint-community/eslint-plugin-eslint-comments';
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'certs/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    plugins: { '@eslint-community/eslint-comments': comments },
    // A disable comment that no longer silences anything is itself a finding.
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Already errors in recommendedTypeChecked; named so that a preset
      // change can never quietly turn off the three that catch real bugs:
      // a promise nobody awaits (an unhandled rejection kills the daemon),
      // a promise passed where a callback's result is ignored, dead names.
      '@typescript-eslint/no-floating-promises': ['error', {
        // node:test's test()/describe() return promises the runner awaits.
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }],
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      // Rejecting with a caught value passes it on unchanged (a timeout
      // wrapper); inventing a non-Error reason is still refused.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      '@typescript-eslint/no-unused-vars': 'error',
      // An exception to a rule says why, beside it:
      // `// eslint-disable-next-line RULE -- reason`.
      '@eslint-community/eslint-comments/require-description': ['error', { ignore: ['eslint-enable'] }],
      '@eslint-community/eslint-comments/no-unlimited-disable': 'error',
      // Only the CLI decides when the process ends; everything else throws a
      // VmgateError or sets process.exitCode so cleanups and logs still run.
      'no-restricted-properties': ['error', {
        object: 'process', property: 'exit',
        message: 'Only src/cli/main.ts calls process.exit: throw a VmgateError or set process.exitCode.',
      }],
    },
  },
  {
    // Small files with one concept each, short functions that read in one
    // screen. Comments and blank lines are free: they are what we want more of.
    files: ['src/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 400, skipBlankLines: true, skipComments: true }],
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },
  {
    files: ['src/cli/main.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
