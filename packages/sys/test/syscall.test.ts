// The raw syscall layer, identical for both backends: numbers and names, 64-bit values both ways,
// errno -> SysError, Buffer addresses, async calls, page size, argument validation.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createSys, loadBackend, resolveBackendName, SysArgError, SysBackendError, SysError, WAIT, type Sys } from '../src/index';
import { BACKENDS } from './helpers';

const SEEK_SET = 0;
const NO_SUCH_PID = 0x3ffffff0; // above any pid_max (at most 2^22)

describe.each(BACKENDS)('syscalls through %s', (backend) => {
  let sys: Sys;
  beforeAll(() => {
    sys = createSys({ backend });
    expect(sys.backend.name).toBe(backend); // the backend really loads (no skipping on this host)
  });

  test('by name and by number', () => {
    expect(sys.syscall('getpid')).toBe(BigInt(process.pid));
    expect(sys.syscall(sys.nr('getppid'))).toBe(BigInt(process.ppid));
    expect(sys.getpid()).toBe(process.pid);
    expect(sys.gettid()).toBe(process.pid); // the main JS thread is the thread-group leader
  });

  test('64-bit arguments and results survive the round trip', () => {
    const fd = sys.memfdCreate('big-offsets');
    try {
      const big = (1n << 60n) + 1n; // not representable as a double
      expect(sys.syscall('lseek', fd, big, SEEK_SET)).toBe(big);
      expect(sys.syscall('lseek', fd, 0n, 1 /* SEEK_CUR */)).toBe(big);
      // 2^63 + 5 goes in as its bit pattern, a negative off_t: EINVAL, not a JS range error.
      expect(() => sys.syscall('lseek', fd, (1n << 63n) + 5n, SEEK_SET)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    } finally {
      sys.close(fd);
    }
  });

  test('errno becomes a typed SysError', () => {
    let err: unknown;
    try {
      sys.close(-1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SysError);
    expect(err).toMatchObject({ syscall: 'close', errno: 9, code: 'EBADF', message: 'close(-1): EBADF (Bad file descriptor)' });
    expect(() => sys.kill(NO_SUCH_PID, 0)).toThrow(`kill(${NO_SUCH_PID}, 0): ESRCH (No such process)`);
    expect(() => sys.ptrace.seize(NO_SUCH_PID)).toThrow(`ptrace(PTRACE_SEIZE, ${NO_SUCH_PID}): ESRCH (No such process)`);
    expect(() => sys.syscall('openat', -100, Buffer.from('/nonexistent/criu-ts\0'), 0)).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'openat' }));
    // A success right after a failure reports no stale errno.
    expect(sys.trySyscall('close', -1)).toEqual({ ret: -1n, errno: 9 });
    expect(sys.trySyscall('getpid')).toEqual({ ret: BigInt(process.pid), errno: 0 });
    // Called by an unknown number: named after the number.
    expect(() => sys.syscall(999)).toThrow(expect.objectContaining({ syscall: 'syscall_999', code: 'ENOSYS' }));
  });

  test('Buffers are passed zero-copy, pooled ones at their offset', () => {
    const fd = sys.memfdCreate('zero-copy');
    try {
      fs.writeSync(fd, Buffer.from('hello from the kernel'), 0, undefined, 0);
      const pooled = Buffer.from('................................'); // small: lives in Node's pool
      expect(pooled.byteOffset).toBeGreaterThan(0);
      const pool = Buffer.from(pooled.buffer);
      const before = Buffer.from(pool);
      expect(sys.syscall('pread64', fd, pooled.subarray(4), 10, 6)).toBe(10n);
      expect(pooled.toString()).toBe('....from the k..................');
      // Nothing outside those 10 bytes changed in the shared pool.
      const start = pooled.byteOffset + 4;
      const changed = [...pool].flatMap((b, i) => (b !== before[i] ? [i] : []));
      expect(changed.length).toBeGreaterThan(0);
      expect(changed.every((i) => i >= start && i < start + 10)).toBe(true);
      expect(sys.address(pooled) - sys.address(Buffer.from(pooled.buffer, 0, 1))).toBe(BigInt(pooled.byteOffset));
      const u8 = new Uint8Array(8);
      expect(sys.syscall('pread64', fd, u8, 5, 0)).toBe(5n);
      expect(Buffer.from(u8.subarray(0, 5)).toString()).toBe('hello');
    } finally {
      sys.close(fd);
    }
  });

  test('async calls run on another thread and keep the event loop free', async () => {
    expect(await sys.syscallAsync('getpid')).toBe(BigInt(process.pid));
    expect(await sys.syscallAsync('gettid')).not.toBe(BigInt(process.pid));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const ts = Buffer.alloc(16);
    ts.writeBigInt64LE(0n, 0);
    ts.writeBigInt64LE(300_000_000n, 8); // 300 ms
    try {
      expect(await sys.syscallAsync('ppoll', null, 0, ts, null, 8)).toBe(0n);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThanOrEqual(10);
    // errno comes back from the helper thread.
    await expect(sys.waitpidAsync(NO_SUCH_PID)).rejects.toMatchObject({ code: 'ECHILD', syscall: 'wait4' });
    await expect(sys.syscallAsync('close', -1)).rejects.toMatchObject({ code: 'EBADF' });
    // ptrace may only run on the tracing thread.
    await expect(sys.syscallAsync('ptrace', 0x4206, NO_SUCH_PID, 0, 0)).rejects.toBeInstanceOf(SysArgError);
  });

  test('sync wait on nothing: ECHILD; WNOHANG on a real non-child: ECHILD too', () => {
    expect(() => sys.waitpid(NO_SUCH_PID)).toThrow(expect.objectContaining({ code: 'ECHILD' }));
    expect(() => sys.waitpid(1, WAIT.WNOHANG | WAIT.__WALL)).toThrow(expect.objectContaining({ code: 'ECHILD' }));
  });

  test('page size comes from the system, not a constant', () => {
    const getconf = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim());
    expect(sys.pageSize()).toBe(getconf);
    expect(sys.backend.pageSize()).toBe(getconf);
  });

  test('bad input is a SysArgError, raised before the kernel is called', () => {
    expect(() => sys.syscall('no_such_syscall')).toThrow(SysArgError);
    expect(() => sys.syscall('getpid', 1.5)).toThrow(expect.objectContaining({ argument: 'args[0]' }));
    expect(() => sys.syscall('getpid', 2 ** 60)).toThrow(SysArgError);
    expect(() => sys.syscall('getpid', 1n << 64n)).toThrow(SysArgError);
    expect(() => sys.syscall('getpid', -(1n << 63n) - 1n)).toThrow(SysArgError);
    expect(() => sys.syscall('getpid', 1, 2, 3, 4, 5, 6, 7)).toThrow(SysArgError);
    expect(() => sys.syscall('getpid', 'x' as unknown as number)).toThrow(SysArgError);
    expect(() => sys.syscall(-1)).toThrow(SysArgError);
    expect(() => sys.ptrace.cont(NO_SUCH_PID, 99)).toThrow(SysArgError);
    expect(() => sys.memfdCreate('a\0b')).toThrow(SysArgError);
    expect(() => sys.ptrace.getRegset(NO_SUCH_PID, 1, 0)).toThrow(SysArgError);
    expect(() => sys.readMemory(NO_SUCH_PID, 0x1000n, -1)).toThrow(SysArgError);
    expect(() => sys.ptrace.peekSigInfo(NO_SUCH_PID, { count: 0 })).toThrow(SysArgError);
    expect(() => sys.processVmReadv(NO_SUCH_PID, Buffer.alloc(1), Array(1025).fill({ addr: 0n, len: 1 }))).toThrow(expect.objectContaining({ argument: 'remote' }));
  });
});

