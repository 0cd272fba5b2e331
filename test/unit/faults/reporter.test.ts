import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { faultLedgerProblem } from '../../faults/results.js';
import { REPO_ROOT } from '../../helpers/cli.js';

const run = promisify(execFile);

describe('the faults table fails the run when fault tests recorded nothing', () => {
  const dir = '/r/dist/test/faults';
  test('faultLedgerProblem: no fault files ran, an empty table, a silent file', () => {
    expect(faultLedgerProblem(['/r/dist/test/unit/a.test.js'], [], dir)).toBeUndefined();
    expect(faultLedgerProblem([`${dir}/a.test.js`], [], dir)).toMatch(
      /^1 fault test file\(s\) ran and the faults table is empty .*: a\.test\.js$/,
    );
    const row = {
      area: 'x',
      fault: 'y',
      injected: 1,
      survived: 1,
      dataLost: 0,
      lostRestorePoints: 0,
      file: `${dir}/a.test.js`,
    };
    expect(faultLedgerProblem([`${dir}/a.test.js`, `${dir}/b.test.js`], [row], dir)).toBe(
      'fault test file(s) that recorded no row in the faults table: b.test.js',
    );
    expect(faultLedgerProblem([`${dir}/a.test.js`], [row], dir)).toBeUndefined();
  });

  /**
   * The real reporter in a real jest run (a scratch root holding a copy of the built ledger and two
   * fault test files): the table prints, and a file that recorded nothing makes jest exit non-zero.
   */
  test('a real jest run with the reporter: table printed; a silent fault file fails the run', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'mfs-jobs-reporter-'));
    try {
      await fs.mkdir(path.join(root, 'dist/test/faults'), { recursive: true });
      await fs.mkdir(path.join(root, 'dist/lib/core'), { recursive: true });
      await fs.writeFile(path.join(root, 'package.json'), '{"type":"module"}\n');
      await fs.copyFile(
        path.join(REPO_ROOT, 'dist/test/faults/results.js'),
        path.join(root, 'dist/test/faults/results.js'),
      );
      await fs.copyFile(path.join(REPO_ROOT, 'dist/lib/core/table.js'), path.join(root, 'dist/lib/core/table.js'));
      const recording =
        "import { recordFaults } from './results.js';\ntest('records', () => { recordFaults({ area: 'probe', fault: 'recorded fault', injected: 1, survived: 1, dataLost: 0, lostRestorePoints: 0 }); });\n";
      await fs.writeFile(path.join(root, 'dist/test/faults/recording.test.js'), recording);
      const config = {
        rootDir: root,
        roots: ['<rootDir>/dist/test'],
        testMatch: ['**/*.test.js'],
        reporters: [path.join(REPO_ROOT, 'test/faults-summary-reporter.cjs')],
        moduleFileExtensions: ['js', 'cjs', 'mjs', 'json'],
      };
      await fs.writeFile(path.join(root, 'jest.config.json'), JSON.stringify(config));
      const jest = [
        '--experimental-vm-modules',
        '--disable-warning=ExperimentalWarning',
        path.join(REPO_ROOT, 'node_modules/jest/bin/jest.js'),
        '--config',
        path.join(root, 'jest.config.json'),
        '--rootDir',
        root,
      ];
      const env = { ...process.env, MFS_JOBS_FAULTS_RESULTS: '', MFS_JOBS_FAULTS_REPORTER: '' };
      const good = await run(process.execPath, jest, { cwd: root, env });
      expect(good.stdout).toContain('recorded fault');
      await fs.writeFile(path.join(root, 'dist/test/faults/silent.test.js'), "test('records nothing', () => {});\n");
      const bad = await run(process.execPath, jest, { cwd: root, env }).then(
        () => undefined,
        (err: { code: number; stdout: string }) => err,
      );
      expect(bad?.code).toBe(1);
      expect(bad?.stdout).toContain(
        'faults table: fault test file(s) that recorded no row in the faults table: silent.test.js',
      );
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  }, 60_000);
});
