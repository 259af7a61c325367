/**
 * Namespaces: a root task with uts and ipc namespaces of its own is dumped (utsns/ipcns-var
 * images) and restored into new ones (a pid namespace of its own: test/pidns.test.ts; a mount
 * namespace: test/mntns.test.ts). What cannot be restored (a mount that cannot be dumped, SysV
 * IPC objects, a child in a pid namespace the root is not in) is refused at dump time, naming the
 * task and the namespace (or the mount), and the tree is left running untraced. A mount
 * namespace that is a plain copy of the dumper's (same mounts) resolves paths the same way and is dumped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { DumpError, dump, restore } from '../src';
import { isAlive, readLog, startDetached, waitFor } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';

const { dir: tmp, started } = testWorkspace('namespaces');
const tracerOf = (pid: number) => Number(/TracerPid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'))![1]);
const stateOf = (pid: number) => fs.readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1][0];
const childOf = (pid: number) => Number(fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(' ')[0]);
const counter = `i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done`;

describe('a task in a namespace of its own', () => {
  it.each([
    ['ipc, holding a SysV message queue', ['-i'], 'ipcmk', /its ipc namespace holds 1 SysV message queue\(s\); dumping SysV IPC objects is not supported yet/],
    ['pid (the child is pid 1 of a new one)', ['-p', '-f'], 'unshare', /its children's pid namespace \(set by unshare\(CLONE_NEWPID\)\) is not the dumper's/],
    // A copy of the host's mounts plus one: dumped as a mount namespace of its own, the host's
    // devtmpfs, shared mounts, nsfs ... are refused, naming the first such mount.
    ['mount, with a mount of its own', ['-m'], 'sh', /: mount \d+ at \S+ \([\w.]+, source .*, root .*\) (is|receives|cannot|shows)/],
  ])('%s: the dump is refused naming task and namespace, and the tree runs on untraced', async (_what, flags, root, message) => {
    const extra = flags.includes('-m') ? `mount -t tmpfs criu-ts-ns-test /mnt && ` : root === 'ipcmk' ? 'ipcmk -Q >/dev/null && ' : '';
    const v = startDetached('unshare', [...flags, 'sh', '-c', `${extra}${counter}`]);
    started.push(v);
    await waitFor('the counter', () => /^3$/m.test(readLog(v)));
    // unshare -f forks the shell; otherwise unshare execs it.
    const shell = root === 'unshare' ? childOf(v.pid) : v.pid;
    // Killing unshare does not end the namespace's init: it is ours to kill too.
    if (shell !== v.pid) started.push({ ...v, pid: shell });
    let err: unknown;
    try {
      await dump({ pid: v.pid, imagesDir: path.join(tmp, `refused-${flags.join('')}`) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DumpError);
    expect((err as Error).message).toMatch(new RegExp(`task ${v.pid}: `));
    expect((err as Error).message).toMatch(message);
    for (const pid of [v.pid, shell]) {
      expect(isAlive(pid)).toBe(true);
      expect(tracerOf(pid)).toBe(0);
    }
    const before = readLog(v).trim().split('\n').length;
    await waitFor('the counter going on', () => readLog(v).trim().split('\n').length > before + 2);
    expect(stateOf(shell)).toMatch(/[RS]/);
  });

  it('a mount namespace that is a copy of the dumper\'s (unshare -m, nothing mounted) is dumped and restored', async () => {
    const v = startDetached('unshare', ['-m', 'sh', '-c', counter]);
    started.push(v);
    await waitFor('the counter', () => /^3$/m.test(readLog(v)));
    expect(fs.readlinkSync(`/proc/${v.pid}/ns/mnt`)).not.toBe(fs.readlinkSync('/proc/self/ns/mnt'));
    const images = path.join(tmp, 'mnt-copy');
    await dump({ pid: v.pid, imagesDir: images });
    await waitFor(`PID ${v.pid} to go`, () => !fs.existsSync(`/proc/${v.pid}`), 10_000);
    const seen = readLog(v).trim().split('\n').length;
    await restore({ imagesDir: images, detach: true });
    await waitFor('the restored counter going on', () => readLog(v).trim().split('\n').length > seen + 2);
  });
});

describe('a root task with uts and ipc namespaces of its own', () => {
  const nsenter = (pid: number, flag: string, cmd: string[]) => execFileSync('nsenter', ['-t', String(pid), flag, ...cmd], { encoding: 'utf8' }).trim();
  it('comes back in new ones with its host name, domain name and ipc sysctls', async () => {
    const setup = 'hostname criu-ts-uts && domainname criu-ts-dom && echo 4321 > /proc/sys/kernel/msgmni && echo 7 > /proc/sys/fs/mqueue/msg_max';
    const v = startDetached('unshare', ['-u', '-i', 'sh', '-c', `${setup} && ${counter}`]);
    started.push(v);
    await waitFor('the counter', () => /^3$/m.test(readLog(v)));
    const images = path.join(tmp, 'uts-ipc');
    await dump({ pid: v.pid, imagesDir: images });
    const files = fs.readdirSync(images);
    expect(files.filter((f) => /^(utsns|ipcns-var)-\d+\.img$/.test(f)).sort()).toEqual(['ipcns-var-9.img', 'utsns-10.img']);
    await waitFor(`PID ${v.pid} to go`, () => !fs.existsSync(`/proc/${v.pid}`), 10_000);
    const seen = readLog(v).trim().split('\n').length;
    const r = await restore({ imagesDir: images, detach: true });
    expect(r.pid).toBe(v.pid);
    for (const ns of ['uts', 'ipc']) expect(fs.readlinkSync(`/proc/${v.pid}/ns/${ns}`)).not.toBe(fs.readlinkSync(`/proc/self/ns/${ns}`));
    expect(nsenter(v.pid, '-u', ['hostname'])).toBe('criu-ts-uts');
    expect(nsenter(v.pid, '-u', ['domainname'])).toBe('criu-ts-dom');
    expect(nsenter(v.pid, '-i', ['cat', '/proc/sys/kernel/msgmni'])).toBe('4321');
    expect(nsenter(v.pid, '-i', ['cat', '/proc/sys/fs/mqueue/msg_max'])).toBe('7');
    expect(execFileSync('hostname', { encoding: 'utf8' }).trim()).not.toBe('criu-ts-uts');
    await waitFor('the restored counter going on', () => readLog(v).trim().split('\n').length > seen + 2);
  });
});
