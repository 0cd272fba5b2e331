// Prints the closing line CI reads: "N passed, N failed[, N skipped]", as the very last line of the
// run (on exit, after jest's own summary). Skipped tests are counted, never hidden: tests that need
// the real lab must run, not skip.
const fs = require('node:fs');

class SummaryReporter {
  onRunComplete(_contexts, results) {
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const skipped = results.numPendingTests + results.numTodoTests;
    const line = `${results.numPassedTests} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : '');
    process.once('exit', () => fs.writeSync(1, `\n${line}\n`));
  }
}
module.exports = SummaryReporter;
