/*
 * ppc64le raw syscalls for the parasite (no libc).
 * `sc` ABI: r0 = number, r3..r8 = arguments, result in r3. On failure the kernel sets CR0.SO
 * (bit 0x10000000 of CR) and leaves the positive errno in r3. The kernel may clobber r0, r4..r12,
 * ctr, xer and cr0. The parasite is built without FP/vector code, so the task's FP, VMX and VSX
 * registers are never touched.
 */
#ifndef CRIU_TS_ARCH_H
#define CRIU_TS_ARCH_H
#include <asm/unistd.h>

#if !defined(__powerpc64__) || !defined(_CALL_ELF) || _CALL_ELF != 2
#error "the ppc64 parasite is ELFv2 (ppc64le) only"
#endif

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	register long r0 __asm__("r0") = nr;
	register long r3 __asm__("r3") = a;
	register long r4 __asm__("r4") = b;
	register long r5 __asm__("r5") = c;
	register long r6 __asm__("r6") = d;
	register long r7 __asm__("r7") = e;
	register long r8 __asm__("r8") = f;
	/* mfcr right after sc: r0 (free once the kernel has read it) gets the condition register. */
	__asm__ volatile("sc\n\tmfcr %0"
			 : "+r"(r0), "+r"(r3), "+r"(r4), "+r"(r5), "+r"(r6), "+r"(r7), "+r"(r8)
			 :
			 : "r9", "r10", "r11", "r12", "ctr", "xer", "cr0", "memory");
	return (r0 & 0x10000000) ? -r3 : r3;
}
#endif
