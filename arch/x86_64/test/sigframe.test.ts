import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImageFile, type Msg } from '@criu/images';
import { FrozenTask } from '../../../packages/core/src/infect/frozen-task';
import { x86_64 } from '../src';
import type { Arch } from '../../../packages/core/src/arch/types';
import {
  ARCH_SET_FS, ARCH_SET_GS, FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2, RT_SIGFRAME, RT_SIGFRAME_SIZE, SIGCONTEXT, SigframeError,
  UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS, XFEATURE, buildSigframe, dumpThreadInfo, getReg, sigframeAddrBelow,
  sigframeLayout, sigreturnRsp, stateOutsideSigframe, userDescBytes, xsaveLayout,
} from '../src';
import { buildDir, buildFixture, isAlive, killProc, readLog, startDetached, waitFor, type Proc } from './helpers/procs';
import { sigreturnInto } from './helpers/sigreturn';

const arch = (x86_64 satisfies Arch);
const MAGIC = 0x1234567887654321n;
const CRIU = process.env.CRIU_ORACLE || '/var/tmp/criu-oracle/bin/criu';
const started: Proc[] = [];
afterAll(() => started.forEach(killProc));

async function frozenXstate(args: string[] = []): Promise<{ p: Proc; task: FrozenTask; ti: Msg }> {
  const p = startDetached(buildFixture('xstate'), args);
  started.push(p);
  await waitFor('xstate SPINNING', () => /SPINNING/.test(readLog(p)));
  await new Promise((r) => setTimeout(r, 50));
  const task = FrozenTask.freeze(p.pid, arch);
  try {
    return { p, task, ti: dumpThreadInfo(p.pid, task.savedRegs) };
  } catch (e) {
    task.release();
    throw e;
  }
}

/**
 * Restores `ti` into the task the way a restorer would: starting from a thread whose fs_base is
 * not the dumped one (0, like a fresh clone without CLONE_SETTLS), it sets fs/gs base with
 * arch_prctl (unless `skipOutside`), then rt_sigreturns into the built frame.
 */
function restoreThrough(task: FrozenTask, ti: Msg, skipOutside = false): void {
  const frameAddr = sigframeAddrBelow(getReg(task.savedRegs, 'rsp'), ti);
  const frame = buildSigframe(ti, task.savedSigmask, { frameAddr });
  sigreturnInto(task, frame, frameAddr, sigreturnRsp(frameAddr), {
    initialFsBase: 0n,
    archPrctl: skipOutside ? [] : stateOutsideSigframe(ti).archPrctl,
  });
}

describe('struct layout', () => {
  it('matches the kernel uapi headers', () => {
    const exe = `${buildDir}/layout`;
    execFileSync('cc', ['-o', exe, `${__dirname}/fixtures/layout.c`]);
    const out = execFileSync(exe).toString();
    const val = (k: string) => Number(new RegExp(`(?:^|\\s)${k} (\\d+)`, 'm').exec(out)![1]);
    // rt_sigframe = pretcode + ucontext + siginfo (128)
    expect(8 + val('ucontext') + 128).toBe(RT_SIGFRAME_SIZE);
    expect(RT_SIGFRAME.ucFlags - RT_SIGFRAME.uc).toBe(val('uc_flags'));
    expect(RT_SIGFRAME.ucLink - RT_SIGFRAME.uc).toBe(val('uc_link'));
    expect(RT_SIGFRAME.ucStack - RT_SIGFRAME.uc).toBe(val('uc_stack'));
    expect(RT_SIGFRAME.ucMcontext - RT_SIGFRAME.uc).toBe(val('uc_mcontext'));
    expect(RT_SIGFRAME.ucSigmask - RT_SIGFRAME.uc).toBe(val('uc_sigmask'));
    expect(RT_SIGFRAME.info).toBe(RT_SIGFRAME.uc + val('ucontext'));
    expect(val('ss_flags')).toBe(8);
    expect(val('ss_size')).toBe(16);
    for (const [k, off] of Object.entries(SIGCONTEXT)) {
      if (k === 'size') expect(off).toBe(val('sigcontext'));
      else expect([k, off]).toEqual([k, val(`sc_${k}`)]);
    }
    expect(val('sw_reserved')).toBe(464);
    expect(val('magic1')).toBe(FP_XSTATE_MAGIC1);
    expect(val('magic2')).toBe(FP_XSTATE_MAGIC2);
  });
});

