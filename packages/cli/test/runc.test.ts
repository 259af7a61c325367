// runc checkpoint / restore of a busybox container (issue #9). The oracle CRIU as runc's criu
// proves the harness (checkpoint + restore, --leave-running); criu-ts as runc's criu is driven
// the same way through `criu swrk`, and what runc sends is recorded with CRIU_TS_RPC_TRACE.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ORACLE_CRIU, requireOracle } from '../../core/test/helpers/oracle';
import { countAbove, makeContainer, requireRunc, type Container } from './helpers/runc';

const CRIU_TS = path.join(__dirname, '../bin/criu.cjs');

const containers: Container[] = [];
function container(name: string): Container {
  const c = makeContainer(name);
  containers.push(c);
  return c;
}

beforeAll(() => {
  if (!fs.existsSync(path.join(__dirname, '../dist/index.cjs'))) throw new Error('packages/cli is not built: run `pnpm exec tsup` (turbo builds before testing)');
  requireRunc();
  requireOracle();
});
afterAll(() => {
  for (const c of containers) c.cleanup();
});

/** Decoded requests of a CRIU_TS_RPC_TRACE file. */
function traced(file: string): Array<{ dir: string; msg: Record<string, unknown> }> {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

describe('runc with the oracle CRIU (the harness baseline)', () => {
  test('checkpoint, restore: `runc exec cat /tmp/count` goes on from where it was', async () => {
    const c = container('orc');
    const run = await c.run();
    expect(run).toMatchObject({ status: 0 });
    const before = await countAbove(c, 2);
    const img = path.join(c.dir, 'img');
    const cp = c.checkpoint(ORACLE_CRIU, img);
    expect(cp).toMatchObject({ status: 0 });
    expect(c.status()).toBeUndefined(); // checkpointed without --leave-running: gone
    expect(fs.existsSync(path.join(img, 'inventory.img'))).toBe(true);
    const rs = await c.restore(ORACLE_CRIU, img);
    expect(rs).toMatchObject({ status: 0 });
    expect(c.status()).toBe('running');
    await countAbove(c, before + 3);
  });

  test('checkpoint --leave-running: the container keeps counting', async () => {
    const c = container('orl');
    expect(await c.run()).toMatchObject({ status: 0 });
    await countAbove(c, 2);
    const cp = c.checkpoint(ORACLE_CRIU, path.join(c.dir, 'img'), ['--leave-running']);
    expect(cp).toMatchObject({ status: 0 });
    expect(c.status()).toBe('running');
    await countAbove(c, c.count() + 3);
  });
});

describe('runc with criu-ts as CRIU', () => {
  test('checkpoint, restore: what runc sends is accepted, and `runc exec cat /tmp/count` goes on from where it was', async () => {
    const c = container('ts');
    expect(await c.run()).toMatchObject({ status: 0 });
    const before = await countAbove(c, 2);
    const img = path.join(c.dir, 'img');
    const trace = path.join(c.dir, 'rpc-trace.jsonl');
    const cp = c.checkpoint(CRIU_TS, img, [], { CRIU_TS_RPC_TRACE: trace });
    const dumpLog = fs.existsSync(path.join(img, 'dump.log')) ? fs.readFileSync(path.join(img, 'dump.log'), 'utf8') : '(no dump.log)';
    expect({ ...cp, dumpLog: cp.status === 0 ? '' : dumpLog.split('\n').filter((l) => /Error|rror:/.test(l)).join('\n') }).toMatchObject({ status: 0, dumpLog: '' });
    // What runc 1.1 asks of CRIU for this container.
    const reqs = traced(trace).filter((t) => t.dir === 'req').map((t) => t.msg);
    expect(reqs[0]).toEqual({ type: 10 }); // VERSION, on a swrk process of its own
    const opts = reqs.find((m) => m.type === 1)!.opts as Record<string, unknown>;
    expect(opts).toMatchObject({ notify_scripts: true, manage_cgroups: true, log_file: 'dump.log', root: path.join(c.bundle, 'rootfs') });
    expect(opts.external).toEqual([expect.stringMatching(/^net\[\d+\]:extRootNetNS$/)]);
    expect(opts.ext_mnt).toEqual(expect.arrayContaining([{ key: '/dev/null', val: '/dev/null' }]));
    // The container's namespaces and mounts are in the images, as CRIU writes them.
    const files = fs.readdirSync(img);
    for (const want of [/^mountpoints-\d+\.img$/, /^utsns-\d+\.img$/, /^ipcns-var-\d+\.img$/, /^netns-\d+\.img$/, /^cgroup\.img$/, /^tmpfs-dev-\d+\.tar\.gz\.img$/]) {
      expect(files.filter((f) => want.test(f))).not.toEqual([]);
    }
    expect(c.status()).toBeUndefined(); // checkpointed without --leave-running: gone
    const rs = await c.restore(CRIU_TS, img);
    const restoreLog = fs.existsSync(path.join(img, 'restore.log')) ? fs.readFileSync(path.join(img, 'restore.log'), 'utf8') : '(no restore.log)';
    expect({ ...rs, restoreLog: rs.status === 0 ? '' : restoreLog.split('\n').slice(-15).join('\n') }).toMatchObject({ status: 0, restoreLog: '' });
    expect(c.status()).toBe('running');
    const after = await countAbove(c, before);
    // It went on from where it was, not from the start.
    expect(after).toBeGreaterThan(before);
    await countAbove(c, after + 3);
  });

  test('checkpoint --leave-running: the container keeps counting; the images restore once it is gone', async () => {
    const c = container('tsl');
    expect(await c.run()).toMatchObject({ status: 0 });
    await countAbove(c, 2);
    const img = path.join(c.dir, 'img');
    const cp = c.checkpoint(CRIU_TS, img, ['--leave-running']);
    expect(cp).toMatchObject({ status: 0 });
    expect(c.status()).toBe('running');
    const before = await countAbove(c, c.count() + 3);
    // The running container is replaced by its checkpoint: the counter goes back to where it
    // was dumped, then on.
    await c.kill();
    expect(c.status()).toBeUndefined();
    const rs = await c.restore(CRIU_TS, img);
    expect(rs).toMatchObject({ status: 0 });
    expect(c.status()).toBe('running');
    const n = await countAbove(c, 0);
    expect(n).toBeLessThan(before + 25); // from the dump's count (~before), not a fresh start's 1
    await countAbove(c, n + 3);
  });

  test("restore of an oracle checkpoint: runc's restore request is accepted and the counter goes on", async () => {
    const c = container('tso');
    expect(await c.run()).toMatchObject({ status: 0 });
    const before = await countAbove(c, 2);
    const img = path.join(c.dir, 'img');
    expect(c.checkpoint(ORACLE_CRIU, img)).toMatchObject({ status: 0 });
    const trace = path.join(c.dir, 'rpc-trace.jsonl');
    const rs = await c.restore(CRIU_TS, img, { CRIU_TS_RPC_TRACE: trace });
    const log = fs.readFileSync(path.join(img, 'restore.log'), 'utf8');
    expect({ ...rs, log: rs.status === 0 ? '' : log.split('\n').slice(-15).join('\n') }).toMatchObject({ status: 0, log: '' });
    const reqs = traced(trace).filter((t) => t.dir === 'req').map((t) => t.msg);
    const opts = reqs.find((m) => m.type === 2)!.opts as Record<string, unknown>;
    // runc hands over the network namespace and the stdio pipes as inherit_fd, our own fds.
    expect(opts.inherit_fd).toEqual(expect.arrayContaining([{ key: 'extRootNetNS', fd: expect.any(Number) }, { key: expect.stringMatching(/^pipe:\[\d+\]$/), fd: 1 }]));
    expect(opts).toMatchObject({ rst_sibling: true, manage_cgroups: true, notify_scripts: true, log_file: 'restore.log' });
    // cgroup v1: the container's cgroup per controller (runc moved swrk there); v2: none (runc 1.1 sends none).
    if (fs.existsSync('/sys/fs/cgroup/cgroup.controllers')) expect(opts.cg_root ?? []).toEqual([]);
    else expect(opts.cg_root).toEqual(expect.arrayContaining([{ ctrl: expect.any(String), path: expect.stringMatching(new RegExp(`/${c.id}$`)) }]));
    expect(c.status()).toBe('running');
    const after = await countAbove(c, before);
    await countAbove(c, after + 3);
  });
});
