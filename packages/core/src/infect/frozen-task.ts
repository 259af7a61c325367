/**
 * A task held under ptrace, with its original state saved so it can be put back exactly:
 * registers, signal mask, and the code word we borrow to run injected syscalls. Every
 * ptrace request is made from the calling (main) thread.
 */
import { sys, NT, PTRACE_EVENT, SIGNALS, WAIT, type WaitStatus } from '@criu/sys';
import type { Arch } from '../arch/types.js';
import { readMaps } from '../proc/maps.js';
import { InfectError, RemoteSyscallError } from './errors.js';

const ALL_SIGNALS_BLOCKED = 0xffffffffffffffffn;

export class FrozenTask {
  /** The registers at the moment the task was frozen. */
  savedRegs: Buffer;
  savedSigmask: bigint;
  private codeAddr = 0n;
  /** Whether codeAddr is the task's own code (borrowed per syscall) or memory we own. */
  private codeBorrowed = true;
  private savedCode: bigint | undefined;
  /** Signals that stopped the task while we ran injected code; re-sent on release. */
  private readonly deferredSignals: number[] = [];
  private released = false;

  private constructor(readonly pid: number, readonly arch: Arch, savedRegs: Buffer, savedSigmask: bigint) {
    this.savedRegs = savedRegs;
    this.savedSigmask = savedSigmask;
  }

  /** Seizes and interrupts `pid` and waits until it is stopped. */
  static freeze(pid: number, arch: Arch, ptraceOptions = 0): FrozenTask {
    try {
      sys.ptrace.seize(pid, ptraceOptions);
    } catch (e) {
      throw new InfectError(pid, 'seize', (e as Error).message, { cause: e });
    }
    try {
      sys.ptrace.interrupt(pid);
      waitStop(pid, 'freeze');
      const regs = sys.ptrace.getRegset(pid, NT.PRSTATUS, arch.gpRegsSize);
      const mask = sys.ptrace.getSigMask(pid);
      return new FrozenTask(pid, arch, Buffer.from(regs), mask);
    } catch (e) {
      try { sys.ptrace.detach(pid); } catch { /* it may be gone */ }
      throw e instanceof InfectError ? e : new InfectError(pid, 'freeze', (e as Error).message, { cause: e });
    }
  }

  /**
   * Takes over a task that is already traced by us and stopped (e.g. a child auto-attached by
   * PTRACE_O_TRACEFORK, or a thread at a syscall-exit stop): its current state becomes the saved one.
   */
  static adopt(pid: number, arch: Arch): FrozenTask {
    const regs = sys.ptrace.getRegset(pid, NT.PRSTATUS, arch.gpRegsSize);
    return new FrozenTask(pid, arch, Buffer.from(regs), sys.ptrace.getSigMask(pid));
  }

  /**
   * Runs injected syscalls from `addr`: memory we own that already holds the arch's syscall trap
   * code (`borrowed` = false), or the task's own code, borrowed one syscall at a time.
   */
  useCodeAt(addr: bigint, borrowed: boolean): void {
    this.returnCode();
    this.codeAddr = addr;
    this.codeBorrowed = borrowed;
  }

  /** Replaces the state put back by cure() (after the restorer has rebuilt the task). */
  setSavedState(regs: Buffer, sigmask: bigint): void {
    this.savedRegs = Buffer.from(regs);
    this.savedSigmask = sigmask;
  }

  /** Runs one syscall inside the task and returns its raw result (-errno on failure). */
  rawSyscall(name: string, ...args: Array<bigint | number>): bigint {
    const nr = this.arch.sysno(name);
    // The borrowed code word is put back right after each syscall, so the task's memory (which
    // a dump copies) never holds our instructions.
    this.borrowCode();
    let after: Buffer;
    try {
      const regs = this.arch.syscallRegs(this.savedRegs, this.codeAddr, nr, args.map((a) => BigInt(a)));
      after = this.runUntilTrap(regs, `remote ${name}`);
    } catch (e) {
      try { this.returnCode(); } catch { /* the task may be gone: keep the first error */ }
      throw e;
    }
    this.returnCode();
    return this.arch.syscallResult(after);
  }

  /** Runs one syscall inside the task; a -errno result throws RemoteSyscallError. */
  syscall(name: string, ...args: Array<bigint | number>): bigint {
    const r = this.rawSyscall(name, ...args);
    if (r < 0n && r > -4096n) throw new RemoteSyscallError(this.pid, name, Number(-r));
    return r;
  }

  /**
   * Starts code at `entry` (stack `sp`, one argument) and returns at once: the caller talks to it
   * while it runs, then calls waitCallTrap().
   */
  startCall(entry: bigint, sp: bigint, arg0: bigint): void {
    const regs = this.arch.callRegs(this.savedRegs, entry, sp, arg0);
    sys.ptrace.setRegset(this.pid, NT.PRSTATUS, regs);
    sys.ptrace.setSigMask(this.pid, ALL_SIGNALS_BLOCKED);
    sys.ptrace.cont(this.pid, 0);
  }

  /** Waits for code started with startCall() to trap; returns its return value. */
  waitCallTrap(step: string): bigint {
    const regs = this.waitTrap(step);
    return this.arch.callResult(regs);
  }

