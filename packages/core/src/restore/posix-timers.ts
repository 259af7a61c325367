/**
 * Re-creates a task's POSIX timers (task_core.timers.posix) with their dumped ids, by syscalls
 * injected into the rebuilt task once all its threads exist (a SIGEV_THREAD_ID timer names one).
 * With PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15+) timer_create takes the id from *timerid;
 * older kernels hand out ids sequentially per process, so the timers are created in id order
 * and the ids in between are created and deleted again.
 */
import { sys, PR } from '@criu/sys';
import type { Msg } from '@criu/images';
import type { FrozenTask } from '../infect/frozen-task.js';
import { RestoreError } from './errors.js';
import { SCRATCH, type Scratch } from './scratch.js';

const SIGEV_SIGNAL = 0, SIGEV_NONE = 1, SIGEV_THREAD = 2, SIGEV_THREAD_ID = 4;
const RESTORE_IDS_OFF = 0, RESTORE_IDS_ON = 1;
/** How many ids the sequential fallback walks past at most (each costs two injected syscalls). */
const MAX_GAP_WALK = 65536;
const CLOCK_MAX = 11; // CLOCK_TAI; the kernel refuses other clocks (and CPU-time clocks are negative)

export interface PosixTimer {
  id: number;
  clock: number;
  signo: number;
  notify: number;
  sival: bigint;
  threadId?: number;
  interval: { sec: bigint; nsec: bigint };
  value: { sec: bigint; nsec: bigint };
}

/** The posix timers of core-PID.img, checked (sorted by id); throws RestoreError naming the field. */
export function readPosixTimers(tc: Msg, coreFile: string, threads: number[]): PosixTimer[] {
  const list = ((tc.timers as Msg | undefined)?.posix as Msg[] | undefined) ?? [];
  const out = list.map((t, i) => {
    const field = (k: string) => `tc.timers.posix[${i}].${k}`;
    const num = (k: string, opt = false): bigint | undefined => {
      const v = t[k];
      if (v === undefined || v === null) {
        if (opt) return undefined;
        throw new RestoreError('read-images', 'required value missing', { file: coreFile, field: field(k) });
      }
      if (typeof v !== 'bigint' && !(typeof v === 'number' && Number.isInteger(v))) throw new RestoreError('read-images', `expected an integer, found ${typeof v}`, { file: coreFile, field: field(k) });
      return BigInt(v);
    };
    const bad = (k: string, why: string) => new RestoreError('read-images', `posix timer ${t.it_id}: ${why}`, { file: coreFile, field: field(k) });
    const id = Number(num('it_id'));
    if (id < 0 || id > 0x7fffffff) throw bad('it_id', `invalid id ${id}`);
    const clock = Number(num('clock_id'));
    if (clock < 0 || clock > CLOCK_MAX) throw bad('clock_id', `clock ${clock} is not supported`);
    const notify = Number(num('it_sigev_notify'));
    const base = notify & ~SIGEV_THREAD_ID;
    if (![SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD].includes(base) || (notify & SIGEV_THREAD_ID && base !== SIGEV_SIGNAL)) throw bad('it_sigev_notify', `unknown notify mode ${notify}`);
    const signo = Number(num('si_signo'));
    if (signo < 0 || signo > 64 || (signo === 0 && base !== SIGEV_NONE)) throw bad('si_signo', `invalid signal ${signo}`);
    const timer: PosixTimer = {
      id, clock, signo, notify, sival: BigInt.asUintN(64, num('sival_ptr')!),
      interval: { sec: num('isec')!, nsec: num('insec')! }, value: { sec: num('vsec')!, nsec: num('vnsec')! },
    };
    for (const [k, ts] of [['insec', timer.interval], ['vnsec', timer.value]] as const) {
      if (ts.nsec < 0n || ts.nsec >= 1000000000n) throw bad(k, `nanoseconds ${ts.nsec} out of range`);
    }
    if (timer.interval.sec < 0n || timer.value.sec < 0n) throw bad('vsec', 'negative time');
    if (notify & SIGEV_THREAD_ID) {
      const tid = Number(num('notify_thread_id', true) ?? -1n);
      if (!threads.includes(tid)) throw bad('notify_thread_id', `target thread ${tid} is not a thread of the task`);
      timer.threadId = tid;
    }
    return timer;
  });
  out.sort((a, b) => a.id - b.id);
  out.forEach((t, i) => {
    if (i && out[i - 1].id === t.id) throw new RestoreError('read-images', `posix timer id ${t.id} appears twice`, { file: coreFile, field: 'tc.timers.posix' });
  });
  return out;
}

