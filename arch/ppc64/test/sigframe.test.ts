import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { SYSCALLS_PPC64 } from '@criu/sys';
import { decodeMessage, encodeMessage, type Msg } from '@criu/images';
import { ppc64 } from '../src/infect';
import { GP_REGS_SIZE, PT, getReg, setReg } from '../src/regs';
import { parasiteElfPath, restoreHelperPath } from '../src/parasite';
import { markVectorUse } from '../src/thread-info';
import {
  ELF_NFPREG, ELF_NVRREG, MSR, RT_SIGFRAME_SIZE, SIGCONTEXT, SS_DISABLE, SS_ONSTACK, SigframeError, UCONTEXT, VMX_AREA_OFFSET,
  VSCR_INIT, VSX_AREA_OFFSET, buildSigframe, vectorUse,
} from '../src/sigframe';
import { CROSS, crossCompile } from './helpers/cross';

const FRAME = 0x7fff12340000n;
const MSR_USER = 0x800000000000f033n; // SF | EE | PR | FP | ME | IR | DR | RI | LE: a ppc64le user MSR without VEC/VSX

/** A thread_info_ppc64 with every value distinct; `vec` chooses whether VMX/VSX hold data. */
function threadInfo(vec: { vmx: boolean; vsx: boolean } = { vmx: true, vsx: true }, msr = MSR_USER | MSR.VEC | MSR.VSX): Msg {
  const vrregs = Array.from({ length: 66 }, (_, i) => (vec.vmx ? 0x5100000000000000n + BigInt(i) : 0n));
  if (!vec.vmx) [vrregs[64], vrregs[65]] = VSCR_INIT;
  return {
    clear_tid_addr: 0x7fffa000n,
    gpregs: {
      gpr: Array.from({ length: 32 }, (_, i) => 0x1000n + BigInt(i)),
      nip: 0x10000a44n, msr, orig_gpr3: 0x77n, ctr: 0xc7n, link: 0x10000b00n, xer: 0x20000000n, ccr: 0x24002482n, trap: 0n,
    },
    fpstate: { fpregs: Array.from({ length: 33 }, (_, i) => 0x3ff0000000000000n + BigInt(i)) },
    vrstate: { vrregs, vrsave: vec.vmx ? 0xfedcba98 : 0 },
    vsxstate: { vsxregs: Array.from({ length: 32 }, (_, i) => (vec.vsx ? 0xa500000000000000n + BigInt(i) : 0n)) },
  };
}

