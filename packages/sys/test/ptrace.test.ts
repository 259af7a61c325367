// ptrace, wait and process_vm_* against a real tracee (tools/testprogs/sys/target.c), run once
// per backend. The steps share one tracee and run in order, as a dump would: seize, stop, read
// and change state, resume, stop again, detach, and finally watch it die.
import fs from 'node:fs';
import {
  createSys, decodeWaitStatus, NT, PTRACE_EVENT, PTRACE_O, SIGNALS, sigmask, syscallName, SysError, WAIT,
  type Sys, type WaitStatus,
} from '../src/index';
import { BACKENDS, buildTarget, killAndReap, logSize, sleep, startDetached, startTarget, tempDir, ticks, waitForLog, type TargetInfo } from './helpers';

const { SIGTRAP, SIGSTOP, SIGCONT, SIGUSR1, SIGUSR2, SIGWINCH, SIGTERM, SIGKILL } = SIGNALS;

// Where pc and sp sit in NT_PRSTATUS (user_regs_struct on x86_64, pt_regs on ppc64), and
// AUDIT_ARCH_* as reported by PTRACE_GET_SYSCALL_INFO.
const ARCH = process.arch === 'x64'
  ? { regsSize: 27 * 8, pc: 16 * 8, sp: 19 * 8, auditArch: 0xc000003e, rseqSig: 0x53053053, syscallInsn: { bytes: 2, mask: 0xffffn, value: 0x050fn } }
  : { regsSize: 44 * 8, pc: 32 * 8, sp: 1 * 8, auditArch: 0xc0000015, rseqSig: 0x0fe5000b, syscallInsn: { bytes: 4, mask: 0xffffffffn, value: 0x44000002n } };

const readU64 = (b: Buffer, off: number) => (require('os').endianness() === 'LE' ? b.readBigUInt64LE(off) : b.readBigUInt64BE(off));

/** Polls for the next wait status of `pid` (WNOHANG), so a missing stop fails the test instead of hanging it. */
async function nextStatus(sys: Sys, pid: number, timeoutMs = 5000): Promise<WaitStatus> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const st = sys.waitpid(pid, WAIT.__WALL | WAIT.WNOHANG);
    if (st) return st;
    if (Date.now() > end) throw new Error(`no wait status from ${pid} within ${timeoutMs} ms`);
    await sleep(2);
  }
}

/** pc and sp from /proc/PID/syscall ("nr args... sp pc" or "-1 sp pc"). */
function procSyscall(pid: number): { sp: bigint; pc: bigint } {
  const f = fs.readFileSync(`/proc/${pid}/syscall`, 'utf8').trim().split(/\s+/);
  return { sp: BigInt(f[f.length - 2]), pc: BigInt(f[f.length - 1]) };
}

async function logGrows(log: string, ms = 2000): Promise<void> {
  const from = logSize(log);
  await waitForLog(log, /^tick \d+ /m, ms, from);
}

async function logStill(log: string, ms = 100): Promise<void> {
  const size = logSize(log);
  await sleep(ms);
  expect(logSize(log)).toBe(size);
}

