/**
 * The per-task records of core-PID.img other than registers: task_core_entry (state, comm,
 * sigactions, itimers, rlimits, shared pending signals ...) and thread_core_entry (creds,
 * robust list, rseq, sigaltstack, private pending signals, scheduling). Read from /proc, ptrace
 * and the parasite's report while the task is frozen.
 */
import * as fs from 'node:fs';
import { sys } from '@criu/sys';
import type { ParasiteTaskState } from '../infect/protocol.js';
import { parseStat, type ProcStat } from '../proc/stat.js';
import type { ProcStatus } from '../proc/status.js';
import type { Msg } from './model.js';

export const TASK_ALIVE = 1;
/** What CRIU writes for a zombie (compel's TASK_DEAD; its TASK_ZOMBIE, 6, never reaches an image). */
export const TASK_DEAD = 2;
export const TASK_STOPPED = 3;
const RLIMIT_NLIMITS = 16;
const SIGKILL = 9, SIGSTOP = 19;

function readNumberFile(path: string, fallback: number): number {
  try {
    return Number(fs.readFileSync(path, 'latin1').trim());
  } catch {
    return fallback;
  }
}

/**
 * tc.personality as CRIU writes it: CRIU reads /proc/PID/personality (8 hex digits) with atoi,
 * so the image holds those digits read as decimal (ADDR_NO_RANDOMIZE|UNAME26, "00060000", is
 * stored as 60000), and the restore reads them back as hex. A personality with a hex digit a-f
 * has no such form (atoi stops there): undefined, and the dump refuses the task.
 */
export function imagePersonality(pid: number): { value: number; text: string } | undefined {
  const text = fs.readFileSync(`/proc/${pid}/personality`, 'latin1').trim();
  return /^[0-9]{1,8}$/.test(text) ? { value: Number(text), text } : undefined;
}

/** The check-task refusal of a personality imagePersonality cannot record. */
export function personalityProblem(pid: number): string | undefined {
  let text: string;
  try {
    if (imagePersonality(pid)) return undefined;
    text = fs.readFileSync(`/proc/${pid}/personality`, 'latin1').trim();
  } catch {
    return undefined; // gone: the later steps say so
  }
  return `task ${pid} has personality 0x${text}, which CRIU's image format cannot record (it keeps the hex digits read as a decimal number, so a-f digits are lost)`;
}

/** CRIU stores 64-bit capability sets as two u32 words, low first. */
function capWords(v: bigint): number[] {
  return [Number(v & 0xffffffffn), Number(v >> 32n)];
}

const RLIM_INFINITY = 0xffffffffffffffffn;

function rlimits(pid: number): Msg {
  const out: Msg[] = [];
  const buf = Buffer.alloc(16);
  for (let r = 0; r < RLIMIT_NLIMITS; r++) {
    const res = sys.trySyscall('prlimit64', pid, r, 0, buf);
    // prlimit64 on a task of another user needs CAP_SYS_RESOURCE; /proc/PID/limits does not.
    if (res.errno) return rlimitsFromProc(pid);
    out.push({ cur: buf.readBigUInt64LE(0), max: buf.readBigUInt64LE(8) });
  }
  return { rlimits: out };
}

/** /proc/PID/limits lists the 16 resources in RLIMIT_* order: "<name>  <soft>  <hard>  <units>". */
export function rlimitsFromProc(pid: number): Msg {
  const lines = fs.readFileSync(`/proc/${pid}/limits`, 'latin1').split('\n').slice(1).filter(Boolean);
  const value = (v: string) => (v === 'unlimited' ? RLIM_INFINITY : BigInt(v));
  const out = lines.slice(0, RLIMIT_NLIMITS).map((l) => {
    const m = /^.{26}(\S+)\s+(\S+)/.exec(l);
    if (!m) throw new Error(`/proc/${pid}/limits: cannot parse "${l}"`);
    return { cur: value(m[1]), max: value(m[2]) };
  });
  if (out.length !== RLIMIT_NLIMITS) throw new Error(`/proc/${pid}/limits lists ${out.length} resources`);
  return { rlimits: out };
}

