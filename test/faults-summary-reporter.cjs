// The faults suite's closing table (faults injected, survived, data lost, lost restore points): every
// test under test/faults appends its rows to a JSON-lines file in the directory this reporter makes
// at the start of the run (passed to the workers in MFS_JOBS_FAULTS_RESULTS); the table is printed
// once every test file has finished. Runs without fault tests print nothing.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

class FaultsSummaryReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
  }
  onRunStart() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mfs-jobs-faults-results-'));
    process.env.MFS_JOBS_FAULTS_RESULTS = this.dir;
    process.env.MFS_JOBS_FAULTS_REPORTER = '1';
  }
  async onRunComplete() {
    try {
      const { readFaultRows, formatFaultTable } = await import(path.join(this.rootDir, 'dist/test/faults/results.js'));
      const rows = readFaultRows(this.dir);
      if (rows.length) process.stdout.write('\n' + formatFaultTable(rows, 'Reliability under faults (test/faults, docs/reliability.md):'));
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
module.exports = FaultsSummaryReporter;
