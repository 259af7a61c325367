// CRIU's RPC protocol (images/rpc.proto): request types, errno values it reports, and the
// version arithmetic runc applies to criu_version.

/** criu_req_type */
export const REQ = {
  EMPTY: 0,
  DUMP: 1,
  RESTORE: 2,
  CHECK: 3,
  PRE_DUMP: 4,
  PAGE_SERVER: 5,
  NOTIFY: 6,
  CPUINFO_DUMP: 7,
  CPUINFO_CHECK: 8,
  FEATURE_CHECK: 9,
  VERSION: 10,
  WAIT_PID: 11,
  PAGE_SERVER_CHLD: 12,
  SINGLE_PRE_DUMP: 13,
} as const;

export function reqTypeName(type: number): string {
  return Object.entries(REQ).find(([, v]) => v === type)?.[0] ?? `type ${type}`;
}

/** criu_cg_mode */
export const CG_MODE = { IGNORE: 0, CG_NONE: 1, PROPS: 2, SOFT: 3, FULL: 4, STRICT: 5, DEFAULT: 6 } as const;

/** errno values put in cr_errno */
export const ERRNO = {
  ESRCH: 3,
  ECHILD: 10,
  ENOENT: 2,
  EACCES: 13,
  EINVAL: 22,
  EBADRQC: 56, // CRIU's answer to a request whose options it can't set up
  EBADMSG: 74,
  EOPNOTSUPP: 95, // ENOTSUP
} as const;

/** The CRIU version runc compares against: major*10000 + minor*100 + sublevel (gitid: next minor). */
export function runcVersionNumber(v: { major_number: number; minor_number: number; sublevel?: number; gitid?: string }): number {
  let n = v.major_number * 10000 + v.minor_number * 100 + (v.sublevel ?? 0);
  if (v.gitid) n = n - (n % 100) + 100;
  return n;
}