describe('ppc64 rt_sigframe layout (checked against the kernel uapi headers)', () => {
  it('struct ucontext / struct sigcontext offsets and sizes, the vector area inside vmx_reserve', () => {
    const src = [
      '#include <stddef.h>', '#include <asm/ptrace.h>', '#include <asm/elf.h>', '#include <asm/sigcontext.h>', '#include <asm/ucontext.h>',
      `_Static_assert(offsetof(struct ucontext, uc_flags) == ${UCONTEXT.flags}, "uc_flags");`,
      `_Static_assert(offsetof(struct ucontext, uc_link) == ${UCONTEXT.link}, "uc_link");`,
      `_Static_assert(offsetof(struct ucontext, uc_stack) == ${UCONTEXT.stack}, "uc_stack");`,
      `_Static_assert(offsetof(stack_t, ss_sp) == 0 && offsetof(stack_t, ss_flags) == 8 && offsetof(stack_t, ss_size) == 16, "stack_t");`,
      `_Static_assert(offsetof(struct ucontext, uc_sigmask) == ${UCONTEXT.sigmask}, "uc_sigmask");`,
      '_Static_assert(sizeof(sigset_t) == 8, "64-bit kernel sigset");',
      `_Static_assert(offsetof(struct ucontext, uc_mcontext) == ${UCONTEXT.mcontext}, "uc_mcontext");`,
      `_Static_assert(sizeof(struct ucontext) == ${UCONTEXT.size}, "sizeof ucontext");`,
      `_Static_assert(offsetof(struct sigcontext, signal) == ${SIGCONTEXT.signal}, "signal");`,
      `_Static_assert(offsetof(struct sigcontext, handler) == ${SIGCONTEXT.handler}, "handler");`,
      `_Static_assert(offsetof(struct sigcontext, oldmask) == ${SIGCONTEXT.oldmask}, "oldmask");`,
      `_Static_assert(offsetof(struct sigcontext, regs) == ${SIGCONTEXT.regs}, "regs");`,
      `_Static_assert(offsetof(struct sigcontext, gp_regs) == ${SIGCONTEXT.gpRegs}, "gp_regs");`,
      `_Static_assert(sizeof(((struct sigcontext *)0)->gp_regs) == ${GP_REGS_SIZE}, "gp_regs size");`,
      `_Static_assert(offsetof(struct sigcontext, fp_regs) == ${SIGCONTEXT.fpRegs}, "fp_regs");`,
      `_Static_assert(ELF_NFPREG == ${ELF_NFPREG} && sizeof(((struct sigcontext *)0)->fp_regs) == ${ELF_NFPREG} * 8, "fp_regs size");`,
      `_Static_assert(offsetof(struct sigcontext, v_regs) == ${SIGCONTEXT.vRegs}, "v_regs");`,
      `_Static_assert(offsetof(struct sigcontext, vmx_reserve) == ${SIGCONTEXT.vmxReserve}, "vmx_reserve");`,
      `_Static_assert(ELF_NVRREG == ${ELF_NVRREG}, "ELF_NVRREG");`,
      '_Static_assert(sizeof(elf_vrreg_t) == 16, "elf_vrreg_t");',
      `_Static_assert(sizeof(struct sigcontext) == ${SIGCONTEXT.size}, "sizeof sigcontext");`,
      // The kernel's v_regs = 16-byte aligned start of vmx_reserve (the ucontext is 16-aligned in its
      // rt_sigframe); VR0-31 + VSCR + VRSAVE, then the 32 VSX doublewords, all inside vmx_reserve.
      `_Static_assert(((offsetof(struct ucontext, uc_mcontext) + offsetof(struct sigcontext, vmx_reserve) + 15) & ~15) == ${VMX_AREA_OFFSET}, "v_regs area");`,
      `_Static_assert(${VSX_AREA_OFFSET} == ${VMX_AREA_OFFSET} + ELF_NVRREG * 16, "vsx area");`,
      `_Static_assert(${VSX_AREA_OFFSET} + 32 * 8 <= sizeof(struct ucontext), "vsx area fits");`,
      `_Static_assert(PT_MSR == ${PT.msr} && PT_NIP == ${PT.nip} && PT_CCR == ${PT.ccr} && PT_TRAP == ${PT.trap}, "pt slots");`,
      '',
    ].join('\n');
    crossCompile('sigframe-layout', src);
    expect(RT_SIGFRAME_SIZE).toBe(1696);
    expect(VMX_AREA_OFFSET % 16).toBe(0);
  });

  it('MSR bits and SS_* flags (kernel headers)', () => {
    crossCompile('msr-bits', [
      '#include <linux/signal.h>',
      `_Static_assert(SS_ONSTACK == ${SS_ONSTACK} && SS_DISABLE == ${SS_DISABLE}, "ss flags");`,
      // arch/powerpc/include/asm/reg.h is not uapi: MSR_VEC = 1 << 25, MSR_VSX = 1 << 23, MSR_FP = 1 << 13.
      '',
    ].join('\n'));
    expect(MSR.VEC).toBe(0x2000000n);
    expect(MSR.VSX).toBe(0x800000n);
    expect(MSR.FP).toBe(0x2000n);
    expect(MSR.TS_MASK).toBe(0x600000000n);
  });
});

