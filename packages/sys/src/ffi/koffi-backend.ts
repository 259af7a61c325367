// koffi backend: the default. A fixed-arity syscall() declaration keeps calls cheap (~0.3 us) and
// usable with .async (variadic functions cannot run async in koffi).
import type { FfiBackend, SyscallResult } from './backend.js';

// Only the parts of koffi's API we use.
interface KoffiFn {
  (...args: unknown[]): unknown;
  async(...args: unknown[]): void;
}
interface KoffiLib {
  func(signature: string): KoffiFn;
}
export interface KoffiModule {
  load(path: string): KoffiLib;
  address(value: unknown): bigint;
  errno(value?: number): number;
}

function big(v: unknown): bigint {
  return typeof v === 'bigint' ? v : BigInt(v as number);
}

export function createKoffiBackend(koffi: KoffiModule): FfiBackend {
  const libc = koffi.load('libc.so.6');
  const sys7 = libc.func('int64_t syscall(int64_t nr, int64_t a0, int64_t a1, int64_t a2, int64_t a3, int64_t a4, int64_t a5)');
  const getpagesize = libc.func('int getpagesize()');

  return {
    name: 'koffi',
    syscall(nr, a): SyscallResult {
      const ret = big(sys7(nr, a[0], a[1], a[2], a[3], a[4], a[5]));
      return { ret, errno: ret === -1n ? koffi.errno() : 0 };
    },
    syscallAsync(nr, a) {
      return new Promise<SyscallResult>((resolve, reject) => {
        // koffi hands the worker thread's errno back to the callback's thread.
        sys7.async(nr, a[0], a[1], a[2], a[3], a[4], a[5], (err: unknown, res: unknown) => {
          if (err) return reject(err);
          const ret = big(res);
          resolve({ ret, errno: ret === -1n ? koffi.errno() : 0 });
        });
      });
    },
    address(buf) {
      return buf.length === 0 ? 0n : big(koffi.address(buf));
    },
    pageSize() {
      return getpagesize() as number;
    },
  };
}
