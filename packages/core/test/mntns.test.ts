/**
 * Mount namespaces: tools/testprogs/mntns lives in a mount namespace of its own (proc, tmpfs with
 * files and device nodes, devpts, read-only sysfs, binds, a read-only bind and tmpfs, a shared
 * tmpfs and its peer, an external bind, all under its own root). criu-ts dumps it (mountpoints-N.img as the oracle CRIU writes it,
 * tmpfs archives) and restores it (twice) with `root`; it restores the oracle's dump of it, and
 * the oracle restores criu-ts's. Broken images and mounts that cannot be dumped are refused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeImageEntries, encodeImageEntries, type Msg } from '@criu/images';
import { DumpError, RestoreError, dump, parseExternal, restore } from '../src';
import { oracle, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { testprog, verdict } from './helpers/testprogs';
import { isAlive, readLog, startDetached, waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';

jest.setTimeout(120_000);
const { dir: tmp, started } = testWorkspace('mntns');
const ext = path.join(tmp, 'ext');
fs.mkdirSync(ext);
fs.writeFileSync(path.join(ext, 'marker'), 'ext-marker\n');
const tracerOf = (pid: number) => Number(/TracerPid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'))![1]);

/** Starts mntns with a fresh root under tmp; its log is ROOT/log (it writes there from inside). */
async function startMntns(name: string, withExt = true): Promise<Victim & { root: string }> {
  const root = path.join(tmp, name);
  fs.mkdirSync(root);
  const v = startDetached(testprog('mntns'), [root, ...(withExt ? [ext] : [])]);
  started.push(v);
  const inner = { pid: v.pid, log: path.join(root, 'log'), root };
  await waitFor('READY mntns', () => /READY mntns /.test(readLog(inner)) || /FAIL/.test(readLog(v)), 10_000);
  expect(readLog(v)).not.toMatch(/FAIL/);
  return inner;
}

// /ext (a host directory) and /proc/uptime (masked by the host's /dev/null, as runc does) are external.
const dumpExternal = parseExternal(['mnt[/ext]:extkey', 'mnt[/proc/uptime]:devnull']);
const restoreExternal = parseExternal(['mnt[extkey]:' + ext, 'mnt[devnull]:/dev/null']);

/** The mount entries, keyed by mountpoint, without what differs between two runs (ids, devices, peer group numbers, the root's path). */
function mountTable(images: string, root: string): Record<string, Msg> {
  const file = fs.readdirSync(images).find((f) => /^mountpoints-\d+\.img$/.test(f))!;
  const entries = decodeImageEntries(fs.readFileSync(path.join(images, file))).entries.map((e) => e.message as Msg);
  const out: Record<string, Msg> = {};
  for (const e of entries) {
    const { mnt_id: _a, parent_mnt_id: _b, root_dev: _c, ...rest } = e;
    out[String(e.mountpoint)] = { ...rest, root: String(e.root).replace(root, 'ROOT'), shared_id: e.shared_id ? 'shared' : 0 };
  }
  // /shared and /peer are one peer group, the only one.
  const groups = entries.filter((e) => e.shared_id).map((e) => [e.mountpoint, e.shared_id]);
  expect(groups.map(([mp]) => mp).sort()).toEqual(['/peer', '/shared']);
  expect(groups[0][1]).toBe(groups[1][1]);
  return out;
}

async function roundTrip(v: Victim & { root: string }, images: string, preDump?: string): Promise<void> {
  // With a pre-dump: no mount checks there (memory only); the parent's pages reach the task in its namespace too.
  if (preDump) await dump({ pid: v.pid, imagesDir: preDump, preDump: true, trackMem: true });
  await dump({ pid: v.pid, imagesDir: images, external: dumpExternal, ...(preDump ? { parentImagesDir: path.relative(images, preDump), trackMem: true } : {}) });
  await waitPidGone(v.pid);
  const before = readLog(v);
  await restore({ imagesDir: images, detach: true, root: v.root, external: restoreExternal });
  expect(isAlive(v.pid)).toBe(true);
  expect(fs.readlinkSync(`/proc/${v.pid}/ns/mnt`)).not.toBe(fs.readlinkSync('/proc/self/ns/mnt'));
  expect(readLog(v)).toBe(before); // /log is the same file, reopened at its offset
}

