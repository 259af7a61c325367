import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sys } from '@criu/sys';
import { decodeMessage, encodeMessage, readImageFile, type Msg } from '@criu/images';
import { FrozenTask } from '../../../packages/core/src/infect/frozen-task';
import { x86_64 } from '../src';
import type { Arch } from '../../../packages/core/src/arch/types';
import {
  GP_REGS_SIZE, ThreadStateError, XFEATURE, dumpThreadInfo, fixupSyscallRestart, getReg, gpregsBytes, gpregsEntry,
  readXsaveLayout, setReg, xsaveLayout, buildSigframe, sigframeAddrBelow, sigreturnRsp,
} from '../src';
import { blockedSyscall, buildDir, buildFixture, isAlive, killProc, readLog, startDetached, symbol, waitFor, type Proc } from './helpers/procs';
import { sigreturnInto } from './helpers/sigreturn';

const arch = (x86_64 satisfies Arch);
const CRIU = process.env.CRIU_ORACLE || '/var/tmp/criu-oracle/bin/criu';
const hasAvx512 = /\bavx512f\b/.test(fs.readFileSync('/proc/cpuinfo', 'latin1'));
const started: Proc[] = [];
afterAll(() => started.forEach(killProc));

/** Byte j of vector register i in the xstate fixture. */
const vecByte = (i: number, j: number) => ((i * 64 + j) * 7 + 1) & 0xff;
const vecBytes = (i: number, from: number, to: number) => Buffer.from(Array.from({ length: to - from }, (_, k) => vecByte(i, from + k)));
const kValue = (i: number) => BigInt.asUintN(64, (0x0101010101010101n * BigInt(i + 1)) ^ 0xa5a5000000005a5an);
const gprValue = (i: number) => BigInt.asUintN(64, 0x1000000000000001n * BigInt(i + 1) + 0x0000babe0000cafen);
const GPR_ORDER = ['bx', 'bp', 'r13', 'r14', 'r15', 'r8', 'r9', 'r10', 'r11', 'cx', 'dx'];

function u32Buf(v: unknown): Buffer {
  const a = v as number[];
  const b = Buffer.alloc(a.length * 4);
  a.forEach((x, i) => b.writeUInt32LE(x, i * 4));
  return b;
}
function u64Buf(v: unknown): Buffer {
  const a = v as bigint[];
  const b = Buffer.alloc(a.length * 8);
  a.forEach((x, i) => b.writeBigUInt64LE(x, i * 8));
  return b;
}

async function startXstate(): Promise<{ p: Proc; exe: string }> {
  const exe = buildFixture('xstate');
  const p = startDetached(exe);
  started.push(p);
  await waitFor('xstate SPINNING', () => /SPINNING/.test(readLog(p)));
  await new Promise((r) => setTimeout(r, 50));
  return { p, exe };
}

function checkFixtureValues(ti: Msg): void {
  const gp = ti.gpregs as Msg;
  GPR_ORDER.forEach((r, i) => expect(gp[r]).toBe(gprValue(i)));
  expect(gp.r12).toBe(0n);
  expect(gp.ax).toBe(0x1234567887654321n);
  expect(gp.mode).toBe(1);
  const fp = ti.fpregs as Msg;
  const nvec = hasAvx512 ? 32 : 16;
  const xmm = u32Buf(fp.xmm_space);
  for (let i = 0; i < 16; i++) expect(xmm.subarray(i * 16, i * 16 + 16)).toEqual(vecBytes(i, 0, 16));
  // st0 = pi as an 80-bit extended: mantissa c90fdaa2_2168c235, exponent 0x4000.
  const st = u32Buf(fp.st_space);
  expect(st.readBigUInt64LE(0)).toBe(0xc90fdaa22168c235n);
  expect(st.readUInt16LE(8)).toBe(0x4000);
  const x = fp.xsave as Msg;
  expect(x).toBeDefined();
  const bv = x.xstate_bv as bigint;
  expect(bv & 0x7n).toBe(0x7n);
  const ymmh = u32Buf(x.ymmh_space);
  for (let i = 0; i < 16; i++) expect(ymmh.subarray(i * 16, i * 16 + 16)).toEqual(vecBytes(i, 16, 32));
  if (nvec === 32) {
    expect(bv & 0xe0n).toBe(0xe0n);
    expect(x.opmask_reg).toEqual(Array.from({ length: 8 }, (_, i) => kValue(i)));
    const upper = u64Buf(x.zmm_upper);
    for (let i = 0; i < 16; i++) expect(upper.subarray(i * 32, i * 32 + 32)).toEqual(vecBytes(i, 32, 64));
    const hi16 = u64Buf(x.hi16_zmm);
    for (let i = 16; i < 32; i++) expect(hi16.subarray((i - 16) * 64, (i - 15) * 64)).toEqual(vecBytes(i, 0, 64));
  }
}