describe('buildSigframe', () => {
  let ti: Msg;
  beforeAll(async () => {
    const f = await frozenXstate();
    ti = f.ti;
    f.task.release();
  });

  it('lays out the frame, the sigcontext and a 64-byte aligned XSAVE area with both magics', () => {
    const frameAddr = 0x7ffd00001008n; // not 64-aligned: the XSAVE area gets padded up
    const lay = sigframeLayout(ti, { frameAddr });
    const b = buildSigframe(ti, 0x4001n, { frameAddr });
    expect(b.length).toBe(lay.size);
    expect((frameAddr + BigInt(lay.fpstateOffset)) % 64n).toBe(0n);
    expect(lay.fpstateOffset).toBeGreaterThanOrEqual(RT_SIGFRAME_SIZE);
    expect(lay.rsp).toBe(frameAddr + 8n);
    expect(b.readBigUInt64LE(RT_SIGFRAME.ucFlags)).toBe(UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS);
    expect(b.readInt32LE(RT_SIGFRAME.ucStack + 8)).toBe(2); // SS_DISABLE by default
    expect(b.readBigUInt64LE(RT_SIGFRAME.ucSigmask)).toBe(0x4001n);
    const gp = ti.gpregs as Msg;
    const mc = RT_SIGFRAME.ucMcontext;
    expect(b.readBigUInt64LE(mc + SIGCONTEXT.r12)).toBe(gp.r12);
    expect(b.readBigUInt64LE(mc + SIGCONTEXT.rip)).toBe(gp.ip);
    expect(b.readBigUInt64LE(mc + SIGCONTEXT.rsp)).toBe(gp.sp);
    expect(b.readUInt16LE(mc + SIGCONTEXT.cs)).toBe(0x33);
    expect(b.readUInt16LE(mc + SIGCONTEXT.ss)).toBe(0x2b);
    expect(b.readBigUInt64LE(mc + SIGCONTEXT.fpstate)).toBe(frameAddr + BigInt(lay.fpstateOffset));
    const fp = lay.fpstateOffset;
    expect(b.readUInt32LE(fp + 464)).toBe(FP_XSTATE_MAGIC1);
    expect(b.readUInt32LE(fp + 468)).toBe(lay.xstateSize + 4);
    expect(b.readBigUInt64LE(fp + 472)).toBe(lay.xfeatures);
    expect(b.readUInt32LE(fp + 480)).toBe(lay.xstateSize);
    expect(b.readUInt32LE(fp + lay.xstateSize)).toBe(FP_XSTATE_MAGIC2);
    expect(b.readBigUInt64LE(fp + 520)).toBe(0n); // xcomp_bv: standard format
    const layout = xsaveLayout();
    const ymm = layout.components.get(XFEATURE.YMM)!;
    expect(b.readUInt32LE(fp + ymm.offset)).toBe(((ti.fpregs as Msg).xsave as Msg & { ymmh_space: number[] }).ymmh_space[0]);
    const ends = [...layout.components.values()].filter((c) => lay.xfeatures & (1n << BigInt(c.feature))).map((c) => c.offset + c.size);
    expect(lay.xstateSize).toBe(Math.max(576, ...ends));
  });

  it('places a frame below the red zone', () => {
    const sp = 0x7ffd00010000n;
    const addr = sigframeAddrBelow(sp, ti);
    const lay = sigframeLayout(ti, { frameAddr: addr });
    expect(addr % 64n).toBe(0n);
    expect(addr + BigInt(lay.size)).toBeLessThanOrEqual(sp - 128n);
    expect(addr + BigInt(lay.size)).toBeGreaterThan(sp - 128n - 64n);
  });

  it('refuses what the kernel could not restore, with typed errors', () => {
    expect(() => buildSigframe(ti, 0n, { frameAddr: 0x1004n })).toThrow(SigframeError);
    expect(() => buildSigframe({ ...ti, gpregs: undefined }, 0n, { frameAddr: 0x1000n })).toThrow(/gpregs/);
    expect(() => buildSigframe({ ...ti, gpregs: { ...(ti.gpregs as Msg), r12: 'x' } }, 0n, { frameAddr: 0x1000n })).toThrow(/gpregs.r12/);
    const fp = ti.fpregs as Msg;
    const xs = fp.xsave as Msg;
    expect(() => buildSigframe({ ...ti, fpregs: { ...fp, xmm_space: [1, 2] } }, 0n, { frameAddr: 0x1000n })).toThrow(/xmm_space/);
    expect(() => buildSigframe({ ...ti, fpregs: { ...fp, xsave: { ...xs, ymmh_space: [] } } }, 0n, { frameAddr: 0x1000n })).toThrow(/ymmh_space/);
    // AVX state in use but a kernel that does not allow it: no silent fallback to FP/SSE only.
    expect(() => buildSigframe(ti, 0n, { frameAddr: 0x1000n, permittedFeatures: 3n })).toThrow(/cannot restore XSAVE feature 2/);
  });

  it('lists fs_base/gs_base and the used TLS entries as state outside the frame', () => {
    const out = stateOutsideSigframe(ti);
    const gp = ti.gpregs as Msg;
    expect(out.archPrctl).toEqual([
      { name: 'ARCH_SET_FS', code: ARCH_SET_FS, value: gp.fs_base },
      { name: 'ARCH_SET_GS', code: ARCH_SET_GS, value: gp.gs_base },
    ]);
    expect(out.tls).toEqual([]); // the fixture's TLS slots are empty (no set_thread_area on x86_64)
    const used = { entry_number: 12, base_addr: 0x1000, limit: 0xfffff, seg_32bit: true, contents_h: false, contents_l: false, read_exec_only: false, limit_in_pages: true, seg_not_present: false, usable: true };
    const o2 = stateOutsideSigframe({ ...ti, tls: [...(ti.tls as Msg[]).slice(1), used] });
    expect(o2.tls).toEqual([userDescBytes(used)]);
    expect(o2.tls[0].readUInt32LE(12)).toBe(1 | 16 | 64);
  });
});

