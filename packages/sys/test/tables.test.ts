// Data tables checked against the kernel's uapi headers (host x86_64 headers, and the ppc64el
// cross headers from linux-libc-dev-ppc64el-cross), plus the pure encoders/decoders.
import fs from 'node:fs';
import {
  AT, CLONE, CLONE_ARGS_SIZE, ERRNO_GENERIC, KCMP, MFD, NT, PR, PR_SET_MM, PTRACE, PTRACE_EVENT, PTRACE_O, PTRACE_PPC64, PTRACE_X86_64,
  SIGNALS_PPC64, SIGNALS_X86_64, SYSCALLS_PPC64, SYSCALLS_X86_64, SysArgError, SysError, WAIT, archFromNode, decodeWaitStatus,
  errnoMessage, errnoName, errnoNumber, hostArch, packCloneArgs, packTidArray, ptraceRequestName, sigmask, signalName,
  signalNumber, signalsInMask, syscallName, syscallNumber, unpackCloneArgs, unpackTidArray,
} from '../src/index';

const X86_INC = '/usr/include';
const PPC_INC = '/usr/powerpc64le-linux-gnu/include';

function defines(file: string, prefix: string): Map<string, number> {
  const out = new Map<string, number>();
  const re = new RegExp(`^#\\s*define\\s+${prefix}(\\w+)\\s+(0x[0-9a-fA-F]+|\\d+)(?:U?L{0,2})\\b`, 'gm');
  for (const m of fs.readFileSync(file, 'utf8').matchAll(re)) out.set(m[1], Number(m[2]));
  return out;
}

function expectTableMatchesHeader(table: Readonly<Record<string, number>>, header: Map<string, number>): void {
  expect(header.size).toBeGreaterThan(300);
  const mismatches: string[] = [];
  for (const [name, nr] of header) if (table[name] !== nr) mismatches.push(`${name}: header ${nr}, table ${table[name]}`);
  expect(mismatches).toEqual([]);
  // Entries the (older) header lacks must be newer syscalls, numbered above everything it has.
  const maxHeader = Math.max(...header.values());
  const extra = Object.entries(table).filter(([n]) => !header.has(n));
  for (const [name, nr] of extra) expect([name, nr > maxHeader || (nr >= 335 && nr <= 336)]).toEqual([name, true]);
  // No two names share a number.
  expect(new Set(Object.values(table)).size).toBe(Object.keys(table).length);
}

describe('syscall tables', () => {
  test('x86_64 matches the host asm/unistd_64.h', () => {
    expectTableMatchesHeader(SYSCALLS_X86_64, defines(`${X86_INC}/x86_64-linux-gnu/asm/unistd_64.h`, '__NR_'));
  });

  // linux-libc-dev-ppc64el-cross is installed by tools/scripts/setup.sh; its absence is a setup error.
  test('ppc64 matches the ppc64el cross asm/unistd_64.h', () => {
    expectTableMatchesHeader(SYSCALLS_PPC64, defines(`${PPC_INC}/asm/unistd_64.h`, '__NR_'));
  });

  test('the numbers the engine relies on', () => {
    expect([SYSCALLS_X86_64.ptrace, SYSCALLS_PPC64.ptrace]).toEqual([101, 26]);
    expect([SYSCALLS_X86_64.process_vm_readv, SYSCALLS_PPC64.process_vm_readv]).toEqual([310, 351]);
    expect([SYSCALLS_X86_64.clone3, SYSCALLS_PPC64.clone3]).toEqual([435, 435]);
    expect([SYSCALLS_X86_64.mseal, SYSCALLS_PPC64.mseal]).toEqual([462, 462]);
    expect(syscallNumber('wait4', 'ppc64le')).toBe(114);
    expect(syscallName(114, 'ppc64')).toBe('wait4');
    expect(syscallName(61, 'x86_64')).toBe('wait4');
    expect(syscallNumber('arch_prctl', 'ppc64le')).toBeUndefined();
    expect(syscallNumber('no_such_call', 'x86_64')).toBeUndefined();
    expect(syscallNumber('toString', 'x86_64')).toBeUndefined();
  });

  test('host arch detection', () => {
    expect(archFromNode('x64', 'LE')).toBe('x86_64');
    expect(archFromNode('ppc64', 'LE')).toBe('ppc64le');
    expect(archFromNode('ppc64', 'BE')).toBe('ppc64');
    expect(archFromNode('arm64', 'LE')).toBeNull();
    expect(hostArch()).toBe(archFromNode(process.arch, process.arch === 'x64' ? 'LE' : (require('os').endianness() as 'LE' | 'BE')));
  });
});

