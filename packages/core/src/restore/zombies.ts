/**
 * Zombies of a restored tree: each is cloned (with its PID) by its parent right after the parent
 * exists, and dies at once with its dumped wait status. We trace it, so we collect its death
 * first; the kernel then hands the zombie to its real parent, which is not reaped: the restored
 * parent's own waitpid() later gets the PID and status it would have got.
 */
import { sys, NT, WAIT } from '@criu/sys';
import type { Msg } from '@criu/images';
import type { Arch } from '../arch/types.js';
import type { FrozenTask } from '../infect/frozen-task.js';
import { RestoreError } from './errors.js';
import type { ZombieImages } from './images-in.js';
import { Scratch } from './scratch.js';

const SIGCHLD = 17, RLIMIT_CORE = 4, PR_SET_NAME = 15;

/**
 * Turns `task` (just cloned by `parent` as zombie `z`, stopped and traced by us) into the zombie.
 * `codeAddr` holds the syscall trap code in both; `scratch` is the parent's scratch area (the
 * child's is at the same address).
 */
export function makeZombie(task: FrozenTask, parent: FrozenTask, scratch: Scratch, z: ZombieImages, parentPstree: Msg, arch: Arch, codeAddr: bigint): void {
  try {
    becomeZombie(task, scratch, z, parentPstree, arch, codeAddr);
  } catch (e) {
    // Not one of the restore's tasks yet: it must not outlive the failure (a traced copy of the helper).
    try { task.kill(); } catch { /* already dead */ }
    throw e;
  }
  // The parent (traced, so not ignoring it) got a SIGCHLD the dumped one had long handled or
  // discarded: take it back.
  const set = Buffer.alloc(24);
  set.writeBigUInt64LE(1n << BigInt(SIGCHLD - 1), 0);
  const setAddr = scratch.arg(set);
  parent.rawSyscall('rt_sigtimedwait', setAddr, 0, setAddr + 8n, 8);
}

function becomeZombie(task: FrozenTask, scratch: Scratch, z: ZombieImages, parentPstree: Msg, arch: Arch, codeAddr: bigint): void {
  // `pid`: as the tree sees it (injected syscalls); `host`: for ptrace and /proc (they differ in a new pid namespace).
  const pid = z.pid, host = task.pid;
  // The child's own copy of the scratch area (writing the parent's would not reach it).
  const own = new Scratch(host, scratch.base, scratch.size);
  const sid = Number(z.pstree.sid), pgid = Number(z.pstree.pgid);
  if (sid === pid) task.syscall('setsid');
  else if (pgid === pid) task.syscall('setpgid', 0, 0);
  else if (pgid !== Number(parentPstree.pgid)) {
    const r = task.rawSyscall('setpgid', 0, pgid);
    if (r < 0n) throw new RestoreError('clone', `zombie ${pid} cannot join process group ${pgid} (errno ${-r})`, { file: 'pstree.img', field: 'pgid' });
  }
  const comm = (z.comm ?? '').slice(0, 15);
  if (comm) {
    const b = Buffer.from(comm + '\0', 'utf8');
    task.syscall('prctl', PR_SET_NAME, own.arg(b), 0, 0, 0);
  }
  const sig = z.exitStatus & 0x7f, code = (z.exitStatus >> 8) & 0xff;
  if (sig) {
    // Killed by a signal: its default action (the copy of the helper may ignore some), no core file.
    task.syscall('rt_sigaction', sig, own.arg(Buffer.alloc(32)), 0, 8);
    sys.syscall('prlimit64', host, RLIMIT_CORE, Buffer.alloc(16), 0);
  }
  const regs = arch.syscallRegs(task.savedRegs, codeAddr, arch.sysno(sig ? 'kill' : 'exit_group'), sig ? [BigInt(pid), BigInt(sig)] : [BigInt(code)]);
  sys.ptrace.setRegset(host, NT.PRSTATUS, regs);
  sys.ptrace.setSigMask(host, 0n);
  sys.ptrace.cont(host, 0);
  for (;;) {
    const st = sys.waitpid(host, WAIT.__WALL);
    if (!st) continue;
    if (st.kind === 'exited' || st.kind === 'signaled') {
      const got = st.kind === 'exited' ? st.code << 8 : st.signal;
      if (got !== (z.exitStatus & 0xff7f)) throw new RestoreError('clone', `zombie ${pid} ended with wait status 0x${got.toString(16)}, not 0x${z.exitStatus.toString(16)}`, { file: `core-${pid}.img`, field: 'tc.exit_code' });
      break;
    }
    // The signal it sends itself is delivered; anything else (the trap after kill()) is not.
    if (st.kind === 'stopped') sys.ptrace.cont(host, st.event === undefined && sig !== 0 && st.signal === sig ? sig : 0);
  }
}
