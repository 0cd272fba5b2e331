// The faults suite's closing table (faults injected, survived, data lost, lost restore points): every
// fault test appends its rows to a JSON-lines file in the directory this reporter makes when jest
// constructs it — before any worker is started, so every worker inherits MFS_JOBS_FAULTS_RESULTS — and
// the table is printed once every test file has finished. Runs without fault tests print nothing.
// A test file under test/faults/ that recorded no row fails the run (an empty or partial table must
// never pass for "nothing was lost"); so does a run whose fault tests left the table empty.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

class FaultsSummaryReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mfs-jobs-faults-results-'));
    process.env.MFS_JOBS_FAULTS_RESULTS = this.dir;
    process.env.MFS_JOBS_FAULTS_REPORTER = '1';
    this.error = undefined;
  }
  async onRunComplete(_contexts, results) {
    try {
      const { readFaultRows, formatFaultTable, faultLedgerProblem } = await import(
        path.join(this.rootDir, 'dist/test/faults/results.js')
      );
      const rows = readFaultRows(this.dir);
      if (rows.length)
        process.stdout.write(
          '\n' + formatFaultTable(rows, 'Reliability under faults (test/faults, docs/reliability.md):'),
        );
      const ran = results.testResults.map((r) => r.testFilePath);
      const problem = faultLedgerProblem(ran, rows, path.join(this.rootDir, 'dist', 'test', 'faults'));
      if (problem) {
        this.error = new Error(problem);
        process.stdout.write(`\nfaults table: ${problem}\n`);
        // Counted as a failed suite, so the closing "N passed, N failed" line says so too.
        results.numRuntimeErrorTestSuites += 1;
        results.success = false;
      }
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
  getLastError() {
    return this.error;
  }
}
module.exports = FaultsSummaryReporter;
