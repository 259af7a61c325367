// Adds up the jest JSON reports of every package into one closing line: "N passed, N failed".
const fs = require('fs');
const path = require('path');
const dir = process.argv[2];
let passed = 0, failed = 0, skipped = 0, suitesFailed = 0, files = 0;
for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
  if (!f.endsWith('.json')) continue;
  const r = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
  files++;
  passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + (r.numTodoTests || 0);
  suitesFailed += r.numRuntimeErrorTestSuites || 0;
}
if (files === 0) { console.log('0 passed, 1 failed'); console.error('no test reports found in ' + dir); process.exit(1); }
failed += suitesFailed;
console.log(`tests: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(failed > 0 || skipped > 0 ? 1 : 0);
