// ESLint flat config (npm run lint): typescript-eslint's type-checked rules over every TypeScript source.
// The code is all async, so a promise nobody awaits, a promise where a callback's result is ignored and a
// switch that forgets a case are errors. Every rule switched off or loosened below says why.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '**/*.js', '**/*.cjs', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      // `async` on a function that does not await is deliberate: it implements a Promise-returning interface
      // (FileSource.open, close) and turns a synchronous throw into a rejection the caller's catch sees.
      '@typescript-eslint/require-await': 'off',
      // `Promise.all(xs.map((x) => x.release?.()))`: an optional cleanup is a promise or nothing.
      '@typescript-eslint/await-thenable': ['error', { allowMixedPromiseArrays: true }],
      // `id: string | 'latest'` names the special value in the signature; it documents, it does not narrow.
      '@typescript-eslint/no-redundant-type-constituents': 'off',
      // Passing on what was received (an AbortSignal's reason, a rejection caught) unchanged is not
      // inventing a non-Error; creating one is still an error.
      '@typescript-eslint/prefer-promise-reject-errors': [
        'error',
        { allowThrowingAny: true, allowThrowingUnknown: true },
      ],
      '@typescript-eslint/only-throw-error': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      // A server's callback refers to the object built once it listens (`let self; ...; self = new X(server)`).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // A leading underscore marks a name taken apart on purpose ({ mac: _mac, ...rest }).
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests read the CLI's --json output and job reports (JSON.parse: any) and hold their shape to
      // expect(); typing every report in the tests would restate the output format a second time.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Tests hold output to "no control characters" (a hostile name must never reach a terminal raw).
      'no-control-regex': 'off',
    },
  },
);