describe('rt_sigreturn into a built frame (real processes)', () => {
  it('resumes the fixture with r12 changed and every other register, x87 and AVX/AVX-512 state intact', async () => {
    const { p, task, ti } = await frozenXstate();
    (ti.gpregs as Msg).r12 = MAGIC;
    restoreThrough(task, ti);
    await waitFor('VERDICT', () => /VERDICT .*/.exec(readLog(p)));
    expect(readLog(p)).toMatch(/VERDICT PASS/);
    await waitFor('exit', () => !isAlive(p.pid));
  });

  it('works for a thread that uses only AVX (ymm) on this CPU too', async () => {
    const { p, task, ti } = await frozenXstate(['noavx512']);
    (ti.gpregs as Msg).r12 = MAGIC;
    restoreThrough(task, ti);
    await waitFor('VERDICT', () => /VERDICT .*/.exec(readLog(p)));
    expect(readLog(p)).toMatch(/avx512=0[\s\S]*VERDICT PASS/);
  });

  it('restores from the oracle CRIU\'s own core image record', async () => {
    const p = startDetached(buildFixture('xstate'));
    started.push(p);
    await waitFor('xstate SPINNING', () => /SPINNING/.test(readLog(p)));
    await new Promise((r) => setTimeout(r, 50));
    const dir = fs.mkdtempSync(path.join(buildDir, 'oracle-'));
    execFileSync(CRIU, ['dump', '--no-default-config', '--leave-running', '-t', String(p.pid), '-D', dir, '-o', 'dump.log', '-v4'], { stdio: 'pipe' });
    const core = (await readImageFile(path.join(dir, `core-${p.pid}.img`))).entries[0].message as Msg;
    const ti = core.thread_info as Msg;
    const task = FrozenTask.freeze(p.pid, arch);
    (ti.gpregs as Msg).r12 = MAGIC;
    restoreThrough(task, ti);
    await waitFor('VERDICT', () => /VERDICT .*/.exec(readLog(p)));
    expect(readLog(p)).toMatch(/VERDICT PASS/);
  });

  it('the vector state comes from the frame: a changed upper zmm half is what the fixture sees', async () => {
    const { p, task, ti } = await frozenXstate();
    (ti.gpregs as Msg).r12 = MAGIC;
    const xs = (ti.fpregs as Msg).xsave as Msg;
    const hasAvx512 = (xs.zmm_upper as bigint[]).length > 0;
    if (hasAvx512) (xs.hi16_zmm as bigint[])[8 * 3] ^= 1n; // zmm19, low byte
    else (xs.ymmh_space as number[])[4 * 3] ^= 1; // ymm3, byte 16
    restoreThrough(task, ti);
    const m = await waitFor('VERDICT', () => /VERDICT .*/.exec(readLog(p)));
    expect(m[0]).toBe(`VERDICT FAIL vector register ${hasAvx512 ? 19 : 3}`);
  });

  it('fs_base is not in the frame: without the arch_prctl steps the fixture dies on its first TLS access', async () => {
    const { p, task, ti } = await frozenXstate();
    (ti.gpregs as Msg).r12 = MAGIC;
    restoreThrough(task, ti, true);
    await waitFor('exit', () => !isAlive(p.pid));
    expect(readLog(p)).not.toMatch(/VERDICT/);
  });
});
