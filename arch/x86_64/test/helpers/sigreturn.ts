/**
 * Test-side rt_sigreturn injection: makes a frozen task run rt_sigreturn on a frame written into
 * its memory, then lets it go. (FrozenTask.syscall expects a trap after the syscall; rt_sigreturn
 * never comes back to the injected code, so the task is detached at the syscall-entry stop.)
 */
import { sys, NT, PTRACE_O, WAIT } from '@criu/sys';
import type { FrozenTask } from '../../../../packages/core/src/infect/frozen-task';
import { readMaps } from '../../../../packages/core/src/proc/maps';
import { setReg, getReg } from '../../src/regs';

const NR_RT_SIGRETURN = 15;
/** `syscall` followed by int3 padding: one word for PTRACE_POKEDATA. */
const SYSCALL_WORD = Buffer.from([0x0f, 0x05, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc]).readBigUInt64LE(0);

export function sigreturnInto(task: FrozenTask, frame: Buffer, frameAddr: bigint, rsp: bigint): void {
  const pid = task.pid;
  task.cure(); // put back anything FrozenTask borrowed (code word, regs, mask)
  const written = sys.writeMemory(pid, frameAddr, frame);
  if (written !== frame.length) throw new Error(`wrote ${written} of ${frame.length} frame bytes`);
  const exec = readMaps(pid).find((m) => m.perms[2] === 'x' && m.name !== '[vsyscall]');
  if (!exec) throw new Error('no executable mapping');
  const savedWord = sys.ptrace.peekData(pid, exec.start);
  sys.ptrace.pokeData(pid, exec.start, SYSCALL_WORD);
  const regs = Buffer.from(task.savedRegs);
  setReg(regs, 'rip', exec.start);
  setReg(regs, 'rax', BigInt(NR_RT_SIGRETURN));
  setReg(regs, 'orig_rax', -1n);
  setReg(regs, 'rsp', rsp);
  sys.ptrace.setRegset(pid, NT.PRSTATUS, regs);
  sys.ptrace.setOptions(pid, PTRACE_O.TRACESYSGOOD);
  sys.ptrace.syscall(pid, 0);
  for (;;) {
    const st = sys.waitpid(pid, WAIT.__WALL);
    if (!st) continue;
    if (st.kind !== 'stopped') throw new Error(`task ${pid} ${st.kind} before rt_sigreturn`);
    if (st.syscallStop) break;
    sys.ptrace.syscall(pid, 0); // an event stop: go on
  }
  const at = sys.ptrace.getRegset(pid, NT.PRSTATUS, regs.length);
  if (getReg(at, 'orig_rax') !== BigInt(NR_RT_SIGRETURN)) throw new Error(`stopped in syscall ${getReg(at, 'orig_rax')}, not rt_sigreturn`);
  // The syscall instruction has been executed: the code word can go back before the syscall runs.
  sys.ptrace.pokeData(pid, exec.start, savedWord);
  sys.ptrace.detach(pid, 0);
}