describe('backend selection', () => {
  const saved = process.env.CRIU_TS_FFI;
  afterEach(() => {
    if (saved === undefined) delete process.env.CRIU_TS_FFI;
    else process.env.CRIU_TS_FFI = saved;
  });

  test('option, then CRIU_TS_FFI, then koffi', () => {
    delete process.env.CRIU_TS_FFI;
    expect(resolveBackendName()).toBe('koffi');
    process.env.CRIU_TS_FFI = 'ffi-rs';
    expect(resolveBackendName()).toBe('ffi-rs');
    expect(createSys().backendName).toBe('ffi-rs');
    expect(resolveBackendName('koffi')).toBe('koffi');
    process.env.CRIU_TS_FFI = 'nope';
    expect(() => resolveBackendName()).toThrow(SysArgError);
    expect(() => createSys({ backend: 'nope' as 'koffi' })).toThrow(SysArgError);
    // The default instance reads the variable lazily: creating one with a bad value is fine,
    // using it is a typed error.
    const lazy = createSys();
    expect(() => lazy.getpid()).toThrow(SysArgError);
  });

  test('backends are shared and loaded once', () => {
    expect(loadBackend('koffi')).toBe(loadBackend('koffi'));
    expect(SysBackendError).toBeDefined();
  });
});
