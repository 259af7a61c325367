// ffi-rs backend: selectable where ffi-rs has a binary (x86_64, arm64). ffi-rs cannot call
// variadic functions, so syscall() is declared with seven fixed 64-bit arguments, which glibc's
// syscall() (a register shuffle) accepts on x86_64 and ppc64le.
import type { FfiBackend, SyscallResult } from './backend.js';

// Only the parts of ffi-rs's API we use.
export interface FfiRsModule {
  open(opts: { library: string; path: string }): void;
  load(opts: {
    library: string;
    funcName: string;
    retType: unknown;
    paramsType: unknown[];
    paramsValue: unknown[];
    errno?: boolean;
    runInNewThread?: boolean;
  }): unknown;
  DataType: { BigInt: unknown; I32: unknown; U64: unknown; U8Array: unknown };
}

interface ErrnoResult {
  value: bigint;
  errnoCode: number;
}

// Library handles are global in ffi-rs; a private key avoids clashing with other users.
const LIB = '@criu/sys:libc';

export function createFfiRsBackend(ffi: FfiRsModule): FfiBackend {
  const T = ffi.DataType;
  ffi.open({ library: LIB, path: 'libc.so.6' });
  const params7 = [T.BigInt, T.BigInt, T.BigInt, T.BigInt, T.BigInt, T.BigInt, T.BigInt];
  const memsetParams = [T.U8Array, T.I32, T.U64];

  // errnoCode is not reset by a successful call: read it only when the result is -1.
  const result = (r: ErrnoResult): SyscallResult => ({ ret: r.value, errno: r.value === -1n ? r.errnoCode : 0 });
  const call = (nr: number, a: readonly bigint[], runInNewThread: boolean) =>
    ffi.load({
      library: LIB,
      funcName: 'syscall',
      retType: T.BigInt,
      paramsType: params7,
      paramsValue: [BigInt(nr), a[0], a[1], a[2], a[3], a[4], a[5]],
      errno: true,
      runInNewThread,
    });

  return {
    name: 'ffi-rs',
    syscall(nr, a) {
      return result(call(nr, a, false) as ErrnoResult);
    },
    async syscallAsync(nr, a) {
      return result(await (call(nr, a, true) as Promise<ErrnoResult>));
    },
    address(buf) {
      if (buf.length === 0) return 0n;
      // memset(p, 0, 0) returns p: the address ffi-rs passes for a U8Array, which is the
      // Buffer's own memory (byteOffset included).
      return ffi.load({ library: LIB, funcName: 'memset', retType: T.BigInt, paramsType: memsetParams, paramsValue: [buf, 0, 0] }) as bigint;
    },
    pageSize() {
      return ffi.load({ library: LIB, funcName: 'getpagesize', retType: T.I32, paramsType: [], paramsValue: [] }) as number;
    },
  };
}