function pendingSignals(tid: number, shared: boolean): Msg {
  const signals: Msg[] = [];
  for (let offset = 0; ; ) {
    const batch = sys.ptrace.peekSigInfo(tid, { offset, count: 32, shared });
    for (const si of batch) signals.push({ siginfo: Buffer.from(si.raw) });
    if (batch.length < 32) break;
    offset += batch.length;
  }
  return { signals };
}

function robustList(tid: number): { head: bigint; len: number } {
  const head = Buffer.alloc(8), len = Buffer.alloc(8);
  sys.syscall('get_robust_list', tid, head, len);
  return { head: head.readBigUInt64LE(0), len: Number(len.readBigUInt64LE(0)) };
}

function itimer(t: ParasiteTaskState['itimers'][number]): Msg {
  return { isec: t.intervalSec, iusec: t.intervalUsec, vsec: t.valueSec, vusec: t.valueUsec };
}

/** What only ptrace can read; the task must be stopped (not running the parasite). */
export interface PtraceTaskState {
  signalsShared: Msg;
  signalsPrivate: Msg;
  rseq: { rseqAbiPointer: bigint; rseqAbiSize: number; signature: number };
}

export function collectPtraceState(tid: number): PtraceTaskState {
  return {
    signalsShared: pendingSignals(tid, true),
    signalsPrivate: pendingSignals(tid, false),
    rseq: sys.ptrace.getRseqConfiguration(tid),
  };
}

export interface TaskStateInput {
  pid: number;
  stat: ProcStat;
  status: ProcStatus;
  parasite: ParasiteTaskState;
  /** The blocked mask at freeze time (saved by FrozenTask). */
  sigmask: bigint;
  /** prctl(PR_GET_SECUREBITS) run inside the task. */
  securebits: number;
  ptrace: PtraceTaskState;
}

export function collectTaskCore(input: TaskStateInput): { tc: Msg; threadCore: Msg } {
  const { pid, stat, status, parasite } = input;
  const sigactions: Msg[] = [];
  for (let sig = 1; sig <= 64; sig++) {
    if (sig === SIGKILL || sig === SIGSTOP) continue;
    const sa = parasite.sigactions[sig - 1];
    sigactions.push({ sigaction: sa.handler, flags: sa.flags, restorer: sa.restorer, mask: sa.mask, compat_sigaction: false });
  }
  const pers = imagePersonality(pid);
  if (!pers) throw new Error(personalityProblem(pid) ?? `task ${pid}: cannot read its personality`);
  const personality = pers.value;
  const tc: Msg = {
    task_state: TASK_ALIVE,
    exit_code: 0,
    personality,
    flags: stat.flags,
    blk_sigset: input.sigmask,
    comm: stat.comm,
    timers: { real: itimer(parasite.itimers[0]), virt: itimer(parasite.itimers[1]), prof: itimer(parasite.itimers[2]) },
    rlimits: rlimits(pid),
    signals_s: input.ptrace.signalsShared,
    loginuid: readNumberFile(`/proc/${pid}/loginuid`, 0xffffffff),
    oom_score_adj: readNumberFile(`/proc/${pid}/oom_score_adj`, 0),
    sigactions,
    child_subreaper: parasite.childSubreaper !== 0,
  };
  const threadCore = collectThreadCore({
    tid: pid, stat, status, ptrace: input.ptrace, securebits: input.securebits,
    self: { sas: parasite.sigaltstack, tidAddress: parasite.tidAddress, pdeathSig: parasite.pdeathSig },
  });
  return { tc, threadCore };
}

export interface ThreadCoreInput {
  tid: number;
  stat: ProcStat;
  status: ProcStatus;
  ptrace: PtraceTaskState;
  securebits: number;
  /** What the thread reported about itself (sigaltstack, pdeath signal). */
  self: { sas: { sp: bigint; size: bigint; flags: number }; tidAddress: bigint; pdeathSig: number };
  /** The thread's blocked mask; CRIU records it here for every thread but the main one. */
  sigmask?: bigint;
}

