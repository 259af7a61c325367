// Adds up the jest JSON reports of every package into one closing line: "N passed, N failed".
const fs = require('fs');
const path = require('path');
const dir = process.argv[2];
let passed = 0, failed = 0, skipped = 0, suitesFailed = 0, files = 0;
// What failed, printed last: a CI log is often cut, and its end is what survives.
const failures = [];
const firstLines = (text) => String(text).replace(/\x1b\[[0-9;]*m/g, '').split('\n').filter((l) => l.trim()).slice(0, 24).join('\n      ');
for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
  if (!f.endsWith('.json')) continue;
  const r = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
  files++;
  passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + (r.numTodoTests || 0);
  suitesFailed += r.numRuntimeErrorTestSuites || 0;
  for (const suite of r.testResults || []) {
    const where = path.relative(process.cwd(), suite.name);
    if (suite.status === 'failed' && !(suite.assertionResults || []).some((a) => a.status === 'failed')) {
      failures.push(`  ${where}: the suite failed to run\n      ${firstLines(suite.message)}`);
    }
    for (const a of suite.assertionResults || []) {
      if (a.status === 'failed') failures.push(`  ${where} > ${a.fullName}\n      ${firstLines((a.failureMessages || []).join('\n'))}`);
    }
  }
}
if (files === 0) { console.log('0 passed, 1 failed'); console.error('no test reports found in ' + dir); process.exit(1); }
failed += suitesFailed;
if (failures.length) console.log(`failed tests:\n${failures.join('\n')}`);
console.log(`tests: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(failed > 0 || skipped > 0 ? 1 : 0);
