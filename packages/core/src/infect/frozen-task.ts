/**
 * A task held under ptrace, with its original state saved so it can be put back exactly:
 * registers, signal mask, and the code word we borrow to run injected syscalls. Every
 * ptrace request is made from the calling (main) thread.
 *
 * Surviving the dumper's death: a frozen task (freeze()) is "parked" whenever we are not running
 * code in it: its own registers, signal mask and code word are back in place and it sits in a
 * PTRACE_EVENT_STOP (not in the SIGTRAP signal-delivery-stop that ends an injected syscall).
 * If the tracer dies then, the kernel detaches the task and it runs on exactly as before; had it
 * been left in the SIGTRAP stop, the detach would deliver that SIGTRAP and kill it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { sys, NT, PTRACE_EVENT, SIGNALS, WAIT, type WaitStatus } from '@criu/sys';
import type { Arch } from '../arch/types.js';
import { readMaps } from '../proc/maps.js';
import { InfectError, RemoteSyscallError } from './errors.js';

const ALL_SIGNALS_BLOCKED = 0xffffffffffffffffn;
/** sa_flags: the handler takes siginfo and ucontext (the same value on x86_64 and ppc64). */
const SA_SIGINFO = 4;

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
  /**
   * Which stop the task is in: a PTRACE_EVENT_STOP ('event', harmless if we die) or a
   * signal-delivery-stop ('signal': the trap of injected code, a fault, a stray signal).
   */
  private stopKind: 'event' | 'signal' = 'event';
  /** Pending signals (private and shared) when the task was frozen. */
  pendingAtFreeze = 0n;
  /** The signal that stopped the task, when it was in a group-stop (stopped) when frozen. */
  groupStopSignal: number | undefined;
  /** Whether we let the task run (startCall) and have not collected its stop yet. */
  private running = false;

  private constructor(readonly pid: number, readonly arch: Arch, savedRegs: Buffer, savedSigmask: bigint, private readonly parkWhenIdle: boolean) {
    this.savedRegs = savedRegs;
    this.savedSigmask = savedSigmask;
  }

  /** Seizes and interrupts `pid` and waits until it is stopped. */
  static freeze(pid: number, arch: Arch, ptraceOptions = 0): FrozenTask {
    try {
      sys.ptrace.seize(pid, ptraceOptions);
    } catch (e) {
      throw seizeError(pid, e);
    }
    try {
      sys.ptrace.interrupt(pid);
      const stop = waitStop(pid, 'freeze');
      const regs = sys.ptrace.getRegset(pid, NT.PRSTATUS, arch.gpRegsSize);
      const mask = sys.ptrace.getSigMask(pid);
      const task = new FrozenTask(pid, arch, Buffer.from(regs), mask, true);
      task.pendingAtFreeze = pendingOf(pid);
      if (stop.kind === 'stopped' && stop.groupStop) task.groupStopSignal = stop.signal;
      return task;
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
    // Not parked: such a task is ours to build (a restore), not a user's task to protect.
    return new FrozenTask(pid, arch, Buffer.from(regs), sys.ptrace.getSigMask(pid), false);
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
    this.settle();
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
    this.running = true;
  }

  /** Waits for code started with startCall() to trap; returns its return value. */
  waitCallTrap(step: string): bigint {
    const regs = this.waitTrap(step);
    this.settle();
    return this.arch.callResult(regs);
  }

  /**
   * The next wait status of the running task. Once `wait.deadline` has passed it is interrupted
   * wherever it is (`wait.interrupted` turns true) and waited for without a limit.
   */
  private waitOrInterrupt(wait: { deadline: number; interrupted: boolean }): WaitStatus {
    for (;;) {
      const st = sys.waitpid(this.pid, wait.interrupted ? WAIT.__WALL : WAIT.WNOHANG | WAIT.__WALL);
      if (st) return st;
      if (wait.interrupted) continue;
      if (Date.now() >= wait.deadline) {
        sys.ptrace.interrupt(this.pid);
        wait.interrupted = true;
      } else {
        sleepMs(1);
      }
    }
  }

  /**
   * After startCall(): gives the code `graceMs` to stop by itself (its trap, a fault), then
   * interrupts it wherever it is. Returns the registers where it stopped (not yet cured). Never
   * delivers a signal: one that stopped the task meanwhile is kept for release().
   */
  haltCall(step: string, graceMs: number): Buffer {
    if (!this.running) return Buffer.from(sys.ptrace.getRegset(this.pid, NT.PRSTATUS, this.arch.gpRegsSize));
    const wait = { deadline: Date.now() + graceMs, interrupted: false };
    for (;;) {
      const st = this.waitOrInterrupt(wait);
      if (st.kind === 'exited' || st.kind === 'signaled') {
        this.released = true;
        this.running = false;
        throw new InfectError(this.pid, step, `the task died (${describe(st)})`);
      }
      if (st.kind !== 'stopped') continue;
      this.running = false;
      if (st.event === PTRACE_EVENT.STOP) {
        this.stopKind = 'event';
      } else if (st.event !== undefined) {
        sys.ptrace.cont(this.pid, 0); // some other event: not a place to stop at
        continue;
      } else {
        this.stopKind = 'signal';
        if (!isTrapOrFault(st.signal)) this.deferredSignals.push(st.signal);
      }
      return Buffer.from(sys.ptrace.getRegset(this.pid, NT.PRSTATUS, this.arch.gpRegsSize));
    }
  }

  /**
   * Makes the task's current state its saved one: after injected code handed control back to the
   * task's own code by itself (the parasite's rt_sigreturn), putting back the state of the freeze
   * would rewind a task that has run on since.
   */
  adoptCurrentState(): void {
    this.savedCode = undefined;
    this.savedRegs = Buffer.from(sys.ptrace.getRegset(this.pid, NT.PRSTATUS, this.arch.gpRegsSize));
    this.savedSigmask = sys.ptrace.getSigMask(this.pid);
  }

  /** Non-blocking: has the task stopped or died (e.g. the parasite crashed)? */
  pollStatus(): WaitStatus | null {
    return sys.waitpid(this.pid, WAIT.WNOHANG | WAIT.__WALL);
  }

  /** Stops a running task again (after startCall) so it can be cured. */
  interruptRunning(): void {
    this.haltCall('interrupt', 0);
  }

  /** Puts back the code word, the registers and the signal mask (and parks the task). Idempotent. */
  cure(): void {
    this.returnCode();
    sys.ptrace.setRegset(this.pid, NT.PRSTATUS, this.savedRegs);
    sys.ptrace.setSigMask(this.pid, this.savedSigmask);
    if (this.parkWhenIdle) this.park();
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

  /** After injected code trapped: the task's own state back, and parked (see the class comment). */
  private settle(): void {
    if (!this.parkWhenIdle) return;
    sys.ptrace.setRegset(this.pid, NT.PRSTATUS, this.savedRegs);
    sys.ptrace.setSigMask(this.pid, this.savedSigmask);
    this.park();
  }

  /**
   * Moves the task from a signal-delivery-stop to a PTRACE_EVENT_STOP without running any of its
   * code: PTRACE_INTERRUPT queues the trap, PTRACE_CONT with no signal drops the pending SIGTRAP,
   * and the kernel traps again at once, before leaving get_signal().
   */
  private park(): void {
    if (this.stopKind === 'event') return;
    sys.ptrace.interrupt(this.pid);
    sys.ptrace.cont(this.pid, 0);
    for (;;) {
      const st = sys.waitpid(this.pid, WAIT.__WALL);
      if (!st) continue;
      if (st.kind === 'exited' || st.kind === 'signaled') {
        this.released = true;
        throw new InfectError(this.pid, 'park', `the task died (${describe(st)})`);
      }
      if (st.kind !== 'stopped') continue;
      if (st.event === PTRACE_EVENT.STOP) break;
      if (st.event === undefined && !isTrapOrFault(st.signal)) this.deferredSignals.push(st.signal);
      sys.ptrace.cont(this.pid, 0);
    }
    this.stopKind = 'event';
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

  /**
   * Moves the task on while `inside(ip)` holds, with every signal blocked so none is delivered on
   * the way; where it stops becomes its saved state. With `exits` (addresses through which code
   * can leave the range, and the arch's breakpoint) the task runs at full speed to the next exit
   * and is single-stepped over it; otherwise it is single-stepped throughout. At most `maxSteps`
   * single steps and `maxRuns` runs. Returns how many of each it took.
   */
  stepWhile(inside: (ip: bigint) => boolean, maxSteps: number, exits?: { addrs: bigint[]; breakpoint: Buffer; maxRuns: number; runMs: number }): { steps: number; runs: number } {
    let regs = this.savedRegs;
    let steps = 0, runs = 0;
    if (!inside(this.arch.ip(regs))) return { steps, runs };
    this.returnCode();
    sys.ptrace.setRegset(this.pid, NT.PRSTATUS, regs);
    sys.ptrace.setSigMask(this.pid, ALL_SIGNALS_BLOCKED);
    const blocked = sys.ptrace.getSigMask(this.pid); // less SIGKILL and SIGSTOP, which never are
    const exitSet = new Set(exits?.addrs ?? []);
    while (steps < maxSteps && inside(this.arch.ip(regs))) {
      if (exits && runs < exits.maxRuns && !exitSet.has(this.arch.ip(regs))) {
        runs++;
        regs = this.runToBreakpoints(exits.addrs, exits.breakpoint, exits.runMs);
        continue;
      }
      sys.ptrace.singlestep(this.pid, 0);
      this.stopKind = 'signal';
      for (;;) {
        const st = sys.waitpid(this.pid, WAIT.__WALL);
        if (!st) continue;
        if (st.kind === 'exited' || st.kind === 'signaled') {
          this.released = true;
          throw new InfectError(this.pid, 'step out', `the task died (${describe(st)})`);
        }
        if (st.kind !== 'stopped') continue;
        if (st.signal === SIGNALS.SIGTRAP && st.event === undefined) break;
        if (st.event === undefined && isTrapOrFault(st.signal)) {
          throw new InfectError(this.pid, 'step out', `signal ${st.signal} while stepping at ip 0x${this.currentIp().toString(16)}`);
        }
        // A group-stop or event, or SIGSTOP-like: keep the latter, and step on.
        if (st.event === undefined) this.deferredSignals.push(st.signal);
        sys.ptrace.singlestep(this.pid, 0);
      }
      steps++;
      regs = Buffer.from(sys.ptrace.getRegset(this.pid, NT.PRSTATUS, this.arch.gpRegsSize));
    }
    this.savedRegs = regs;
    // Only an rt_sigreturn (a signal trampoline) changes the mask on the way: it sets the one the
    // thread returns to, which is then its own.
    // (Each trap of a step or breakpoint is forced: the kernel unblocks SIGTRAP for it.)
    const trap = 1n << BigInt(SIGNALS.SIGTRAP - 1);
    const mask = sys.ptrace.getSigMask(this.pid);
    if ((mask | trap) !== (blocked | trap)) this.savedSigmask = mask;
    sys.ptrace.setSigMask(this.pid, this.savedSigmask);
    if (this.parkWhenIdle) this.park();
    return { steps, runs };
  }

  /**
   * Puts `breakpoint` on each of `addrs`, lets the task run until it traps on one (or `runMs` have
   * passed: then it is interrupted wherever it is), and puts the code back. Returns the registers
   * where it stopped.
   */
  private runToBreakpoints(addrs: bigint[], breakpoint: Buffer, runMs: number): Buffer {
    // Patched per aligned 8-byte word, as PTRACE_POKEDATA writes them; the originals go back in any case.
    const original = new Map<bigint, bigint>();
    for (const a of addrs) {
      const w = a & ~7n;
      if (!original.has(w)) original.set(w, sys.ptrace.peekData(this.pid, w));
    }
    const patched = new Map<bigint, Buffer>();
    for (const a of addrs) {
      const w = a & ~7n;
      let b = patched.get(w);
      if (!b) {
        b = Buffer.alloc(8);
        if (this.arch.littleEndian) b.writeBigUInt64LE(original.get(w)!); else b.writeBigUInt64BE(original.get(w)!);
        patched.set(w, b);
      }
      breakpoint.copy(b, Number(a - w));
    }
    const word = (b: Buffer) => (this.arch.littleEndian ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0));
    try {
      for (const [w, b] of patched) sys.ptrace.pokeData(this.pid, w, word(b));
      const stop = new Set(addrs);
      sys.ptrace.cont(this.pid, 0);
      const wait = { deadline: Date.now() + runMs, interrupted: false };
      for (;;) {
        const st = this.waitOrInterrupt(wait);
        if (st.kind === 'exited' || st.kind === 'signaled') {
          this.released = true;
          throw new InfectError(this.pid, 'run out', `the task died (${describe(st)})`);
        }
        if (st.kind !== 'stopped') continue;
        if (st.event === PTRACE_EVENT.STOP && wait.interrupted) {
          this.stopKind = 'event';
          break;
        }
        if (st.event !== undefined) {
          sys.ptrace.cont(this.pid, 0);
          continue;
        }
        this.stopKind = 'signal';
        if (st.signal === SIGNALS.SIGTRAP && stop.has(this.currentIp())) break;
        if (isTrapOrFault(st.signal)) {
          throw new InfectError(this.pid, 'run out', `signal ${st.signal} while running at ip 0x${this.currentIp().toString(16)}`);
        }
        this.deferredSignals.push(st.signal);
        sys.ptrace.cont(this.pid, 0);
      }
    } finally {
      for (const [w, v] of original) {
        try { sys.ptrace.pokeData(this.pid, w, v); } catch { /* the task is gone */ }
      }
    }
    return Buffer.from(sys.ptrace.getRegset(this.pid, NT.PRSTATUS, this.arch.gpRegsSize));
  }

  /**
   * Has the kernel deliver a signal to this thread, to a handler at `handlerOffset` into the
   * syscall trap code (an instruction that traps on itself), and returns what `read` makes of the
   * registers at the handler's entry, called while the frame is there (Arch.signalFrameProbe).
   * The frame goes on the thread's own stack, well below its red zone; those bytes, the signal's
   * disposition, the registers, the `preserve` register sets and the mask are all put back. Undefined when every real-time
   * signal is pending already or the stack has no room to spare.
   */
  probeSignalFrame<T>(handlerOffset: number, preserve: ReadonlyArray<{ note: number; size: number }>, read: (regsAtHandler: Buffer) => T): T | undefined {
    const pending = this.pendingAtFreeze | pendingOf(this.pid);
    let sig = 0;
    for (let s = 64; s >= 35 && !sig; s--) if (!(pending & (1n << BigInt(s - 1)))) sig = s;
    if (!sig) return undefined;
    // [sp - 16 KiB, sp): the sigaction structs 1 KiB below sp (past any red zone), the kernel's
    // frame (a few KiB) below them.
    const sp = this.arch.sp(this.savedRegs);
    const area = (sp - 16384n) & ~15n;
    let saved: Buffer;
    try { saved = sys.readMemory(this.pid, area, Number(sp - area)); } catch { return undefined; }
    const act = (sp - 1024n) & ~15n, old = act + 64n;
    const sa = Buffer.alloc(32); // struct sigaction as the kernel takes it: handler, flags, restorer, mask
    let installed = false;
    // Register sets the kernel changes for a signal handler (ppc64: FPSCR is cleared).
    const kept = preserve.map((r) => ({ ...r, bytes: Buffer.from(sys.ptrace.getRegset(this.pid, r.note, r.size)) }));
    try {
      this.borrowCode();
      const entry = this.codeAddr + BigInt(handlerOffset);
      sa.writeBigUInt64LE(entry, 0);
      sa.writeBigUInt64LE(BigInt(SA_SIGINFO), 8);
      sa.writeBigUInt64LE(ALL_SIGNALS_BLOCKED, 24);
      sys.writeMemory(this.pid, act, sa);
      this.syscall('rt_sigaction', sig, act, old, 8);
      installed = true;
      // As the task's pid namespace numbers them; pending, as every signal is blocked while we run syscalls.
      this.syscall('tgkill', this.syscall('getpid'), this.syscall('gettid'), sig);
      this.borrowCode();
      sys.ptrace.setRegset(this.pid, NT.PRSTATUS, this.arch.callRegs(this.savedRegs, entry, act, 0n));
      sys.ptrace.setSigMask(this.pid, ALL_SIGNALS_BLOCKED & ~(1n << BigInt(sig - 1)));
      sys.ptrace.cont(this.pid, 0);
      let delivered = false;
      for (;;) {
        const st = sys.waitpid(this.pid, WAIT.__WALL);
        if (!st) continue;
        if (st.kind === 'exited' || st.kind === 'signaled') {
          this.released = true;
          throw new InfectError(this.pid, 'signal frame', `the task died (${describe(st)})`);
        }
        if (st.kind !== 'stopped') continue;
        this.stopKind = st.event === undefined ? 'signal' : 'event';
        if (st.event !== undefined) { sys.ptrace.cont(this.pid, 0); continue; }
        if (st.signal === sig && !delivered) { delivered = true; sys.ptrace.cont(this.pid, sig); continue; }
        if (st.signal === SIGNALS.SIGTRAP && delivered && this.currentIp() === entry) break;
        if (isTrapOrFault(st.signal)) throw new InfectError(this.pid, 'signal frame', `signal ${st.signal} at ip 0x${this.currentIp().toString(16)}${delivered ? '' : ' before the probe signal came'}`);
        this.deferredSignals.push(st.signal);
        sys.ptrace.cont(this.pid, 0);
      }
      return read(Buffer.from(sys.ptrace.getRegset(this.pid, NT.PRSTATUS, this.arch.gpRegsSize)));
    } finally {
      if (!this.released) {
        if (installed) this.syscall('rt_sigaction', sig, old, 0, 8);
        this.returnCode();
        sys.writeMemory(this.pid, area, saved);
        for (const r of kept) sys.ptrace.setRegset(this.pid, r.note, r.bytes);
        this.cure();
      }
    }
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
        this.running = false;
        throw new InfectError(this.pid, step, `the task died (${describe(st)})`);
      }
      if (st.kind !== 'stopped') continue;
      if (st.signal === SIGNALS.SIGTRAP && st.event === undefined) {
        this.running = false;
        this.stopKind = 'signal';
        return Buffer.from(sys.ptrace.getRegset(this.pid, NT.PRSTATUS, this.arch.gpRegsSize));
      }
      if (st.event !== undefined) {
        // A group-stop or other event while our code runs: let the code go on.
        sys.ptrace.cont(this.pid, 0);
        continue;
      }
      if (isTrapOrFault(st.signal)) {
        this.running = false;
        this.stopKind = 'signal';
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

function isTrapOrFault(sig: number): boolean {
  return sig === SIGNALS.SIGTRAP || sig === SIGNALS.SIGSEGV || sig === SIGNALS.SIGBUS || sig === SIGNALS.SIGILL || sig === SIGNALS.SIGFPE;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function pendingOf(pid: number): bigint {
  try {
    const st = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
    const get = (k: string) => BigInt('0x' + (new RegExp(`^${k}:\\s+([0-9a-f]+)`, 'm').exec(st)?.[1] ?? '0'));
    return get('SigPnd') | get('ShdPnd');
  } catch {
    return 0n;
  }
}

/** TracerPid of `pid` from /proc, or 0. */
export function tracerOf(pid: number): number {
  try {
    const m = /^TracerPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

const CAP_SYS_PTRACE = 19;

function statusIds(text: string, key: string): number[] {
  const m = new RegExp(`^${key}:\\s+(.*)$`, 'm').exec(text);
  return m ? m[1].trim().split(/\s+/).map(Number) : [];
}

/**
 * Whether this process may trace `pid` (as the kernel's ptrace access check decides), and if not,
 * why and what to do: a dump needs it for /proc/PID/fd, PTRACE_SEIZE and the parasite. Call it
 * before touching the task, to refuse with a clear message instead of an EACCES halfway.
 * Returns undefined when access looks allowed (the kernel has the last word).
 */
export function ptraceAccessProblem(pid: number): { reason: string; hint: string } | undefined {
  let target: string;
  let self: string;
  try {
    target = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
    self = fs.readFileSync('/proc/self/status', 'latin1');
  } catch {
    return undefined; // a missing task is reported elsewhere
  }
  const capEff = BigInt('0x' + (/^CapEff:\s+([0-9a-f]+)/m.exec(self)?.[1] ?? '0'));
  const has = (cap: number) => (capEff & (1n << BigInt(cap))) !== 0n;
  if (has(CAP_SYS_PTRACE)) return undefined;
  const uid = process.getuid?.() ?? 0, gid = process.getgid?.() ?? 0;
  const [tUids, tGids] = [statusIds(target, 'Uid').slice(0, 3), statusIds(target, 'Gid').slice(0, 3)];
  if (!tUids.every((u) => u === uid) || !tGids.every((g) => g === gid)) {
    return {
      reason: `not allowed to trace it: it runs as uid ${tUids.join('/')} gid ${tGids.join('/')}, this process as uid ${uid} gid ${gid}`,
      hint: 'a non-root caller can dump only its own processes; dump as root (or with CAP_SYS_PTRACE)',
    };
  }
  let scope = 0;
  try { scope = Number(fs.readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'latin1')); } catch { /* no Yama */ }
  if (scope >= 2) return { reason: `not allowed to trace it: kernel.yama.ptrace_scope is ${scope}`, hint: 'dump as root (or with CAP_SYS_PTRACE)' };
  if (scope === 1) {
    let p = pid;
    for (let i = 0; i < 4096 && p > 1 && p !== process.pid; i++) {
      try { p = Number(/^PPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${p}/status`, 'latin1'))?.[1] ?? 0); } catch { p = 0; }
    }
    if (p !== process.pid) return { reason: 'not allowed to trace it: kernel.yama.ptrace_scope is 1 and it is not a descendant of this process', hint: 'dump as root, with CAP_SYS_PTRACE, or set kernel.yama.ptrace_scope=0' };
  }
  return undefined;
}

const CAP_SYS_ADMIN = 21;
const CAP_CHECKPOINT_RESTORE = 40;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** The calling thread's effective capabilities (capget: what the kernel checks, not /proc). */
export function callerCapEff(): bigint {
  const le = os.endianness() === 'LE'; // the kernel's own byte order
  const hdr = Buffer.alloc(8);
  const data = Buffer.alloc(24); // two {effective, permitted, inheritable} words
  if (le) hdr.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0); else hdr.writeUInt32BE(LINUX_CAPABILITY_VERSION_3, 0);
  sys.syscall('capget', hdr, data);
  const word = (off: number) => BigInt(le ? data.readUInt32LE(off) : data.readUInt32BE(off));
  return word(0) | (word(12) << 32n);
}

/**
 * Whether this process may read what a dump needs beyond ptrace: /proc/PID/map_files (every file
 * mapping, i.e. every task) opens only to CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN. Without either,
 * refuse before touching the task rather than fail at the vmas step.
 */
export function checkpointCapProblem(): { reason: string; hint: string } | undefined {
  const eff = callerCapEff();
  if (eff & (1n << BigInt(CAP_CHECKPOINT_RESTORE)) || eff & (1n << BigInt(CAP_SYS_ADMIN))) return undefined;
  return {
    reason: `this process (uid ${process.getuid?.() ?? '?'}) lacks CAP_CHECKPOINT_RESTORE and CAP_SYS_ADMIN, without which the kernel hides /proc/PID/map_files (the files a task maps)`,
    hint: 'dump as root, or grant CAP_CHECKPOINT_RESTORE (e.g. setcap cap_checkpoint_restore+eip on node, or an ambient capability); a non-root caller with it can dump its own processes',
  };
}

/** PTRACE_SEIZE failed: say why in terms of what the caller can do about it. */
function seizeError(pid: number, e: unknown): InfectError {
  const errno = (e as { errno?: number }).errno;
  const base = (e as Error).message;
  if (errno === 3 /* ESRCH */) return new InfectError(pid, 'seize', `no such process (${base})`, { cause: e, hint: 'check the PID' });
  if (errno === 1 /* EPERM */) {
    const tracer = tracerOf(pid);
    if (tracer !== 0) {
      return new InfectError(pid, 'seize', `the task is being dumped or traced by process ${tracer}${tracer === process.pid ? ' (this process)' : ''}`, { cause: e, hint: 'wait for the other dump (or debugger) to finish' });
    }
    const why = ptraceAccessProblem(pid);
    return new InfectError(pid, 'seize', why?.reason ?? `not allowed to trace it (${base})`, {
      cause: e,
      hint: why?.hint ?? 'a non-root caller can dump only its own processes (not set-id or otherwise undumpable ones); root or CAP_SYS_PTRACE can dump any',
    });
  }
  return new InfectError(pid, 'seize', base, { cause: e });
}

function describe(st: WaitStatus): string {
  return st.kind === 'exited' ? `exit code ${st.code}` : st.kind === 'signaled' ? `signal ${st.signal}` : st.kind;
}

/** Waits for the PTRACE_EVENT_STOP that follows an interrupt (forwarding no signal). */
function waitStop(pid: number, step: string): WaitStatus {
  for (;;) {
    const st = sys.waitpid(pid, WAIT.__WALL);
    if (!st) continue;
    if (st.kind === 'exited' || st.kind === 'signaled') throw new InfectError(pid, step, `the task died (${describe(st)})`);
    if (st.kind === 'stopped' && st.event === PTRACE_EVENT.STOP) return st;
    if (st.kind === 'stopped') {
      // A signal arrived before the interrupt took effect: deliver it and wait again.
      sys.ptrace.cont(pid, st.signal);
    }
  }
}
