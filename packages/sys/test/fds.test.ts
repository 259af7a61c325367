// pidfd, kcmp, memfd, pipes and the splice family, fcntl, prctl, clone3 argument layout, auxv,
// against the real kernel, once per backend.
import fs from 'node:fs';
import path from 'node:path';
import {
  AT, createSys, F, KCMP, KCMP_RESULT, MFD, O, packCloneArgs, packTidArray, PR, readAuxv, SIGNALS, SPLICE_F,
  type Sys,
} from '../src/index';
import { alive, BACKENDS, buildTarget, killAndReap, sleep, startDetached, startTarget, tempDir, type TargetInfo } from './helpers';

const POLLIN = 1;

/** ppoll on one fd through the generic syscall entry: returns revents (0 on timeout). */
function pollOne(sys: Sys, fd: number, events: number, timeoutMs: number): number {
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(events, 4);
  const ts = Buffer.alloc(16);
  ts.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
  ts.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1_000_000), 8);
  const n = sys.syscall('ppoll', pfd, 1, ts, null, 8);
  return n === 0n ? 0 : pfd.readInt16LE(6);
}

function readAll(fd: number, len: number, position: number | null = null): Buffer {
  const out = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, out, got, len - got, position === null ? null : position + got);
    if (n === 0) break;
    got += n;
  }
  return out.subarray(0, got);
}