describe('XSAVE layout', () => {
  it('reads CPUID leaf 0xD the same way from /dev/cpu/N/cpuid and from the C helper', () => {
    const dev = readXsaveLayout('cpuid-device');
    const helper = readXsaveLayout('cpuid-helper');
    expect(helper.supported).toBe(dev.supported);
    expect(helper.maxSize).toBe(dev.maxSize);
    expect([...helper.components.values()]).toEqual([...dev.components.values()]);
    // AVX state follows the legacy area and the header in every XSAVE implementation.
    expect(dev.components.get(XFEATURE.YMM)).toEqual({ feature: XFEATURE.YMM, offset: 576, size: 256 });
    if (hasAvx512) {
      for (const f of [XFEATURE.OPMASK, XFEATURE.ZMM_Hi256, XFEATURE.Hi16_ZMM]) expect(dev.components.has(f)).toBe(true);
      expect(dev.components.get(XFEATURE.Hi16_ZMM)!.size).toBe(1024);
    }
    const ends = [...dev.components.values()].map((c) => c.offset + c.size);
    expect(Math.max(...ends)).toBe(dev.maxSize);
  });
});

describe('dumpThreadInfo (real processes)', () => {
  it('records gp, x87/SSE and AVX/AVX-512 registers and TLS; the oracle writes the same', async () => {
    const { p, exe } = await startXstate();
    const task = FrozenTask.freeze(p.pid, arch);
    const savedCopy = Buffer.from(task.savedRegs);
    let ti: Msg;
    try {
      ti = dumpThreadInfo(p.pid, task.savedRegs, { clearTidAddr: 0x1234n });
    } finally {
      task.release();
    }
    expect(task.savedRegs).toEqual(savedCopy);
    expect(ti.clear_tid_addr).toBe(0x1234n);
    checkFixtureValues(ti);
    const loopStart = symbol(exe, 'spin_loop_start');
    const loopEnd = symbol(exe, 'spin_loop_end');
    const ip = (ti.gpregs as Msg).ip as bigint;
    expect(ip >= loopStart && ip < loopEnd).toBe(true);
    expect(ti.tls).toHaveLength(3);
    expect((ti.tls as Msg[]).map((d) => d.entry_number)).toEqual([12, 13, 14]);

    // A valid record: it encodes, and decodes to the same thing.
    const bytes = encodeMessage('thread_info_x86', ti);
    expect(decodeMessage('thread_info_x86', bytes)).toEqual(decodeMessage('thread_info_x86', encodeMessage('thread_info_x86', decodeMessage('thread_info_x86', bytes))));
    const back = decodeMessage('thread_info_x86', bytes);
    expect((back.gpregs as Msg).r15).toBe((ti.gpregs as Msg).r15);
    expect(((back.fpregs as Msg).xsave as Msg).xstate_bv).toBe(((ti.fpregs as Msg).xsave as Msg).xstate_bv);

    // The oracle dumps the same (still running) process.
    const dir = fs.mkdtempSync(path.join(buildDir, 'oracle-'));
    execFileSync(CRIU, ['dump', '--no-default-config', '--leave-running', '-t', String(p.pid), '-D', dir, '-o', 'dump.log', '-v4'], { stdio: 'pipe' });
    const img = await readImageFile(path.join(dir, `core-${p.pid}.img`));
    const oracle = (img.entries[0].message as Msg).thread_info as Msg;
    const ours = decodeMessage('thread_info_x86', bytes);
    expect(ours.fpregs).toEqual(oracle.fpregs);
    expect(ours.tls).toEqual(oracle.tls);
    const { ip: oip, ...ogp } = oracle.gpregs as Msg;
    const { ip: mip, ...mgp } = ours.gpregs as Msg;
    expect(mgp).toEqual(ogp);
    expect((oip as bigint) >= loopStart && (oip as bigint) < loopEnd).toBe(true);
    void mip;

    // Freezing, dumping and releasing changed nothing: the fixture's own check passes.
    process.kill(p.pid, 'SIGTERM');
    await waitFor('xstate verdict', () => /(PASS|FAIL) xstate/.exec(readLog(p)));
    expect(readLog(p)).toMatch(/PASS xstate/);
  });

  it('rejects bad register buffers with a typed error', () => {
    expect(() => dumpThreadInfo(1, Buffer.alloc(100))).toThrow(ThreadStateError);
    expect(() => dumpThreadInfo(1, Buffer.alloc(68))).toThrow(/compat/);
  });

  it('round-trips NT_PRSTATUS bytes through user_x86_regs_entry', () => {
    const b = Buffer.alloc(GP_REGS_SIZE);
    for (let i = 0; i < GP_REGS_SIZE / 8; i++) b.writeBigUInt64LE(0x0101010101010101n * BigInt(i + 1), i * 8);
    expect(gpregsBytes(gpregsEntry(b))).toEqual(b);
  });
});