  /** Non-blocking: has the task stopped or died (e.g. the parasite crashed)? */
  pollStatus(): WaitStatus | null {
    return sys.waitpid(this.pid, WAIT.WNOHANG | WAIT.__WALL);
  }

  /** Stops a running task again (after startCall) so it can be cured. */
  interruptRunning(): void {
    sys.ptrace.interrupt(this.pid);
    waitStop(this.pid, 'interrupt');
  }

  /** Puts back the code word, the registers and the signal mask. Idempotent. */
  cure(): void {
    this.returnCode();
    sys.ptrace.setRegset(this.pid, NT.PRSTATUS, this.savedRegs);
    sys.ptrace.setSigMask(this.pid, this.savedSigmask);
  }

  /** Cures and detaches: the task runs on exactly as before. */
  release(): void {
    if (this.released) return;
    this.cure();
    sys.ptrace.detach(this.pid, 0);
    for (const sig of this.deferredSignals) sys.kill(this.pid, sig);
    this.released = true;
  }

  /** Detaches and kills the task (a dump without --leave-running). */
  kill(): void {
    if (this.released) return;
    this.released = true;
    sys.kill(this.pid, SIGNALS.SIGKILL);
    // As its tracer we must collect its death, or its real parent can never reap it.
    for (;;) {
      let st: WaitStatus | null;
      try {
        st = sys.waitpid(this.pid, WAIT.__WALL);
      } catch {
        return; // already collected
      }
      if (st && (st.kind === 'exited' || st.kind === 'signaled')) return;
    }
  }

  private borrowCode(): void {
    if (this.savedCode !== undefined || !this.codeBorrowed) return;
    if (this.codeAddr === 0n) {
      const exec = readMaps(this.pid).find((m) => m.perms[2] === 'x' && m.name !== '[vsyscall]');
      if (!exec) throw new InfectError(this.pid, 'find code area', 'no executable mapping to borrow');
      this.codeAddr = exec.start;
    }
    const exec = { start: this.codeAddr };
    this.savedCode = sys.ptrace.peekData(this.pid, exec.start);
    const code = this.arch.syscallTrapCode;
    const word = this.arch.littleEndian ? code.readBigUInt64LE(0) : code.readBigUInt64BE(0);
    sys.ptrace.pokeData(this.pid, exec.start, word);
  }

  private returnCode(): void {
    if (this.savedCode === undefined) return;
    const word = this.savedCode;
    this.savedCode = undefined;
    sys.ptrace.pokeData(this.pid, this.codeAddr, word);
  }

  /** Runs the task with `regs` until its next trap and returns the registers there. */
  runUntilTrap(regs: Buffer, step: string): Buffer {
    sys.ptrace.setRegset(this.pid, NT.PRSTATUS, regs);
    sys.ptrace.setSigMask(this.pid, ALL_SIGNALS_BLOCKED);
    sys.ptrace.cont(this.pid, 0);
    return this.waitTrap(step);
  }

  private waitTrap(step: string): Buffer {
    for (;;) {
      const st = sys.waitpid(this.pid, WAIT.__WALL);
      if (!st) continue;
      if (st.kind === 'exited' || st.kind === 'signaled') {
        this.released = true;
        throw new InfectError(this.pid, step, `the task died (${describe(st)})`);
      }
      if (st.kind !== 'stopped') continue;
      if (st.signal === SIGNALS.SIGTRAP && st.event === undefined) {
        return Buffer.from(sys.ptrace.getRegset(this.pid, NT.PRSTATUS, this.arch.gpRegsSize));
      }
      if (st.event !== undefined) {
        // A group-stop or other event while our code runs: let the code go on.
        sys.ptrace.cont(this.pid, 0);
        continue;
      }
      if (st.signal === SIGNALS.SIGSEGV || st.signal === SIGNALS.SIGBUS || st.signal === SIGNALS.SIGILL || st.signal === SIGNALS.SIGFPE) {
        throw new InfectError(this.pid, step, `injected code faulted with signal ${st.signal} at ip 0x${this.currentIp().toString(16)}`);
      }
      // Blocked signals are not delivered, so this is SIGSTOP or the like: keep it for later.
      this.deferredSignals.push(st.signal);
      sys.ptrace.cont(this.pid, 0);
    }
  }

  private currentIp(): bigint {
    try { return this.arch.ip(sys.ptrace.getRegset(this.pid, NT.PRSTATUS, this.arch.gpRegsSize)); } catch { return 0n; }
  }
}

function describe(st: WaitStatus): string {
  return st.kind === 'exited' ? `exit code ${st.code}` : st.kind === 'signaled' ? `signal ${st.signal}` : st.kind;
}

/** Waits for the PTRACE_EVENT_STOP that follows an interrupt (forwarding no signal). */
function waitStop(pid: number, step: string): void {
  for (;;) {
    const st = sys.waitpid(pid, WAIT.__WALL);
    if (!st) continue;
    if (st.kind === 'exited' || st.kind === 'signaled') throw new InfectError(pid, step, `the task died (${describe(st)})`);
    if (st.kind === 'stopped' && st.event === PTRACE_EVENT.STOP) return;
    if (st.kind === 'stopped') {
      // A signal arrived before the interrupt took effect: deliver it and wait again.
      sys.ptrace.cont(pid, st.signal);
    }
  }
}