describe('errno', () => {
  const generic = new Map([
    ...defines(`${X86_INC}/asm-generic/errno-base.h`, ''),
    ...defines(`${X86_INC}/asm-generic/errno.h`, ''),
  ]);

  test('generic table matches asm-generic/errno*.h and covers 1..133', () => {
    const mine = new Map(ERRNO_GENERIC.map(([n, name]) => [name, n]));
    for (const [name, n] of generic) if (name.startsWith('E')) expect([name, mine.get(name) ?? errnoNumber(name, 'x86_64')]).toEqual([name, n]);
    const numbers = new Set(ERRNO_GENERIC.map(([n]) => n));
    for (let n = 1; n <= 133; n++) if (n !== 41 && n !== 58) expect([n, numbers.has(n)]).toEqual([n, true]);
  });

  test('ppc64 differs only in EDEADLOCK = 58 (cross asm/errno.h)', () => {
    const ppc = fs.readFileSync(`${PPC_INC}/asm/errno.h`, 'utf8');
    expect(ppc).toMatch(/#define\s+EDEADLOCK\s+58\b/);
    expect(errnoNumber('EDEADLOCK', 'ppc64le')).toBe(58);
    expect(errnoName(58, 'ppc64le')).toBe('EDEADLOCK');
    expect(errnoNumber('EDEADLOCK', 'x86_64')).toBe(35);
    expect(errnoName(58, 'x86_64')).toBe('E58');
    expect(errnoMessage(58, 'x86_64')).toBe('Unknown error 58');
  });

  test('names, messages and aliases', () => {
    expect(errnoName(3)).toBe('ESRCH');
    expect(errnoMessage(3)).toBe('No such process');
    expect(errnoNumber('EWOULDBLOCK')).toBe(11);
    expect(errnoNumber('ENOTSUP')).toBe(95);
    expect(errnoName(512)).toBe('ERESTARTSYS');
    expect(errnoName(516)).toBe('ERESTART_RESTARTBLOCK');
    const e = new SysError('ptrace', 3, 'PTRACE_SEIZE, 1234');
    expect(e.message).toBe('ptrace(PTRACE_SEIZE, 1234): ESRCH (No such process)');
    expect([e.syscall, e.errno, e.code, e.name]).toEqual(['ptrace', 3, 'ESRCH', 'SysError']);
    expect(SysError.is(e, 'ESRCH')).toBe(true);
    expect(SysError.is(e, 'EPERM')).toBe(false);
    expect(SysError.is(new Error('x'))).toBe(false);
  });
});

describe('signals', () => {
  test.each([
    ['x86_64', `${X86_INC}/x86_64-linux-gnu/asm/signal.h`, SIGNALS_X86_64],
    ['ppc64', `${PPC_INC}/asm/signal.h`, SIGNALS_PPC64],
  ] as const)('%s matches asm/signal.h for 1..31', (_arch, header, table) => {
    const h = defines(header, '');
    const fromHeader = Object.fromEntries([...h].filter(([n, v]) => /^SIG[A-Z0-9]+$/.test(n) && v >= 1 && v <= 31 && !['SIGIOT', 'SIGLOST', 'SIGSTKSZ', 'SIGUNUSED'].includes(n)));
    expect(table).toEqual(fromHeader);
    expect(h.get('SIGRTMIN')).toBe(32);
  });

  test('names, numbers and masks', () => {
    expect(signalName(15)).toBe('SIGTERM');
    expect(signalName(34)).toBe('SIGRTMIN+2');
    expect(signalNumber('TERM')).toBe(15);
    expect(signalNumber('SIGRTMIN+3')).toBe(35);
    expect(signalNumber('SIGIOT')).toBe(6);
    expect(signalNumber('SIGRTMIN+40')).toBeUndefined();
    expect(sigmask([12])).toBe(0x800n);
    expect(sigmask([1, 64])).toBe((1n << 63n) | 1n);
    expect(signalsInMask(0x800n | (1n << 27n))).toEqual([12, 28]);
    expect(() => sigmask([0])).toThrow(RangeError);
  });
});

describe('constants against uapi headers', () => {
  /** Checks every entry of `table` that the header defines numerically; returns the names it lacks. */
  const unchecked = (files: string[], prefix: string, table: Record<string, number | bigint>, rename = (k: string) => k) => {
    const h = new Map(files.flatMap((f) => [...defines(f, prefix)]));
    const missing: string[] = [];
    for (const [k, v] of Object.entries(table)) {
      const hv = h.get(rename(k));
      if (hv === undefined) missing.push(k);
      else expect([k, typeof v === 'bigint' ? v : v >>> 0]).toEqual([k, typeof v === 'bigint' ? BigInt(hv) : hv]);
    }
    return missing;
  };

  test('ptrace requests, options, events', () => {
    // Newer than the 6.1 headers on this machine: 6.4 syscall user dispatch, 6.16 SET_SYSCALL_INFO.
    expect(unchecked([`${X86_INC}/linux/ptrace.h`], 'PTRACE_', PTRACE)).toEqual(['SET_SYSCALL_USER_DISPATCH_CONFIG', 'GET_SYSCALL_USER_DISPATCH_CONFIG', 'SET_SYSCALL_INFO']);
    expect(unchecked([`${X86_INC}/linux/ptrace.h`], 'PTRACE_EVENT_', PTRACE_EVENT)).toEqual([]);
    expect(unchecked([`${X86_INC}/x86_64-linux-gnu/asm/ptrace-abi.h`], 'PTRACE_', PTRACE_X86_64)).toEqual([]);
    expect(unchecked([`${PPC_INC}/asm/ptrace.h`], 'PTRACE_', PTRACE_PPC64)).toEqual([]);
    expect(PTRACE_O).toMatchObject({ TRACESYSGOOD: 1, TRACEFORK: 2, TRACECLONE: 8, TRACEEXIT: 0x40, EXITKILL: 0x100000, SUSPEND_SECCOMP: 0x200000 });
    expect(ptraceRequestName(0x4206)).toBe('PTRACE_SEIZE');
  });

  test('NT_* note types', () => {
    const missing = unchecked([`${X86_INC}/linux/elf.h`], 'NT_', NT, (k) => k.replace(/^X86_386_/, '386_'));
    expect(missing).toEqual(['PPC_DEXCR', 'PPC_HASHKEYR', 'X86_SHSTK', 'X86_XSAVE_LAYOUT']); // added after 6.1
  });

  test('kcmp, clone, memfd, prctl, auxv, wait', () => {
    const kcmpNames = [...fs.readFileSync(`${X86_INC}/linux/kcmp.h`, 'utf8').matchAll(/^\s*KCMP_(\w+),/gm)].map((m) => m[1]);
    expect(kcmpNames.slice(0, 8)).toEqual(Object.keys(KCMP));
    expect(Object.values(KCMP)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(unchecked([`${X86_INC}/linux/sched.h`], 'CLONE_', CLONE)).toEqual([]);
    expect(defines(`${X86_INC}/linux/sched.h`, 'CLONE_').get('ARGS_SIZE_VER2')).toBe(CLONE_ARGS_SIZE);
    expect(unchecked([`${X86_INC}/linux/memfd.h`], 'MFD_', MFD)).toEqual(['NOEXEC_SEAL', 'EXEC']); // 6.3
    const pr = unchecked([`${X86_INC}/linux/prctl.h`], 'PR_', PR);
    const prNames = new Set([...fs.readFileSync(`${X86_INC}/linux/prctl.h`, 'utf8').matchAll(/#\s*define\s+PR_(\w+)/g)].map((m) => m[1]));
    // The rest are defined by expression, not literal; TIMER_CREATE_RESTORE_IDS (77, Linux 6.17)
    // is newer than Debian 12's headers: where they have it, it must have that value.
    const newer: Record<string, number> = { TIMER_CREATE_RESTORE_IDS: 77 };
    expect(pr.filter((k) => !prNames.has(k) && !(k in newer))).toEqual([]);
    for (const [k, v] of Object.entries(newer)) expect((PR as Record<string, number>)[k]).toBe(v);
    expect(unchecked([`${X86_INC}/linux/prctl.h`], 'PR_SET_MM_', PR_SET_MM)).toEqual([]);
    expect(unchecked([`${X86_INC}/linux/auxvec.h`, `${X86_INC}/x86_64-linux-gnu/asm/auxvec.h`], 'AT_', AT)).toEqual([]);
    expect(unchecked([`${X86_INC}/linux/wait.h`], '', WAIT)).toEqual(['WSTOPPED']);
    expect(fs.readFileSync(`${X86_INC}/linux/wait.h`, 'utf8')).toMatch(/#define WSTOPPED\s+WUNTRACED/);
    expect(WAIT.WSTOPPED).toBe(WAIT.WUNTRACED);
  });
});

describe('decodeWaitStatus', () => {
  test('exit, signal death, continue', () => {
    expect(decodeWaitStatus(3 << 8, 7)).toEqual({ kind: 'exited', pid: 7, raw: 0x300, code: 3 });
    expect(decodeWaitStatus(9, 7)).toEqual({ kind: 'signaled', pid: 7, raw: 9, signal: 9, core: false });
    expect(decodeWaitStatus(0x80 | 11, 7)).toMatchObject({ kind: 'signaled', signal: 11, core: true });
    expect(decodeWaitStatus(0xffff, 7)).toEqual({ kind: 'continued', pid: 7, raw: 0xffff });
  });

  test('stops: signal-delivery, ptrace event, group-stop, syscall-stop', () => {
    expect(decodeWaitStatus(0x137f, 1)).toEqual({ kind: 'stopped', pid: 1, raw: 0x137f, signal: 19, groupStop: false, syscallStop: false });
    expect(decodeWaitStatus(0x80057f, 1)).toEqual({ kind: 'stopped', pid: 1, raw: 0x80057f, signal: 5, event: 128, groupStop: false, syscallStop: false });
    expect(decodeWaitStatus(0x80137f, 1)).toMatchObject({ signal: 19, event: 128, groupStop: true });
    expect(decodeWaitStatus(0x857f, 1)).toMatchObject({ kind: 'stopped', signal: 5, syscallStop: true, groupStop: false });
    expect(decodeWaitStatus(0x3057f, 1)).toMatchObject({ signal: 5, event: PTRACE_EVENT.CLONE });
  });
});

describe('clone3 argument packing', () => {
  test('round trip of every field at its offset', () => {
    const args = {
      flags: CLONE.VM | CLONE.FS | CLONE.CLEAR_SIGHAND, pidfd: 0x1000n, childTid: 0x2000n, parentTid: 0x3000n, exitSignal: 17,
      stack: 0x7f0000000000n, stackSize: 0x10000n, tls: 0xfffffffffffff000n, setTid: 0x4000n, setTidSize: 2, cgroup: 5,
    };
    const buf = packCloneArgs(args);
    expect(buf.length).toBe(88);
    expect(unpackCloneArgs(buf)).toEqual({
      flags: 0x100000300n, pidfd: 0x1000n, childTid: 0x2000n, parentTid: 0x3000n, exitSignal: 17n, stack: 0x7f0000000000n,
      stackSize: 0x10000n, tls: 0xfffffffffffff000n, setTid: 0x4000n, setTidSize: 2n, cgroup: 5n,
    });
    // struct clone_args layout: 11 consecutive __aligned_u64 fields.
    const le = require('os').endianness() === 'LE';
    const at = (i: number) => (le ? buf.readBigUInt64LE(8 * i) : buf.readBigUInt64BE(8 * i));
    expect([at(0), at(4), at(8), at(9), at(10)]).toEqual([0x100000300n, 17n, 0x4000n, 2n, 5n]);
    expect(packCloneArgs({}).equals(Buffer.alloc(88))).toBe(true);
  });

  test('pid arrays and bad input', () => {
    expect(unpackTidArray(packTidArray([1234, 1]))).toEqual([1234, 1]);
    expect(packTidArray([7]).length).toBe(4);
    expect(() => packCloneArgs({ setTidSize: 1 })).toThrow(SysArgError);
    expect(() => packCloneArgs({ setTid: 1n, setTidSize: 33 })).toThrow(SysArgError);
    expect(() => packCloneArgs({ flags: -1 })).toThrow(SysArgError);
    expect(() => packCloneArgs({ stack: 1n << 64n })).toThrow(SysArgError);
    expect(() => packCloneArgs({ exitSignal: 65 })).toThrow(SysArgError);
    expect(() => packTidArray([])).toThrow(SysArgError);
    expect(() => unpackCloneArgs(Buffer.alloc(64))).toThrow(SysArgError);
  });
});