describe('syscall restart at dump time (real processes)', () => {
  async function frozenIn(mode: string): Promise<{ p: Proc; task: FrozenTask }> {
    const p = startDetached(buildFixture('sysblock'), [mode]);
    started.push(p);
    await waitFor('sysblock ENTER', () => /ENTER/.test(readLog(p)));
    const nr = { read: 0, nanosleep: 35, pause: 34 }[mode]!;
    await waitFor(`blocked in syscall ${nr}`, () => blockedSyscall(p.pid) === nr);
    return { p, task: FrozenTask.freeze(p.pid, arch) };
  }

  const cases: Array<{ mode: string; nr: number; ret: bigint; reexec: boolean }> = [
    { mode: 'read', nr: 0, ret: -512n, reexec: true }, // -ERESTARTSYS
    { mode: 'pause', nr: 34, ret: -514n, reexec: true }, // -ERESTARTNOHAND
    { mode: 'nanosleep', nr: 35, ret: -516n, reexec: false }, // -ERESTART_RESTARTBLOCK
  ];

  for (const c of cases) {
    it(`${c.mode}: ${c.reexec ? 're-executes the syscall' : 'returns -EINTR'} from the recorded registers`, async () => {
      const { p, task } = await frozenIn(c.mode);
      const saved = Buffer.from(task.savedRegs);
      expect(BigInt.asIntN(64, getReg(saved, 'rax'))).toBe(c.ret);
      expect(getReg(saved, 'orig_rax')).toBe(BigInt(c.nr));
      const ti = dumpThreadInfo(p.pid, task.savedRegs);
      expect(task.savedRegs).toEqual(saved); // fixed up on a copy
      const gp = ti.gpregs as Msg;
      if (c.reexec) {
        expect(gp.ax).toBe(BigInt(c.nr));
        expect(gp.ip).toBe(getReg(saved, 'rip') - 2n);
        expect(sys.readMemory(p.pid, gp.ip as bigint, 2)).toEqual(Buffer.from([0x0f, 0x05])); // `syscall`
      } else {
        expect(gp.ax).toBe(BigInt.asUintN(64, -4n));
        expect(gp.ip).toBe(getReg(saved, 'rip'));
      }
      expect(gp.orig_ax).toBe(BigInt(c.nr));

      // Resume the task from the recorded registers through a real rt_sigreturn.
      const frameAddr = sigframeAddrBelow(getReg(saved, 'rsp'), ti);
      const frame = buildSigframe(ti, task.savedSigmask, { frameAddr });
      sigreturnInto(task, frame, frameAddr, sigreturnRsp(frameAddr));
      if (c.reexec) {
        // Back in the same syscall, with the same arguments...
        await new Promise((r) => setTimeout(r, 100));
        expect(readLog(p)).not.toMatch(/RETURNED/);
        await waitFor(`blocked again in syscall ${c.nr}`, () => blockedSyscall(p.pid) === c.nr);
        process.kill(p.pid, 'SIGUSR1'); // the handler writes 'x' into the pipe
        const m = await waitFor('RETURNED', () => /RETURNED (-?\d+) (\d+) (\S)/.exec(readLog(p)));
        if (c.mode === 'read') expect([m[1], m[2], m[3]]).toEqual(['1', '0', 'x']); // ...which then completes
        else expect([m[1], m[2]]).toEqual(['-1', '4']); // pause: EINTR after the handler
      } else {
        const m = await waitFor('RETURNED', () => /RETURNED (-?\d+) (\d+)/.exec(readLog(p)));
        expect([m[1], m[2]]).toEqual(['-1', '4']);
      }
      await waitFor('exit', () => !isAlive(p.pid));
    });
  }

  it('leaves the registers alone when the thread was not in a syscall', () => {
    const b = Buffer.alloc(GP_REGS_SIZE);
    setReg(b, 'orig_rax', -1n);
    setReg(b, 'rax', -512n);
    setReg(b, 'rip', 0x1000n);
    expect(fixupSyscallRestart(b)).toEqual(b);
    setReg(b, 'orig_rax', 0n);
    setReg(b, 'rax', 5n); // a syscall that completed
    expect(fixupSyscallRestart(b)).toEqual(b);
  });

  it('the machine XSAVE layout is cached', () => {
    expect(xsaveLayout()).toBe(xsaveLayout());
  });
});
