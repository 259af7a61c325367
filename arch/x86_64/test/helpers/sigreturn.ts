/**
 * Test-side restorer: makes a frozen task set the registers a sigframe cannot carry (arch_prctl
 * steps), then run rt_sigreturn on a frame written into its memory, and lets it go.
 * FrozenTask.syscall expects a trap after the syscall and rebuilds registers from the ones saved
 * at freeze time; rt_sigreturn never comes back, and fs_base must survive from one step to the
 * next, so this drives the syscalls with PTRACE_SYSCALL and detaches at rt_sigreturn's entry stop.
 */
import { sys, NT, PTRACE_O, WAIT } from '@criu/sys';
import type { FrozenTask } from '../../../../packages/core/src/infect/frozen-task';
import { readMaps } from '../../../../packages/core/src/proc/maps';
import type { ArchPrctlStep } from '../../src/sigframe';
import { setReg, getReg } from '../../src/regs';

const NR_RT_SIGRETURN = 15n;
const NR_ARCH_PRCTL = 158n;
/** `syscall` followed by int3 padding: one word for PTRACE_POKEDATA. */
const SYSCALL_WORD = Buffer.from([0x0f, 0x05, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc]).readBigUInt64LE(0);

export interface SigreturnOptions {
  /** fs_base the thread has before the restore steps (a fresh thread's, say); default: unchanged. */
  initialFsBase?: bigint;
  /** arch_prctl calls to make before rt_sigreturn (stateOutsideSigframe(ti).archPrctl). */
  archPrctl?: ArchPrctlStep[];
}

function waitSyscallStop(pid: number, step: string): Buffer {
  for (;;) {
    const st = sys.waitpid(pid, WAIT.__WALL);
    if (!st) continue;
    if (st.kind !== 'stopped') throw new Error(`task ${pid} ${st.kind} during ${step}`);
    if (st.syscallStop) return sys.ptrace.getRegset(pid, NT.PRSTATUS, 27 * 8);
    sys.ptrace.syscall(pid, 0); // an event stop: go on
  }
}

export function sigreturnInto(task: FrozenTask, frame: Buffer, frameAddr: bigint, rsp: bigint, opts: SigreturnOptions = {}): void {
  const pid = task.pid;
  task.cure(); // put back anything FrozenTask borrowed (code word, regs, mask)
  const written = sys.writeMemory(pid, frameAddr, frame);
  if (written !== frame.length) throw new Error(`wrote ${written} of ${frame.length} frame bytes`);
  const exec = readMaps(pid).find((m) => m.perms[2] === 'x' && m.name !== '[vsyscall]');
  if (!exec) throw new Error('no executable mapping');
  const savedWord = sys.ptrace.peekData(pid, exec.start);
  sys.ptrace.pokeData(pid, exec.start, SYSCALL_WORD);
  sys.ptrace.setOptions(pid, PTRACE_O.TRACESYSGOOD);
  let regs = Buffer.from(task.savedRegs);
  if (opts.initialFsBase !== undefined) setReg(regs, 'fs_base', opts.initialFsBase);

  const enter = (nr: bigint, args: bigint[], step: string): Buffer => {
    setReg(regs, 'rip', exec.start);
    setReg(regs, 'rax', nr);
    setReg(regs, 'orig_rax', -1n);
    (['rdi', 'rsi', 'rdx'] as const).forEach((r, i) => { if (args[i] !== undefined) setReg(regs, r, args[i]); });
    sys.ptrace.setRegset(pid, NT.PRSTATUS, regs);
    sys.ptrace.syscall(pid, 0);
    const at = waitSyscallStop(pid, `${step} entry`);
    if (getReg(at, 'orig_rax') !== nr) throw new Error(`stopped in syscall ${getReg(at, 'orig_rax')}, not ${step}`);
    return at;
  };

  for (const s of opts.archPrctl ?? []) {
    enter(NR_ARCH_PRCTL, [BigInt(s.code), s.value], s.name);
    sys.ptrace.syscall(pid, 0);
    regs = Buffer.from(waitSyscallStop(pid, `${s.name} exit`)); // fs_base/gs_base as the syscall left them
    const ret = BigInt.asIntN(64, getReg(regs, 'rax'));
    if (ret !== 0n) throw new Error(`arch_prctl(${s.name}) failed: ${ret}`);
  }

  setReg(regs, 'rsp', rsp);
  enter(NR_RT_SIGRETURN, [], 'rt_sigreturn');
  // The syscall instruction has been executed: the code word can go back before rt_sigreturn runs.
  sys.ptrace.pokeData(pid, exec.start, savedWord);
  sys.ptrace.detach(pid, 0);
}