describe('a task in a mount namespace of its own (mntns)', () => {
  let oracleImages = '';
  let oracleRoot = '';

  it('criu-ts dumps and restores it twice (the second time after a pre-dump), with --root and an external mount', async () => {
    const v = await startMntns('ts');
    const first = path.join(tmp, 'ts-1');
    // Under the usual umask, which would leave what tar writes 0644.
    const oldUmask = process.umask(0o022);
    try {
      await roundTrip(v, first);
    } finally {
      process.umask(oldUmask);
    }
    expect(fs.readdirSync(first).filter((f) => f.startsWith('tmpfs-dev-')).length).toBe(4); // /tmp /dev /rotmp /shared
    // The images, the tmpfs archives among them, are the owner's alone.
    expect(fs.statSync(first).mode & 0o777).toBe(0o700);
    const modes = fs.readdirSync(first).map((f) => [f, (fs.lstatSync(path.join(first, f)).mode & 0o777).toString(8)]);
    expect(modes.filter(([, m]) => m !== '600')).toEqual([]);
    await roundTrip(v, path.join(tmp, 'ts-2'), path.join(tmp, 'ts-pre'));
    expect(await verdict(v)).toBe('PASS mntns');
  });

  it('the oracle dumps it; criu-ts writes the same mount table and restores the oracle\'s images', async () => {
    requireOracle();
    const v = await startMntns('oracle');
    oracleImages = path.join(tmp, 'oracle-img');
    oracleRoot = v.root;
    fs.mkdirSync(oracleImages);
    const r = oracle(['dump', '-t', String(v.pid), '-D', oracleImages, '-o', 'dump.log', '-v4', '--external', 'mnt[/ext]:extkey', '--external', 'mnt[/proc/uptime]:devnull'], path.join(oracleImages, 'dump.log'));
    expect(r.status).toBe(0);
    await waitPidGone(v.pid);
    // Ours of another instance: the same mounts, flags, options, sources, keys.
    const w = await startMntns('compare');
    const ours = path.join(tmp, 'compare-img');
    await dump({ pid: w.pid, imagesDir: ours, external: dumpExternal, leaveRunning: true });
    expect(mountTable(ours, w.root)).toEqual(mountTable(oracleImages, v.root));
    expect(fs.readdirSync(ours).filter((f) => f.startsWith('tmpfs-dev-')).length).toBe(fs.readdirSync(oracleImages).filter((f) => f.startsWith('tmpfs-dev-')).length);
    expect(await verdict(w)).toBe('PASS mntns');

    await restore({ imagesDir: oracleImages, detach: true, root: v.root, external: restoreExternal });
    expect(await verdict(v)).toBe('PASS mntns');
  });

  it('the oracle restores criu-ts\'s images of it', async () => {
    requireOracle();
    const v = await startMntns('to-oracle');
    const images = path.join(tmp, 'to-oracle-img');
    await dump({ pid: v.pid, imagesDir: images, external: dumpExternal });
    await waitPidGone(v.pid);
    oracleRestore(images, ['--root', v.root, '--external', `mnt[extkey]:${ext}`, '--external', 'mnt[devnull]:/dev/null']);
    expect(await verdict(v)).toBe('PASS mntns');
  });

  it('broken mount images and missing options fail the restore naming file, record and field, leaving no task', async () => {
    requireOracle();
    expect(oracleImages).not.toBe('');
    const file = fs.readdirSync(oracleImages).find((f) => /^mountpoints-\d+\.img$/.test(f))!;
    const entries = decodeImageEntries(fs.readFileSync(path.join(oracleImages, file))).entries.map((e) => e.message as Msg);
    const pid = Number((decodeImageEntries(fs.readFileSync(path.join(oracleImages, 'pstree.img'))).entries[0].message as Msg).pid);
    const broken = (name: string, edit: (e: Msg[]) => void) => {
      const d = path.join(tmp, `broken-${name}`);
      fs.cpSync(oracleImages, d, { recursive: true });
      const copy = entries.map((e) => ({ ...e }));
      edit(copy);
      fs.writeFileSync(path.join(d, file), encodeImageEntries('MNTS', copy.map((message) => ({ message }))));
      return d;
    };
    const expectRefused = async (images: string, opts: { root?: string; ext?: boolean }, message: RegExp) => {
      const external = opts.ext === false ? parseExternal(['mnt[devnull]:/dev/null']) : restoreExternal;
      let err: unknown;
      try {
        await restore({ imagesDir: images, detach: true, ...(opts.root ? { root: opts.root } : {}), external });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RestoreError);
      expect((err as Error).message).toMatch(message);
      expect(isAlive(pid)).toBe(false);
    };
    const procAt = entries.findIndex((e) => e.mountpoint === '/proc');
    await expectRefused(broken('fstype', (e) => { e[procAt].fstype = 99; }), { root: oracleRoot }, new RegExp(`file ${file}, record ${procAt}, field fstype`));
    await expectRefused(broken('parent', (e) => { e[procAt].parent_mnt_id = 4242; }), { root: oracleRoot }, new RegExp(`file ${file}, record ${procAt}, field parent_mnt_id`));
    await expectRefused(broken('mountpoint', (e) => { e[procAt].mountpoint = 'proc'; }), { root: oracleRoot }, new RegExp(`file ${file}, record ${procAt}, field mountpoint`));
    await expectRefused(oracleImages, {}, new RegExp(`root directory must be given .*file ${file}.*hint: restore with --root`));
    const garbage = broken('garbage', () => undefined);
    fs.writeFileSync(path.join(garbage, file), Buffer.concat([fs.readFileSync(path.join(garbage, file)).subarray(0, 20), Buffer.from('not protobuf at all')]));
    await expectRefused(garbage, { root: oracleRoot }, new RegExp(`cannot decode it: .*\\(file ${file}\\)`));
    // A file on a mount the image does not have.
    const strayFile = broken('file-mnt', () => undefined);
    const files = decodeImageEntries(fs.readFileSync(path.join(strayFile, 'files.img'))).entries.map((e) => e.message as Msg);
    const dataAt = files.findIndex((f) => (f.reg as Msg | undefined)?.name === '/tmp/work/data');
    (files[dataAt].reg as Msg).mnt_id = 4242;
    fs.writeFileSync(path.join(strayFile, 'files.img'), encodeImageEntries('FILES', files.map((message) => ({ message }))));
    await expectRefused(strayFile, { root: oracleRoot }, new RegExp(`file /tmp/work/data is on mount 4242, which ${file} does not have \\(file files.img, record ${dataAt}, field reg.mnt_id\\)`));
    const extAt = entries.findIndex((e) => e.ext_key === 'extkey');
    await expectRefused(oracleImages, { root: oracleRoot, ext: false }, new RegExp(`key 'extkey', which is not given \\(file ${file}, record ${extAt}, field ext_key\\)`));
    // Fails after the task was created (the bind source is missing): it is killed, nothing stays mounted on the host.
    const stagingBefore = fs.readdirSync('/tmp').filter((f) => f.startsWith('criu-ts-root-')).sort();
    let err: unknown;
    try {
      await restore({ imagesDir: oracleImages, detach: true, root: oracleRoot, external: parseExternal(['mnt[extkey]:' + path.join(tmp, 'no-such-dir'), 'mnt[devnull]:/dev/null']) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RestoreError);
    expect((err as Error).message).toMatch(new RegExp(`binding .*no-such-dir failed with errno 2 \\(mount \\d+ at /ext\\).*file ${file}, record ${extAt}`));
    await waitPidGone(pid);
    expect(fs.readdirSync('/tmp').filter((f) => f.startsWith('criu-ts-root-')).sort()).toEqual(stagingBefore);
  });

  it('a bind mount from outside the namespace that is not declared external is refused at dump, the task runs on untraced', async () => {
    const v = await startMntns('refused');
    let err: unknown;
    try {
      await dump({ pid: v.pid, imagesDir: path.join(tmp, 'refused-img'), external: parseExternal(['mnt[/proc/uptime]:devnull']) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DumpError);
    expect((err as Error).message).toMatch(new RegExp(`task ${v.pid}: mount \\d+ at /ext \\(\\w+, source .*\\) is a bind mount from outside the mount namespace.*hint: declare it external: --external mnt\\[/ext\\]:KEY`));
    expect(tracerOf(v.pid)).toBe(0);
    expect(await verdict(v)).toBe('PASS mntns');
  });

  it('a child in another mount namespace than the root task\'s is refused at dump, the tree runs on untraced', async () => {
    const v = startDetached('sh', ['-c', 'unshare -m sleep 1000 & echo child $!; wait']);
    started.push(v);
    const m = await waitFor('the child', () => /child (\d+)/.exec(readLog(v)) ?? undefined);
    const child = Number(m[1]);
    started.push({ pid: child, log: v.log });
    await waitFor('the child in its own mount namespace', () => fs.readlinkSync(`/proc/${child}/ns/mnt`) !== fs.readlinkSync('/proc/self/ns/mnt'));
    let err: unknown;
    try {
      await dump({ pid: v.pid, imagesDir: path.join(tmp, 'nested-img') });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DumpError);
    expect((err as Error).message).toMatch(new RegExp(`task ${child}: its mount namespace \\(mnt:\\[\\d+\\]\\) is not the one of the root task ${v.pid} .*nested mount namespaces are not supported yet`));
    for (const pid of [v.pid, child]) {
      expect(isAlive(pid)).toBe(true);
      expect(tracerOf(pid)).toBe(0);
    }
  });
});