describe.each(BACKENDS)('fds and process handles through %s', (backend) => {
  let sys: Sys;
  let dir: string;
  let t: TargetInfo;
  const started: number[] = [];
  const openFds: number[] = [];
  const track = (fd: number) => (openFds.push(fd), fd);

  beforeAll(async () => {
    sys = createSys({ backend });
    dir = tempDir(`fds-${backend}`);
    t = await startTarget(buildTarget(dir), dir, 'target');
    started.push(t.pid);
  });

  afterAll(() => {
    for (const fd of openFds) try { fs.closeSync(fd); } catch { /* already closed by the test */ }
    for (const pid of started) killAndReap(sys, pid);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('kcmp sees a dup\'d fd in another process, and shared/unshared objects', () => {
    // fd 10 of the target is dup2(1, 10); fd 0 is /dev/null.
    expect(sys.kcmp(t.pid, t.pid, KCMP.FILE, 1, 10)).toBe(KCMP_RESULT.EQUAL);
    expect(sys.kcmp(t.pid, t.pid, KCMP.FILE, 0, 10)).not.toBe(KCMP_RESULT.EQUAL);
    expect(sys.kcmp(t.pid, t.pid, KCMP.VM)).toBe(KCMP_RESULT.EQUAL);
    expect(sys.kcmp(process.pid, t.pid, KCMP.VM)).not.toBe(KCMP_RESULT.EQUAL);
    expect(sys.kcmp(process.pid, t.pid, KCMP.FILES)).not.toBe(KCMP_RESULT.EQUAL);
    expect(() => sys.kcmp(t.pid, t.pid, KCMP.FILE, 1, 999)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'kcmp' }));
  });

  test('pidfd_open + pidfd_getfd: the stolen fd is the same open file as the target\'s', () => {
    const pidfd = track(sys.pidfdOpen(t.pid));
    expect(fs.readlinkSync(`/proc/self/fd/${pidfd}`)).toBe('anon_inode:[pidfd]');
    const stolen = track(sys.pidfdGetfd(pidfd, 10));
    expect(fs.fstatSync(stolen).ino).toBe(fs.statSync(t.log).ino);
    expect(sys.kcmp(process.pid, t.pid, KCMP.FILE, stolen, 10)).toBe(KCMP_RESULT.EQUAL);
    expect(pollOne(sys, pidfd, POLLIN, 0)).toBe(0); // still running: not readable
    expect(() => sys.pidfdOpen(0x3ffffff0)).toThrow(expect.objectContaining({ code: 'ESRCH', syscall: 'pidfd_open' }));
    expect(() => sys.pidfdOpen(t.pid, 0x1)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  test('pidfd_send_signal kills, and the pidfd becomes readable', async () => {
    const victim = startDetached(['sleep', '60'], path.join(dir, 'sleep.log'));
    started.push(victim.pid);
    await sleep(20);
    const pidfd = track(sys.pidfdOpen(victim.pid));
    sys.pidfdSendSignal(pidfd, SIGNALS.SIGKILL);
    expect(pollOne(sys, pidfd, POLLIN, 2000) & POLLIN).toBe(POLLIN);
    // Readable means the process has exited: it is a zombie (or already reaped by its new parent,
    // which on some init systems takes a second or more, so we do not wait for that).
    expect(alive(victim.pid)).toBe(false);
    expect(() => sys.pidfdSendSignal(pidfd, 99)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'pidfd_send_signal' }));
  });

  test('memfd + splice + tee move bytes between a file and pipes', () => {
    const data = Buffer.alloc(64 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 8)) & 0xff;
    const memfd = track(sys.memfdCreate('criu-sys-test', MFD.CLOEXEC));
    expect(fs.readlinkSync(`/proc/self/fd/${memfd}`)).toBe('/memfd:criu-sys-test (deleted)');
    expect(fs.writeSync(memfd, data, 0, data.length, 0)).toBe(data.length);
    const [r1, w1] = sys.pipe2(O.CLOEXEC).map(track);
    const [r2, w2] = sys.pipe2(O.CLOEXEC | O.NONBLOCK).map(track);
    expect(sys.fcntl(w2, F.GETFL) & O.NONBLOCK).toBe(O.NONBLOCK);
    expect(sys.fcntl(w1, F.GETFL) & O.NONBLOCK).toBe(0);
    expect(sys.fcntl(w1, F.SETPIPE_SZ, 256 * 1024)).toBeGreaterThanOrEqual(256 * 1024);
    expect(sys.fcntl(r1, F.GETPIPE_SZ)).toBeGreaterThanOrEqual(256 * 1024);

    // file[4096, 4096+8192) -> pipe1 (at an explicit offset: the file position stays 0)
    expect(sys.splice(memfd, 4096, w1, null, 8192)).toBe(8192);
    expect(sys.syscall('lseek', memfd, 0, 1)).toBe(0n);
    // pipe1 -> pipe2 without consuming, then both hold the same bytes
    expect(sys.tee(r1, w2, 8192)).toBe(8192);
    expect(readAll(r1, 8192).equals(data.subarray(4096, 4096 + 8192))).toBe(true);
    expect(readAll(r2, 8192).equals(data.subarray(4096, 4096 + 8192))).toBe(true);
    // Empty nonblocking pipe: EAGAIN as a SysError.
    expect(() => sys.splice(r2, null, memfd, 0, 16, SPLICE_F.NONBLOCK)).toThrow(expect.objectContaining({ code: 'EAGAIN', syscall: 'splice' }));
  });

  test('vmsplice user memory into a pipe, splice it into a file at an offset', () => {
    const memfd = track(sys.memfdCreate('criu-sys-vmsplice'));
    const [r, w] = sys.pipe2().map(track);
    const a = Buffer.alloc(3000, 'a');
    const b = Buffer.from('the quick brown fox');
    const n = sys.vmsplice(w, [a, b]);
    expect(n).toBe(a.length + b.length);
    const off = (1 << 20) + 5;
    expect(sys.splice(r, null, memfd, off, n)).toBe(n);
    expect(readAll(memfd, n, off).equals(Buffer.concat([a, b]))).toBe(true);
    expect(fs.fstatSync(memfd).size).toBe(off + n);
  });

  test('prctl: get and set this thread\'s name, read subreaper state', () => {
    const name = Buffer.alloc(16);
    expect(sys.prctl(PR.GET_NAME, name)).toBe(0n);
    const before = name.toString('latin1').replace(/\0.*$/s, '');
    expect(before).toBe(fs.readFileSync(`/proc/self/task/${process.pid}/comm`, 'utf8').trim());
    try {
      sys.prctl(PR.SET_NAME, Buffer.from('criu-sys-test\0'));
      expect(fs.readFileSync(`/proc/self/task/${process.pid}/comm`, 'utf8').trim()).toBe('criu-sys-test');
    } finally {
      sys.prctl(PR.SET_NAME, Buffer.from(`${before}\0`));
    }
    const flag = Buffer.alloc(4, 0xff);
    sys.prctl(PR.GET_CHILD_SUBREAPER, flag);
    expect([0, 1]).toContain(flag.readInt32LE(0));
    expect(() => sys.prctl(0x7fffffff)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'prctl' }));
  });

  test('clone3 reads set_tid through our struct: a taken pid gives EEXIST', () => {
    // set_tid = [our own pid]: always taken, so the kernel refuses before creating anything.
    // EEXIST (not EFAULT/EINVAL) proves it read the struct, the array pointer and its size.
    const tids = packTidArray([process.pid]);
    const args = packCloneArgs({ setTid: sys.address(tids), setTidSize: 1 });
    expect(() => sys.syscall('clone3', args, args.length)).toThrow(expect.objectContaining({ code: 'EEXIST', syscall: 'clone3' }));
    void tids;
    expect(() => sys.syscall('clone3', args, 63)).toThrow(expect.objectContaining({ code: 'EINVAL' })); // below CLONE_ARGS_SIZE_VER0
  });

  test('auxv of another process and the page size', () => {
    const mine = readAuxv();
    const theirs = readAuxv(t.pid);
    expect(theirs.get(AT.PAGESZ)).toBe(BigInt(sys.pageSize()));
    expect(mine.get(AT.PAGESZ)).toBe(BigInt(sys.pageSize()));
    expect(theirs.get(AT.ENTRY)).not.toBe(mine.get(AT.ENTRY)); // different executables
  });
});
