// Shared jest settings: swc transform, CJS tests, workspace packages resolved to their sources
// so a test never depends on a stale dist/.
const path = require('path');
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.tsx?$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }] },
  moduleNameMapper: {
    '^@criu/sys$': path.join(__dirname, 'packages/sys/src/index.ts'),
    '^@criu/images$': path.join(__dirname, 'packages/images/src/index.ts'),
    '^@criu/core$': path.join(__dirname, 'packages/core/src/index.ts'),
    '^@criu/cli$': path.join(__dirname, 'packages/cli/src/index.ts'),
    '^@criu/arch-x86_64$': path.join(__dirname, 'arch/x86_64/src/index.ts'),
    '^@criu/arch-ppc64$': path.join(__dirname, 'arch/ppc64/src/index.ts'),
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testMatch: ['**/test/**/*.test.ts'],
  testTimeout: 120000,
};
