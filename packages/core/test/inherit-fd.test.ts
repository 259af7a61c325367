// CRIU's --inherit-fd for pipes (what runc does with a container's stdio): the dumped task's
// stdout is a pipe whose reader is outside the tree (this test); the restore is given our write
// end as `pipe:[INODE]` and the restored task writes into the same pipe, which we go on reading.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { sys, O } from '@criu/sys';
import { dump, restore } from '../src';
import { testprog } from './helpers/testprogs';
import { waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { waitPidGone } from './helpers/oracle';

const { dir: tmp, started } = testWorkspace('inherit-fd');
const fds: number[] = [];
afterAll(() => fds.forEach((fd) => { try { sys.close(fd); } catch { /* closed */ } }));

/** Everything readable from `fd` now (non-blocking). */
function drain(fd: number): string {
  const buf = Buffer.alloc(65536);
  let out = '';
  for (;;) {
    try {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) return out;
      out += buf.subarray(0, n).toString('latin1');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return out;
      throw e;
    }
  }
}

test('a pipe given as pipe:[INODE]: the restored counter writes on into the pipe we read', async () => {
  const [r, w] = sys.pipe2(O.CLOEXEC | O.NONBLOCK);
  fds.push(r, w);
  const ino = fs.fstatSync(w).ino;
  // The counter's stdout: our pipe, opened again through /proc (it is not Node's child).
  const pid = Number(execFileSync('bash', ['-c', `setsid '${testprog('counter')}' </dev/null >/proc/${process.pid}/fd/${w} 2>&1 & echo $!`]).toString().trim());
  const v: Victim = { pid, log: '' };
  started.push(v);
  let text = '';
  await waitFor('READY and a few ticks', () => (text += drain(r), /READY counter[\s\S]*\n3\n/.test(text)), 10_000);
  const dir = path.join(tmp, 'img');
  await dump({ pid, imagesDir: dir });
  await waitPidGone(pid);
  text += drain(r);
  const last = Number(text.trim().split('\n').filter((l) => /^\d+$/.test(l)).pop());
  const res = await restore({ imagesDir: dir, inheritFds: [{ key: `pipe:[${ino}]`, fd: w }] });
  expect(res.pid).toBe(pid);
  let after = '';
  await waitFor('counts after the restore, in our pipe', () => (after += drain(r), after.split('\n').filter((l) => /^\d+$/.test(l)).length >= 3), 10_000);
  expect(Number(after.split('\n').find((l) => /^\d+$/.test(l)))).toBe(last + 1);
  process.kill(pid, 'SIGTERM');
  await waitFor('PASS', () => (after += drain(r), /^PASS counter/m.test(after)), 10_000);
});