describe('ppc64 rt_sigframe contents', () => {
  const mc = UCONTEXT.mcontext;
  const gpAt = (b: Buffer, slot: number) => b.readBigUInt64LE(mc + SIGCONTEXT.gpRegs + slot * 8);

  it('registers, FP, VMX (16-byte aligned v_regs), VRSAVE, VSX, sigmask, no altstack', () => {
    const ti = threadInfo();
    const b = buildSigframe(ti, 0x8000000000004001n, { frameAddr: FRAME });
    expect(b.length).toBe(RT_SIGFRAME_SIZE);
    expect(b.readBigUInt64LE(UCONTEXT.flags)).toBe(0n);
    expect(b.readBigUInt64LE(UCONTEXT.link)).toBe(0n);
    expect(b.readBigUInt64LE(UCONTEXT.stack)).toBe(0n);
    expect(b.readInt32LE(UCONTEXT.stack + 8)).toBe(SS_DISABLE);
    expect(b.readBigUInt64LE(UCONTEXT.sigmask)).toBe(0x8000000000004001n);
    for (let i = 0; i < 32; i++) expect(gpAt(b, i)).toBe(0x1000n + BigInt(i));
    expect(gpAt(b, PT.nip)).toBe(0x10000a44n);
    expect(gpAt(b, PT.msr)).toBe(MSR_USER | MSR.VEC | MSR.VSX);
    expect(gpAt(b, PT.orig_gpr3)).toBe(0x77n);
    expect(gpAt(b, PT.ctr)).toBe(0xc7n);
    expect(gpAt(b, PT.link)).toBe(0x10000b00n);
    expect(gpAt(b, PT.xer)).toBe(0x20000000n);
    expect(gpAt(b, PT.ccr)).toBe(0x24002482n);
    expect(gpAt(b, PT.trap)).toBe(0n);
    expect(b.readBigUInt64LE(mc + SIGCONTEXT.regs)).toBe(FRAME + BigInt(mc + SIGCONTEXT.gpRegs));
    for (let i = 0; i < 33; i++) expect(b.readBigUInt64LE(mc + SIGCONTEXT.fpRegs + i * 8)).toBe(0x3ff0000000000000n + BigInt(i));
    const vregs = b.readBigUInt64LE(mc + SIGCONTEXT.vRegs);
    expect(vregs).toBe(FRAME + BigInt(VMX_AREA_OFFSET));
    expect(vregs % 16n).toBe(0n);
    expect(vregs).toBeGreaterThanOrEqual(FRAME + BigInt(mc + SIGCONTEXT.vmxReserve));
    for (let i = 0; i < 66; i++) expect(b.readBigUInt64LE(VMX_AREA_OFFSET + i * 8)).toBe(0x5100000000000000n + BigInt(i));
    expect(b.readUInt32LE(VMX_AREA_OFFSET + 33 * 16)).toBe(0xfedcba98);
    for (let i = 0; i < 32; i++) expect(b.readBigUInt64LE(VSX_AREA_OFFSET + i * 8)).toBe(0xa500000000000000n + BigInt(i));
    expect(VSX_AREA_OFFSET + 32 * 8).toBeLessThanOrEqual(RT_SIGFRAME_SIZE);
  });

  it('a sigaltstack goes into uc_stack', () => {
    const b = buildSigframe(threadInfo(), 0n, { frameAddr: FRAME, sigaltstack: { sp: 0x7fff0000n, size: 0x10000n, flags: SS_ONSTACK } });
    expect(b.readBigUInt64LE(UCONTEXT.stack)).toBe(0x7fff0000n);
    expect(b.readInt32LE(UCONTEXT.stack + 8)).toBe(SS_ONSTACK);
    expect(b.readBigUInt64LE(UCONTEXT.stack + 16)).toBe(0x10000n);
  });

  it('vector-unit fidelity: the image\'s MSR_VEC / MSR_VSX as recorded; both on (as CRIU writes them) is decided by the state', () => {
    const unitBits = (ti: Msg) => gpAt(buildSigframe(ti, 0n, { frameAddr: FRAME }), PT.msr) & (MSR.VEC | MSR.VSX);
    const zeroFp = (ti: Msg) => { (ti.fpstate as Msg).fpregs = Array.from({ length: 33 }, () => 0n); return ti; };
    // One bit or none: criu-ts wrote the kernel's view; taken as is, whatever the values.
    expect(vectorUse(threadInfo({ vmx: true, vsx: true }, MSR_USER))).toEqual({ vmx: false, vsx: false });
    expect(vectorUse(zeroFp(threadInfo({ vmx: false, vsx: false }, MSR_USER | MSR.VEC)))).toEqual({ vmx: true, vsx: false });
    expect(unitBits(threadInfo({ vmx: true, vsx: true }, MSR_USER | MSR.VEC))).toBe(MSR.VEC);
    expect(unitBits(threadInfo({ vmx: false, vsx: false }, MSR_USER | MSR.VSX))).toBe(MSR.VSX);
    // Both on: never used (all zero, VSCR as the kernel starts it) gets neither.
    const none = zeroFp(threadInfo({ vmx: false, vsx: false }, MSR_USER | MSR.VEC | MSR.VSX));
    expect(vectorUse(none)).toEqual({ vmx: false, vsx: false });
    const b = buildSigframe(none, 0n, { frameAddr: FRAME });
    expect(gpAt(b, PT.msr)).toBe(MSR_USER);
    // v_regs stays set (VRSAVE is loaded from it; the VSX part is addressed through it).
    expect(b.readBigUInt64LE(mc + SIGCONTEXT.vRegs)).toBe(FRAME + BigInt(VMX_AREA_OFFSET));
    // One VR, or only VSCR, away from the never-used state: VMX.
    const oneVr = zeroFp(threadInfo({ vmx: false, vsx: false }, MSR_USER | MSR.VEC | MSR.VSX));
    ((oneVr.vrstate as Msg).vrregs as bigint[])[63] = 1n;
    expect(vectorUse(oneVr)).toEqual({ vmx: true, vsx: false });
    const vscr = zeroFp(threadInfo({ vmx: false, vsx: false }, MSR_USER | MSR.VEC | MSR.VSX));
    ((vscr.vrstate as Msg).vrregs as bigint[])[65] = 0n; // NJ cleared
    expect(vectorUse(vscr).vmx).toBe(true);
    // A low VSX doubleword, or an FPR or FPSCR (scalar VSX code writes those): VSX, and so VMX
    // (the kernel makes a VSX user a VMX user too).
    const oneVsx = zeroFp(threadInfo({ vmx: false, vsx: false }, MSR_USER | MSR.VEC | MSR.VSX));
    ((oneVsx.vsxstate as Msg).vsxregs as bigint[])[31] = 1n;
    expect(vectorUse(oneVsx)).toEqual({ vmx: true, vsx: true });
    for (const i of [0, 32]) {
      const scalar = zeroFp(threadInfo({ vmx: false, vsx: false }, MSR_USER | MSR.VEC | MSR.VSX));
      ((scalar.fpstate as Msg).fpregs as bigint[])[i] = 0x3ff8000000000000n;
      expect(unitBits(scalar)).toBe(MSR.VEC | MSR.VSX);
    }
    // No VMX/VSX in the image at all (a CPU without them): no bits, zeroed area.
    const noUnits = threadInfo({ vmx: true, vsx: true }, MSR_USER | MSR.VEC | MSR.VSX);
    delete noUnits.vrstate;
    delete noUnits.vsxstate;
    const c = buildSigframe(noUnits, 0n, { frameAddr: FRAME });
    expect(gpAt(c, PT.msr) & (MSR.VEC | MSR.VSX)).toBe(0n);
    expect(c.subarray(VMX_AREA_OFFSET, RT_SIGFRAME_SIZE).every((x) => x === 0)).toBe(true);
  });

  it('the dump records the units in use in gpregs.msr (what CRIU\'s restore goes by)', () => {
    for (const vec of [{ vmx: true, vsx: true }, { vmx: true, vsx: false }, { vmx: false, vsx: true }, { vmx: false, vsx: false }]) {
      for (const live of [0n, MSR.VEC | MSR.VSX]) {
        const ti = threadInfo(vec, MSR_USER | live);
        markVectorUse(ti);
        expect((ti.gpregs as Msg).msr).toBe(MSR_USER | (vec.vmx ? MSR.VEC : 0n) | (vec.vsx ? MSR.VSX : 0n));
        // Our frame agrees with the image's MSR.
        expect(gpAt(buildSigframe(ti, 0n, { frameAddr: FRAME }), PT.msr)).toBe((ti.gpregs as Msg).msr);
        // The kernel's view, when the dump got one from a signal frame, wins over the values.
        for (const kernel of [{ vmx: true, vsx: true }, { vmx: true, vsx: false }, { vmx: false, vsx: false }]) {
          const k = threadInfo(vec, MSR_USER | live);
          markVectorUse(k, kernel);
          expect((k.gpregs as Msg).msr).toBe(MSR_USER | (kernel.vmx ? MSR.VEC : 0n) | (kernel.vsx ? MSR.VSX : 0n));
        }
      }
    }
  });

  it('the same frame from the record after an image round trip (thread_info_ppc64 encode/decode)', () => {
    const ti = threadInfo();
    const back = decodeMessage('thread_info_ppc64', encodeMessage('thread_info_ppc64', ti));
    expect(buildSigframe(back, 5n, { frameAddr: FRAME }).equals(buildSigframe(ti, 5n, { frameAddr: FRAME }))).toBe(true);
  });

  it('refuses TM state, big-endian threads, bad records and a misaligned frame', () => {
    const e = (ti: Msg, frameAddr = FRAME) => () => buildSigframe(ti, 0n, { frameAddr });
    expect(e(threadInfo(), FRAME + 8n)).toThrow(/16-byte aligned/);
    expect(e(threadInfo(undefined, MSR_USER | (1n << 34n)))).toThrow(/transaction/);
    expect(e({ ...threadInfo(), tmstate: { gpregs: {} } })).toThrow(/tmstate/);
    const tm = threadInfo();
    (tm.gpregs as Msg).texasr = 1n;
    expect(e(tm)).toThrow(/texasr/);
    expect(e(threadInfo(undefined, MSR_USER & ~MSR.LE))).toThrow(/little-endian/);
    const short = threadInfo();
    (short.gpregs as Msg).gpr = [1n, 2n];
    expect(e(short)).toThrow(SigframeError);
    const noFp = threadInfo();
    delete noFp.fpstate;
    expect(e(noFp)).toThrow(/fpstate/);
    const badVr = threadInfo();
    (badVr.vrstate as Msg).vrregs = [0n];
    expect(e(badVr)).toThrow(/vrregs/);
  });
});