/** struct sigevent (64 bytes on every 64-bit Linux arch). */
function sigevent(t: PosixTimer): Buffer {
  const b = Buffer.alloc(64);
  b.writeBigUInt64LE(t.sival, 0);
  b.writeInt32LE(t.signo, 8);
  b.writeInt32LE(t.notify, 12);
  b.writeInt32LE(t.threadId ?? 0, 16);
  return b;
}

function itimerspec(t: PosixTimer): Buffer {
  let value = t.value;
  // A periodic timer reads 0 only while disarmed; CRIU images may still hold 0 for one whose
  // signal was pending: arming it with 0 would disarm it, so it restarts with one interval.
  if (value.sec === 0n && value.nsec === 0n && (t.interval.sec !== 0n || t.interval.nsec !== 0n)) value = t.interval;
  const b = Buffer.alloc(32);
  [t.interval.sec, t.interval.nsec, value.sec, value.nsec].forEach((x, i) => b.writeBigInt64LE(x, i * 8));
  return b;
}

/**
 * Creates the timers in the task (which must not have any yet) and arms them. `explicitIds`
 * false forces the sequential fallback (what a kernel without PR_TIMER_CREATE_RESTORE_IDS does).
 */
export function restorePosixTimers(task: FrozenTask, scratch: Scratch, timers: PosixTimer[], coreFile: string, explicitIds = true): void {
  if (!timers.length) return;
  const pid = task.pid;
  const sevAt = SCRATCH.args, idAt = SCRATCH.args + 128, specAt = SCRATCH.args + 192;
  const create = (t: PosixTimer, want: number): number => {
    const idBuf = Buffer.alloc(4);
    idBuf.writeInt32LE(want, 0);
    const idAddr = scratch.put(idAt, idBuf);
    const r = task.rawSyscall('timer_create', t.clock, scratch.put(sevAt, sigevent(t)), idAddr);
    if (r < 0n) {
      throw new RestoreError('task-state', `timer_create for posix timer ${t.id} failed with errno ${-r}`, { file: coreFile, field: 'tc.timers.posix' });
    }
    return sys.readMemory(pid, idAddr, 4).readInt32LE(0);
  };
  const useIds = explicitIds && task.rawSyscall('prctl', PR.TIMER_CREATE_RESTORE_IDS, RESTORE_IDS_ON, 0, 0, 0) === 0n;
  try {
    for (const t of timers) {
      let id = create(t, t.id);
      if (!useIds) {
        // Ids come in sequence: walk up to the wanted one, deleting the ones in between.
        // (Too far a walk is refused at once rather than after minutes of syscalls.)
        for (let walked = 0; id < t.id && t.id - id <= MAX_GAP_WALK && walked < MAX_GAP_WALK; walked++) {
          task.syscall('timer_delete', id);
          id = create(t, t.id);
        }
      }
      if (id !== t.id) {
        task.rawSyscall('timer_delete', id);
        throw new RestoreError('task-state', `posix timer ${t.id} cannot be re-created with its id: the kernel gave id ${id}`, {
          file: coreFile, field: 'tc.timers.posix',
          hint: useIds ? undefined : 'this kernel lacks PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15+) and allocates timer ids in sequence; the id is out of reach',
        });
      }
      const r = task.rawSyscall('timer_settime', t.id, 0, scratch.put(specAt, itimerspec(t)), 0);
      if (r < 0n) throw new RestoreError('task-state', `timer_settime for posix timer ${t.id} failed with errno ${-r}`, { file: coreFile, field: 'tc.timers.posix' });
    }
  } finally {
    if (useIds) task.rawSyscall('prctl', PR.TIMER_CREATE_RESTORE_IDS, RESTORE_IDS_OFF, 0, 0, 0);
  }
}