const SCHED_FIFO = 1, SCHED_RR = 2, SCHED_RESET_ON_FORK = 0x40000000;

/**
 * The thread's policy as sched_getscheduler() tells it (with SCHED_RESET_ON_FORK, which /proc
 * does not show), and its real-time priority, recorded for FIFO and RR only (as CRIU does).
 */
function schedOf(tid: number, stat: ProcStat): Msg {
  let policy = stat.policy;
  try {
    policy = Number(sys.syscall('sched_getscheduler', tid));
  } catch { /* /proc's, without the reset-on-fork flag */ }
  const base = policy & ~SCHED_RESET_ON_FORK;
  return { sched_policy: policy, ...(base === SCHED_FIFO || base === SCHED_RR ? { sched_prio: stat.rtPriority } : {}) };
}

/** thread_core_entry of one thread. */
export function collectThreadCore(input: ThreadCoreInput): Msg {
  const { tid, stat, status, self } = input;
  const robust = robustList(tid);
  const rseq = input.ptrace.rseq;
  const threadCore: Msg = {
    futex_rla: robust.head,
    futex_rla_len: robust.len,
    sched_nice: stat.nice,
    ...schedOf(tid, stat),
    ...(input.sigmask !== undefined ? { blk_sigset: input.sigmask } : {}),
    sas: { ss_sp: self.sas.sp, ss_size: self.sas.size, ss_flags: self.sas.flags },
    signals_p: input.ptrace.signalsPrivate,
    creds: {
      uid: status.uid[0], gid: status.gid[0], euid: status.uid[1], egid: status.gid[1],
      suid: status.uid[2], sgid: status.gid[2], fsuid: status.uid[3], fsgid: status.gid[3],
      cap_inh: capWords(status.capInh), cap_prm: capWords(status.capPrm), cap_eff: capWords(status.capEff),
      cap_bnd: capWords(status.capBnd), secbits: input.securebits,
      ...(status.groups.length ? { groups: status.groups } : {}),
      cap_amb: capWords(status.capAmb),
    },
    comm: stat.comm,
    ...(rseq.rseqAbiPointer !== 0n ? { rseq_entry: { rseq_abi_pointer: rseq.rseqAbiPointer, rseq_abi_size: rseq.rseqAbiSize, signature: rseq.signature } } : {}),
    cg_set: 1,
  };
  if (self.pdeathSig) threadCore.pdeath_sig = self.pdeathSig;
  return threadCore;
}


/** /proc/PID/auxv as the u64 words CRIU saves (pairs up to, not including, AT_NULL). */
export function savedAuxv(pid: number): bigint[] {
  const raw = fs.readFileSync(`/proc/${pid}/auxv`);
  const words: bigint[] = [];
  for (let off = 0; off + 16 <= raw.length; off += 16) {
    const type = raw.readBigUInt64LE(off);
    if (type === 0n) break;
    words.push(type, raw.readBigUInt64LE(off + 8));
  }
  return words;
}

/** A stopped task: CRIU's task state and the signal that stopped it. */
export function markStopped(tc: Msg, stopSignal: number | undefined): void {
  tc.task_state = TASK_STOPPED;
  tc.stop_signo = stopSignal ?? SIGSTOP;
}

/**
 * A zombie's records, as CRIU writes them: a core with only the task core (dead state and the
 * wait status its parent will collect) and its pstree entry; it has nothing else left.
 */
export function zombieImages(pid: number, ppid: number, march: number): { core: Msg; pstree: Msg } {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  const stat = parseStat(text, `/proc/${pid}/stat`);
  return {
    core: { mtype: march, tc: { task_state: TASK_DEAD, exit_code: stat.exitCode, personality: 0, flags: 0, blk_sigset: 0n, comm: stat.comm } },
    pstree: { pid, ppid, pgid: stat.pgid, sid: stat.sid, threads: [pid] },
  };
}