describe('ppc64 restore hooks', () => {
  it('restoreFrame: the ucontext at the frame address, r1 = the frame address', () => {
    const ti = threadInfo();
    const { frame, sp } = ppc64.restoreFrame(ti, 3n, FRAME);
    expect(sp).toBe(FRAME);
    expect(frame.equals(buildSigframe(ti, 3n, { frameAddr: FRAME }))).toBe(true);
    expect(frame.length + 64).toBeLessThanOrEqual(ppc64.maxRestoreFrameSize); // core reserves 64 bytes of alignment
    expect(ppc64.preSigreturnSyscalls(ti)).toEqual([]);
  });

  it('sigreturnRegs: r0 = __NR_rt_sigreturn (172), r1 = frame, nip = the code word, trap = 0', () => {
    const saved = Buffer.alloc(GP_REGS_SIZE, 0x11);
    setReg(saved, 'trap', 0xc01n);
    const r = ppc64.sigreturnRegs(saved, 0x10000000n, FRAME, threadInfo());
    expect(SYSCALLS_PPC64.rt_sigreturn).toBe(172);
    expect(getReg(r, 'r0')).toBe(172n);
    expect(getReg(r, 'r1')).toBe(FRAME);
    expect(getReg(r, 'nip')).toBe(0x10000000n);
    expect(getReg(r, 'trap')).toBe(0n);
    expect(getReg(saved, 'trap')).toBe(0xc01n);
  });

  it('the parasite exports parasite_sigreturn: r1 = its argument (the frame), then rt_sigreturn', () => {
    const dis = execFileSync(`${CROSS}objdump`, ['-d', '--no-show-raw-insn', parasiteElfPath()]).toString();
    const body = /<parasite_sigreturn>:\n((?:\s+[0-9a-f]+:.*\n)+)/.exec(dis)?.[1] ?? '';
    const insns = body.split('\n').map((l) => /^\s+[0-9a-f]+:\s+(.*)$/.exec(l)?.[1].trim().replace(/\s+/g, ' ')).filter(Boolean);
    expect(insns.slice(0, 4)).toEqual(['mr r1,r3', `li r0,${SYSCALLS_PPC64.rt_sigreturn}`, 'sc', 'trap']);
  });

  it('the restore helper: a static ELFv2 ppc64le executable without FP or vector instructions', () => {
    const helper = restoreHelperPath();
    const elf = fs.readFileSync(helper);
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(elf[4]).toBe(2); // 64-bit
    expect(elf[5]).toBe(1); // little-endian
    expect(elf.readUInt16LE(18)).toBe(21); // EM_PPC64
    expect(elf.readUInt32LE(48) & 3).toBe(2); // e_flags: ELFv2
    const headers = execFileSync(`${CROSS}readelf`, ['-lhW', helper]).toString();
    expect(headers).not.toMatch(/INTERP|DYNAMIC/);
    const entry = /Entry point address:\s+(0x[0-9a-f]+)/.exec(headers)![1];
    const syms = execFileSync(`${CROSS}nm`, [helper]).toString();
    expect(syms).toMatch(new RegExp(`^0*${entry.slice(2)} T _start$`, 'm'));
    expect(syms).toMatch(/ T helper_main$/m);
    const insns = execFileSync(`${CROSS}objdump`, ['-d', '--no-show-raw-insn', helper]).toString()
      .split('\n').map((l) => /^\s+[0-9a-f]+:\s+(\S+)/.exec(l)?.[1]).filter((m): m is string => !!m);
    expect(insns).toContain('sc');
    const fpOrVector = insns.filter((m) => /^(f|lf|stf|mffs|mtfs|v|lv|stv|mfvscr|mtvscr|x[sv]|lx|stx)/.test(m));
    expect(fpOrVector).toEqual([]);
  });
});
