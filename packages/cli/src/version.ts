// CRIU's version whose command line and images we follow, and our own.
export const CRIU_COMPAT_VERSION = '4.1';
export const CRIU_TS_VERSION = '0.1.0';

/** What `criu --version` prints: CRIU's line first (tools parse "Version: X.Y"), then ours. */
export function versionText(): string {
  return `Version: ${CRIU_COMPAT_VERSION}\ncriu-ts: ${CRIU_TS_VERSION} (CRIU-compatible checkpoint/restore in TypeScript)\n`;
}
