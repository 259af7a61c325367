// The parasite and restore helper are C, built by the host arch package; rebuild them before the
// tests so a changed packages/core/parasite/*.c is never tested through a stale blob.
const { execFileSync } = require('child_process');
const path = require('path');
module.exports = () => {
  if (process.arch === 'x64') {
    execFileSync('bash', [path.join(__dirname, '../../../arch/x86_64/parasite/build.sh')], { stdio: 'inherit' });
  }
};