describe.each(BACKENDS)('ptrace through %s', (backend) => {
  let sys: Sys;
  let dir: string;
  let exe: string;
  let t: TargetInfo;
  const started: number[] = [];

  beforeAll(async () => {
    sys = createSys({ backend });
    dir = tempDir(`ptrace-${backend}`);
    exe = buildTarget(dir);
    t = await startTarget(exe, dir, 'main');
    started.push(t.pid);
    sys.kill(t.pid, SIGUSR2); // blocked in the target: stays pending (for PEEKSIGINFO)
  });

  afterAll(() => {
    for (const pid of started) killAndReap(sys, pid);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('seize + interrupt gives a PTRACE_EVENT_STOP, and the tracee stops running', async () => {
    sys.ptrace.seize(t.pid, PTRACE_O.TRACESYSGOOD);
    sys.ptrace.interrupt(t.pid);
    const st = sys.waitpid(t.pid); // blocking: an interrupt stop always comes
    expect(st).toEqual({ kind: 'stopped', pid: t.pid, raw: (PTRACE_EVENT.STOP << 16) | (SIGTRAP << 8) | 0x7f, signal: SIGTRAP, event: PTRACE_EVENT.STOP, groupStop: false, syscallStop: false });
    await logStill(t.log);
    const si = sys.ptrace.getSigInfo(t.pid);
    expect([si.signo, si.code]).toEqual([SIGTRAP, (PTRACE_EVENT.STOP << 8) | SIGTRAP]);
    expect(sys.waitpid(t.pid, WAIT.__WALL | WAIT.WNOHANG)).toBeNull(); // nothing else to report
  });

  test('GETREGSET NT_PRSTATUS: pc and sp match /proc/PID/syscall; SETREGSET writes back', () => {
    const regs = sys.ptrace.getRegset(t.pid, NT.PRSTATUS, 4096);
    expect(regs.length).toBe(ARCH.regsSize);
    const pc = readU64(regs, ARCH.pc);
    const sp = readU64(regs, ARCH.sp);
    expect(procSyscall(t.pid)).toEqual({ sp, pc });
    // The instruction right before pc is the syscall instruction the tracee sleeps in.
    const insn = sys.ptrace.peekText(t.pid, pc - BigInt(ARCH.syscallInsn.bytes));
    expect(insn & ARCH.syscallInsn.mask).toBe(ARCH.syscallInsn.value);
    const info = sys.ptrace.getSyscallInfo(t.pid);
    expect(info).toEqual({ op: 'none', arch: ARCH.auditArch, instructionPointer: pc, stackPointer: sp });
    sys.ptrace.setRegset(t.pid, NT.PRSTATUS, regs);
    expect(sys.ptrace.getRegset(t.pid, NT.PRSTATUS, 4096).equals(regs)).toBe(true);
    expect(() => sys.ptrace.getRegset(t.pid, 0x7777, 64)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'ptrace' }));
  });

  test('PEEKDATA / POKEDATA round trip', () => {
    expect(sys.ptrace.peekData(t.pid, t.word)).toBe(0x1122334455667788n);
    sys.ptrace.pokeData(t.pid, t.word, 0xdeadbeefcafef00dn);
    expect(sys.ptrace.peekData(t.pid, t.word)).toBe(0xdeadbeefcafef00dn);
    expect(() => sys.ptrace.peekData(t.pid, 8)).toThrow(expect.objectContaining({ code: 'EIO', message: expect.stringContaining('PTRACE_PEEKDATA') }));
  });

  test('process_vm_readv / process_vm_writev', () => {
    expect(sys.readMemory(t.pid, t.pattern, 32).toString()).toBe('criu-ts-pattern-AAAAAAAAAAAAAAAA');
    // Scatter into two local Buffers from two remote ranges.
    const a = Buffer.alloc(5);
    const b = Buffer.alloc(11);
    expect(sys.processVmReadv(t.pid, [a, b], [{ addr: t.pattern, len: 8 }, { addr: t.pattern + 8n, len: 8 }])).toBe(16);
    expect(a.toString() + b.toString()).toBe('criu-ts-pattern-');
    expect(sys.writeMemory(t.pid, t.pattern + 16n, Buffer.from('BBBBBBBBBBBBBBBB'))).toBe(16);
    expect(sys.readMemory(t.pid, t.pattern, 32).toString()).toBe('criu-ts-pattern-BBBBBBBBBBBBBBBB');
    expect(() => sys.readMemory(t.pid, 0x10, 8)).toThrow(expect.objectContaining({ code: 'EFAULT', syscall: 'process_vm_readv' }));
  });

  test('signal mask and pending signals', () => {
    expect(sys.ptrace.getSigMask(t.pid)).toBe(sigmask([SIGUSR2]));
    sys.ptrace.setSigMask(t.pid, sigmask([SIGUSR2, SIGWINCH]));
    expect(sys.ptrace.getSigMask(t.pid)).toBe(sigmask([SIGUSR2, SIGWINCH]));
    const shared = sys.ptrace.peekSigInfo(t.pid, { shared: true });
    expect(shared.map((s) => [s.signo, s.code, s.raw.readInt32LE(16)])).toEqual([[SIGUSR2, 0 /* SI_USER */, process.pid]]);
    expect(sys.ptrace.peekSigInfo(t.pid)).toEqual([]); // the thread's own queue is empty
  });

  test('rseq registration and the seccomp filter', () => {
    const rseq = sys.ptrace.getRseqConfiguration(t.pid);
    expect(rseq.rseqAbiPointer).not.toBe(0n); // glibc registers rseq for every thread
    expect(rseq.rseqAbiSize).toBeGreaterThanOrEqual(32);
    expect(rseq.signature).toBe(ARCH.rseqSig);
    const filter = sys.ptrace.seccompGetFilter(t.pid, 0);
    expect(filter.length).toBe(8); // one sock_filter: BPF_RET|BPF_K, SECCOMP_RET_ALLOW
    expect([filter.readUInt16LE(0), filter.readUInt32LE(4)]).toEqual([0x06, 0x7fff0000]);
    expect(() => sys.ptrace.seccompGetFilter(t.pid, 1)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  test('PTRACE_SYSCALL stops at syscall entry and exit; singlestep moves pc', async () => {
    sys.ptrace.syscall(t.pid);
    const entry = await nextStatus(sys, t.pid);
    expect(entry).toMatchObject({ kind: 'stopped', signal: SIGTRAP, syscallStop: true });
    const inSyscall = sys.ptrace.getSyscallInfo(t.pid);
    expect(inSyscall.op).toBe('entry');
    if (inSyscall.op !== 'entry') return;
    expect(syscallName(Number(inSyscall.nr))).toBeDefined();
    sys.ptrace.syscall(t.pid);
    expect(await nextStatus(sys, t.pid)).toMatchObject({ kind: 'stopped', syscallStop: true });
    const exit = sys.ptrace.getSyscallInfo(t.pid);
    expect(exit.op).toBe('exit');
    const pc1 = readU64(sys.ptrace.getRegset(t.pid, NT.PRSTATUS, 4096), ARCH.pc);
    sys.ptrace.singlestep(t.pid);
    const step = await nextStatus(sys, t.pid);
    expect(step).toMatchObject({ kind: 'stopped', signal: SIGTRAP, syscallStop: false });
    expect(step.kind === 'stopped' && step.event).toBeFalsy();
    expect(readU64(sys.ptrace.getRegset(t.pid, NT.PRSTATUS, 4096), ARCH.pc)).not.toBe(pc1);
  });

  test('cont: the tracee runs with the changes; async wait + interrupt from the main thread', async () => {
    sys.ptrace.cont(t.pid);
    await waitForLog(t.log, /pattern=criu-ts-pattern-BBBBBBBBBBBBBBBB word=deadbeefcafef00d mask=8000800 /);
    let timerTicks = 0;
    const timer = setInterval(() => timerTicks++, 5);
    try {
      const pending = sys.waitpidAsync(t.pid); // blocks on a helper thread
      await sleep(60);
      expect(timerTicks).toBeGreaterThan(3); // the event loop kept running meanwhile
      sys.ptrace.interrupt(t.pid); // ptrace itself stays on the main thread
      expect(await pending).toMatchObject({ kind: 'stopped', pid: t.pid, event: PTRACE_EVENT.STOP, signal: SIGTRAP });
    } finally {
      clearInterval(timer);
    }
  });

  test('at a signal-delivery-stop, cont(0) suppresses the signal and cont(sig) delivers it', async () => {
    // (At the event-stop we are in, the signal argument would be ignored by the kernel.)
    sys.ptrace.cont(t.pid);
    sys.kill(t.pid, SIGUSR1);
    expect(await nextStatus(sys, t.pid)).toMatchObject({ kind: 'stopped', signal: SIGUSR1, groupStop: false, syscallStop: false });
    expect(sys.ptrace.getSigInfo(t.pid)).toMatchObject({ signo: SIGUSR1, code: 0 });
    sys.ptrace.cont(t.pid, 0);
    const from = logSize(t.log);
    await logGrows(t.log);
    expect(fs.readFileSync(t.log, 'utf8').slice(from)).toMatch(/usr1=0\n/);
    sys.kill(t.pid, SIGUSR1);
    expect(await nextStatus(sys, t.pid)).toMatchObject({ kind: 'stopped', signal: SIGUSR1 });
    sys.ptrace.cont(t.pid, SIGUSR1);
    await waitForLog(t.log, /usr1=1$/m);
  });

  test('group-stop, PTRACE_LISTEN, and SIGCONT', async () => {
    sys.kill(t.pid, SIGSTOP);
    // First the signal-delivery-stop: the tracer decides whether SIGSTOP is delivered.
    expect(await nextStatus(sys, t.pid)).toMatchObject({ kind: 'stopped', signal: SIGSTOP, groupStop: false });
    sys.ptrace.cont(t.pid, SIGSTOP);
    const group = await nextStatus(sys, t.pid);
    expect(group).toMatchObject({ kind: 'stopped', signal: SIGSTOP, event: PTRACE_EVENT.STOP, groupStop: true });
    sys.ptrace.listen(t.pid);
    expect(sys.waitpid(t.pid, WAIT.__WALL | WAIT.WNOHANG)).toBeNull();
    await logStill(t.log);
    sys.kill(t.pid, SIGCONT);
    // The listening tracee reports the end of the group-stop, then SIGCONT's delivery.
    expect(await nextStatus(sys, t.pid)).toMatchObject({ kind: 'stopped', signal: SIGTRAP, event: PTRACE_EVENT.STOP, groupStop: false });
    sys.ptrace.cont(t.pid);
    expect(await nextStatus(sys, t.pid)).toMatchObject({ kind: 'stopped', signal: SIGCONT, groupStop: false, syscallStop: false });
    sys.ptrace.cont(t.pid, SIGCONT);
    await logGrows(t.log);
  });

  test('detach lets the program continue untraced', async () => {
    sys.ptrace.interrupt(t.pid);
    expect(await nextStatus(sys, t.pid)).toMatchObject({ event: PTRACE_EVENT.STOP });
    const from = logSize(t.log);
    sys.ptrace.detach(t.pid);
    await waitForLog(t.log, /^tick \d+ .*\n(?:.*\n){3}/m, 3000, from); // several more ticks
    const seen = ticks(t.log, from);
    expect(seen.length).toBeGreaterThanOrEqual(4);
    expect(seen.every((n, i) => i === 0 || n === seen[i - 1] + 1)).toBe(true);
    expect(() => sys.ptrace.interrupt(t.pid)).toThrow(expect.objectContaining({ code: 'ESRCH' })); // no longer ours
  });

  test('exit event, signal death, then ESRCH on the dead pid', async () => {
    sys.ptrace.seize(t.pid, PTRACE_O.TRACEEXIT);
    sys.kill(t.pid, SIGTERM);
    expect(await nextStatus(sys, t.pid)).toMatchObject({ kind: 'stopped', signal: SIGTERM });
    sys.ptrace.cont(t.pid, SIGTERM);
    expect(await nextStatus(sys, t.pid)).toMatchObject({ kind: 'stopped', signal: SIGTRAP, event: PTRACE_EVENT.EXIT });
    const msg = sys.ptrace.getEventMsg(t.pid); // the wait status the tracee is exiting with
    expect(decodeWaitStatus(Number(msg), t.pid)).toMatchObject({ kind: 'signaled', signal: SIGTERM, core: false });
    sys.ptrace.cont(t.pid);
    expect(await nextStatus(sys, t.pid)).toEqual({ kind: 'signaled', pid: t.pid, raw: SIGTERM, signal: SIGTERM, core: false });
    expect(() => sys.ptrace.cont(t.pid)).toThrow(expect.objectContaining({ code: 'ESRCH', message: `ptrace(PTRACE_CONT, ${t.pid}): ESRCH (No such process)` }));
    expect(() => sys.readMemory(t.pid, t.pattern, 8)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });

  test('waitpid decodes a normal exit and a SIGKILL death of tracees', async () => {
    const exiting = startDetached([exe, 'exit', '300', '3'], `${dir}/exit.log`);
    started.push(exiting.pid);
    await waitForLog(exiting.log, /^ready/m);
    sys.ptrace.seize(exiting.pid);
    expect(await sys.waitpidAsync(exiting.pid)).toEqual({ kind: 'exited', pid: exiting.pid, raw: 3 << 8, code: 3 });

    const killed = startDetached([exe, 'exit', '60000', '0'], `${dir}/killed.log`);
    started.push(killed.pid);
    await waitForLog(killed.log, /^ready/m);
    sys.ptrace.seize(killed.pid);
    const pending = sys.waitpidAsync(killed.pid);
    sys.kill(killed.pid, SIGKILL);
    expect(await pending).toEqual({ kind: 'signaled', pid: killed.pid, raw: SIGKILL, signal: SIGKILL, core: false });
    expect(SysError.is(new SysError('x', 3), 'ESRCH')).toBe(true);
  });
});
