/* cpuloop: a pure CPU loop whose state lives in vector registers, so a dump catches it with
 * live SIMD state and a restore must bring every bit of it back.
 *
 * x86_64: each block is one asm loop that keeps 6 accumulator/shadow pairs in ymm0..ymm11,
 * an increment in ymm12 and two constants in ymm14/ymm15 (all 256 bits differ per lane).
 * Every iteration adds the increment to all 12 accumulators and checks that each shadow minus
 * its accumulator still equals the pair's delta and that ymm14/ymm15 still hold their
 * constants; after the block the C side checks the exact accumulator values. With AVX-512F a
 * second loop does the same with zmm16..zmm24 and the opmask registers k1/k2. The paths are
 * chosen by a runtime cpuid check (no AVX2: the portable path below).
 * Elsewhere (ppc64: VSX registers) and as the fallback: GCC generic vectors in a tight loop.
 *   cpuloop [noavx512]
 * Prints "beat N" every 10 blocks. On SIGTERM it runs 3 more blocks, then reports. */
#include "common.h"
#include <stdint.h>

#define PAIRS 6
#define LANES 4 /* u64 lanes of a ymm register */

static uint64_t acc[PAIRS][LANES], shadow[PAIRS][LANES], delta[PAIRS][LANES];
static uint64_t inc[LANES] = { 0x0000000100000003ULL, 0x0000001000000007ULL, 0x0000010000000011ULL,
			       0x0000100000000013ULL };
static const char *path = "generic";

static int check_state(unsigned long iters, uint64_t before[PAIRS][LANES], const char *what)
{
	for (int p = 0; p < PAIRS; p++) {
		for (int l = 0; l < LANES; l++) {
			uint64_t want = before[p][l] + iters * inc[l];
			if (acc[p][l] != want || shadow[p][l] != want + delta[p][l]) {
				printf("FAIL cpuloop %s pair %d lane %d acc %016llx shadow %016llx want %016llx\n", what, p,
				       l, (unsigned long long)acc[p][l], (unsigned long long)shadow[p][l],
				       (unsigned long long)want);
				return 1;
			}
		}
	}
	return 0;
}

/* Portable path: the compiler keeps these vectors in SIMD registers (VSX on ppc64le, SSE on
 * x86_64) through the loop. Returns 0, or 1 + the iteration at which a check failed. */
typedef uint64_t v2u64 __attribute__((vector_size(16)));

static unsigned long generic_block(unsigned long n)
{
	v2u64 a[PAIRS][2], s[PAIRS][2], d[PAIRS][2];
	v2u64 i0 = { inc[0], inc[1] }, i1 = { inc[2], inc[3] };
	for (int p = 0; p < PAIRS; p++) {
		for (int h = 0; h < 2; h++) {
			a[p][h] = (v2u64){ acc[p][2 * h], acc[p][2 * h + 1] };
			s[p][h] = (v2u64){ shadow[p][2 * h], shadow[p][2 * h + 1] };
			d[p][h] = (v2u64){ delta[p][2 * h], delta[p][2 * h + 1] };
		}
	}
	double f = 1.0;
	for (unsigned long it = 0; it < n; it++) {
		v2u64 bad = { 0, 0 };
		for (int p = 0; p < PAIRS; p++) {
			a[p][0] += i0;
			a[p][1] += i1;
			s[p][0] += i0;
			s[p][1] += i1;
			bad |= (s[p][0] - a[p][0]) ^ d[p][0];
			bad |= (s[p][1] - a[p][1]) ^ d[p][1];
		}
		f = f * 1.0000001 + 1e-9;
		if (bad[0] | bad[1])
			return it + 1;
	}
	for (int p = 0; p < PAIRS; p++) {
		for (int h = 0; h < 2; h++) {
			acc[p][2 * h] = a[p][h][0];
			acc[p][2 * h + 1] = a[p][h][1];
			shadow[p][2 * h] = s[p][h][0];
			shadow[p][2 * h + 1] = s[p][h][1];
		}
	}
	if (!(f > 1.0))
		return n + 1;
	return 0;
}

#if defined(__x86_64__)
static uint64_t konst[2][LANES] = { { 0x1111222233334444ULL, 0x5555666677778888ULL, 0x99990000aaaabbbbULL,
				      0xccccddddeeeeffffULL },
				    { 0x0123456789abcdefULL, 0xfedcba9876543210ULL, 0x0f1e2d3c4b5a6978ULL,
				      0x8796a5b4c3d2e1f0ULL } };

/* One AVX2 block: returns 0 or the (1-based) index of the first failed check. */
static unsigned long avx2_block(unsigned long n)
{
	unsigned long fail = 0;
	__asm__ volatile(
		"vmovdqu 0(%[acc]), %%ymm0\n\t"
		"vmovdqu 32(%[acc]), %%ymm1\n\t"
		"vmovdqu 64(%[acc]), %%ymm2\n\t"
		"vmovdqu 96(%[acc]), %%ymm3\n\t"
		"vmovdqu 128(%[acc]), %%ymm4\n\t"
		"vmovdqu 160(%[acc]), %%ymm5\n\t"
		"vmovdqu 0(%[sh]), %%ymm6\n\t"
		"vmovdqu 32(%[sh]), %%ymm7\n\t"
		"vmovdqu 64(%[sh]), %%ymm8\n\t"
		"vmovdqu 96(%[sh]), %%ymm9\n\t"
		"vmovdqu 128(%[sh]), %%ymm10\n\t"
		"vmovdqu 160(%[sh]), %%ymm11\n\t"
		"vmovdqu (%[inc]), %%ymm12\n\t"
		"vmovdqu 0(%[k]), %%ymm14\n\t"
		"vmovdqu 32(%[k]), %%ymm15\n\t"
		"test %[n], %[n]\n\t"
		"jz 3f\n\t"
		"1:\n\t"
		"vpaddq %%ymm12, %%ymm0, %%ymm0\n\t"
		"vpaddq %%ymm12, %%ymm1, %%ymm1\n\t"
		"vpaddq %%ymm12, %%ymm2, %%ymm2\n\t"
		"vpaddq %%ymm12, %%ymm3, %%ymm3\n\t"
		"vpaddq %%ymm12, %%ymm4, %%ymm4\n\t"
		"vpaddq %%ymm12, %%ymm5, %%ymm5\n\t"
		"vpaddq %%ymm12, %%ymm6, %%ymm6\n\t"
		"vpaddq %%ymm12, %%ymm7, %%ymm7\n\t"
		"vpaddq %%ymm12, %%ymm8, %%ymm8\n\t"
		"vpaddq %%ymm12, %%ymm9, %%ymm9\n\t"
		"vpaddq %%ymm12, %%ymm10, %%ymm10\n\t"
		"vpaddq %%ymm12, %%ymm11, %%ymm11\n\t"
#define PAIR_CHECK(A, S, OFF)                                   \
		"vpsubq %%ymm" #A ", %%ymm" #S ", %%ymm13\n\t"  \
		"vpcmpeqq " #OFF "(%[d]), %%ymm13, %%ymm13\n\t" \
		"vpmovmskb %%ymm13, %%eax\n\t"                  \
		"cmp $-1, %%eax\n\t"                            \
		"jne 2f\n\t"
		PAIR_CHECK(0, 6, 0)
		PAIR_CHECK(1, 7, 32)
		PAIR_CHECK(2, 8, 64)
		PAIR_CHECK(3, 9, 96)
		PAIR_CHECK(4, 10, 128)
		PAIR_CHECK(5, 11, 160)
#undef PAIR_CHECK
		"vpcmpeqq 0(%[k]), %%ymm14, %%ymm13\n\t"
		"vpmovmskb %%ymm13, %%eax\n\t"
		"cmp $-1, %%eax\n\t"
		"jne 2f\n\t"
		"vpcmpeqq 32(%[k]), %%ymm15, %%ymm13\n\t"
		"vpmovmskb %%ymm13, %%eax\n\t"
		"cmp $-1, %%eax\n\t"
		"jne 2f\n\t"
		"dec %[n]\n\t"
		"jnz 1b\n\t"
		"jmp 3f\n\t"
		"2:\n\t"
		"mov %[n], %[fail]\n\t"
		"3:\n\t"
		"vmovdqu %%ymm0, 0(%[acc])\n\t"
		"vmovdqu %%ymm1, 32(%[acc])\n\t"
		"vmovdqu %%ymm2, 64(%[acc])\n\t"
		"vmovdqu %%ymm3, 96(%[acc])\n\t"
		"vmovdqu %%ymm4, 128(%[acc])\n\t"
		"vmovdqu %%ymm5, 160(%[acc])\n\t"
		"vmovdqu %%ymm6, 0(%[sh])\n\t"
		"vmovdqu %%ymm7, 32(%[sh])\n\t"
		"vmovdqu %%ymm8, 64(%[sh])\n\t"
		"vmovdqu %%ymm9, 96(%[sh])\n\t"
		"vmovdqu %%ymm10, 128(%[sh])\n\t"
		"vmovdqu %%ymm11, 160(%[sh])\n\t"
		"vzeroupper\n\t"
		: [n] "+r"(n), [fail] "+r"(fail)
		: [acc] "r"(acc), [sh] "r"(shadow), [d] "r"(delta), [inc] "r"(inc), [k] "r"(konst)
		: "rax", "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
		  "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
	return fail;
}

/* AVX-512F block over 4 of the pairs: zmm16..zmm19 accumulate pairs 0..3 (the ymm halves of
 * acc widened with a second copy in the upper 256 bits), zmm20..zmm23 their shadows, zmm24
 * the increment; k1 holds a constant mask checked every iteration. */
static uint64_t zacc[4][8], zsh[4][8], zdelta[4][8], zinc[8];

__attribute__((target("avx512f"))) static unsigned long avx512_block(unsigned long n)
{
	unsigned long fail = 0;
	__asm__ volatile(
		"vmovdqu64 0(%[acc]), %%zmm16\n\t"
		"vmovdqu64 64(%[acc]), %%zmm17\n\t"
		"vmovdqu64 128(%[acc]), %%zmm18\n\t"
		"vmovdqu64 192(%[acc]), %%zmm19\n\t"
		"vmovdqu64 0(%[sh]), %%zmm20\n\t"
		"vmovdqu64 64(%[sh]), %%zmm21\n\t"
		"vmovdqu64 128(%[sh]), %%zmm22\n\t"
		"vmovdqu64 192(%[sh]), %%zmm23\n\t"
		"vmovdqu64 (%[inc]), %%zmm24\n\t"
		"mov $0xa5c3, %%eax\n\t"
		"kmovw %%eax, %%k1\n\t"
		"test %[n], %[n]\n\t"
		"jz 3f\n\t"
		"1:\n\t"
		"vpaddq %%zmm24, %%zmm16, %%zmm16\n\t"
		"vpaddq %%zmm24, %%zmm17, %%zmm17\n\t"
		"vpaddq %%zmm24, %%zmm18, %%zmm18\n\t"
		"vpaddq %%zmm24, %%zmm19, %%zmm19\n\t"
		"vpaddq %%zmm24, %%zmm20, %%zmm20\n\t"
		"vpaddq %%zmm24, %%zmm21, %%zmm21\n\t"
		"vpaddq %%zmm24, %%zmm22, %%zmm22\n\t"
		"vpaddq %%zmm24, %%zmm23, %%zmm23\n\t"
#define ZCHECK(A, S, OFF)                                          \
		"vpsubq %%zmm" #A ", %%zmm" #S ", %%zmm25\n\t"     \
		"vpcmpeqq " #OFF "(%[d]), %%zmm25, %%k2\n\t"       \
		"kmovw %%k2, %%eax\n\t"                            \
		"cmp $0xff, %%eax\n\t"                             \
		"jne 2f\n\t"
		ZCHECK(16, 20, 0)
		ZCHECK(17, 21, 64)
		ZCHECK(18, 22, 128)
		ZCHECK(19, 23, 192)
#undef ZCHECK
		"kmovw %%k1, %%eax\n\t"
		"cmp $0xa5c3, %%eax\n\t"
		"jne 2f\n\t"
		"dec %[n]\n\t"
		"jnz 1b\n\t"
		"jmp 3f\n\t"
		"2:\n\t"
		"mov %[n], %[fail]\n\t"
		"3:\n\t"
		"vmovdqu64 %%zmm16, 0(%[acc])\n\t"
		"vmovdqu64 %%zmm17, 64(%[acc])\n\t"
		"vmovdqu64 %%zmm18, 128(%[acc])\n\t"
		"vmovdqu64 %%zmm19, 192(%[acc])\n\t"
		"vmovdqu64 %%zmm20, 0(%[sh])\n\t"
		"vmovdqu64 %%zmm21, 64(%[sh])\n\t"
		"vmovdqu64 %%zmm22, 128(%[sh])\n\t"
		"vmovdqu64 %%zmm23, 192(%[sh])\n\t"
		"vzeroupper\n\t"
		: [n] "+r"(n), [fail] "+r"(fail)
		: [acc] "r"(zacc), [sh] "r"(zsh), [d] "r"(zdelta), [inc] "r"(zinc)
		: "rax", "cc", "memory", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
		  "xmm24", "xmm25", "k1", "k2");
	return fail;
}

static int zcheck(unsigned long iters, uint64_t before[4][8])
{
	for (int p = 0; p < 4; p++) {
		for (int l = 0; l < 8; l++) {
			uint64_t want = before[p][l] + iters * zinc[l];
			if (zacc[p][l] != want || zsh[p][l] != want + zdelta[p][l]) {
				printf("FAIL cpuloop avx512 pair %d lane %d acc %016llx shadow %016llx want %016llx\n", p, l,
				       (unsigned long long)zacc[p][l], (unsigned long long)zsh[p][l],
				       (unsigned long long)want);
				return 1;
			}
		}
	}
	return 0;
}
#endif

int main(int argc, char **argv)
{
	unsigned long blocks = 0, n = 6000000;
	int use_avx2 = 0, use_avx512 = 0;

	tp_setup_stdout();
	tp_install_term_handler();
	uint64_t x = 0x243f6a8885a308d3ULL;
	for (int p = 0; p < PAIRS; p++) {
		for (int l = 0; l < LANES; l++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			acc[p][l] = x;
			delta[p][l] = x * 0x9e3779b97f4a7c15ULL + (uint64_t)(p * LANES + l);
			shadow[p][l] = acc[p][l] + delta[p][l];
		}
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	use_avx2 = __builtin_cpu_supports("avx2");
	use_avx512 = __builtin_cpu_supports("avx512f") && !(argc > 1 && strcmp(argv[1], "noavx512") == 0);
	for (int p = 0; p < 4; p++) {
		for (int l = 0; l < 8; l++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			zacc[p][l] = x;
			zdelta[p][l] = ~x + (uint64_t)l;
			zsh[p][l] = zacc[p][l] + zdelta[p][l];
		}
	}
	for (int l = 0; l < 8; l++)
		zinc[l] = 0x100000001ULL * (uint64_t)(l + 3);
	path = use_avx512 ? "avx2+avx512" : use_avx2 ? "avx2" : "generic";
#else
	(void)argc;
	(void)argv;
	(void)use_avx512;
#endif
	printf("path %s\n", path);
	tp_ready("cpuloop");

	int extra = -1; /* blocks still to run after SIGTERM */
	while (extra != 0) {
		uint64_t before[PAIRS][LANES];
		memcpy(before, acc, sizeof(before));
		unsigned long bad;
		if (use_avx2) {
#if defined(__x86_64__)
			bad = avx2_block(n);
#else
			bad = 0;
#endif
		} else {
			bad = generic_block(n);
		}
		if (bad) {
			printf("FAIL cpuloop %s register check failed in block %lu (counter %lu)\n", path, blocks, bad);
			return 1;
		}
		if (check_state(n, before, path))
			return 1;
#if defined(__x86_64__)
		if (use_avx512) {
			uint64_t zbefore[4][8];
			memcpy(zbefore, zacc, sizeof(zbefore));
			bad = avx512_block(n / 2);
			if (bad) {
				printf("FAIL cpuloop avx512 register check failed in block %lu (counter %lu)\n", blocks, bad);
				return 1;
			}
			if (zcheck(n / 2, zbefore))
				return 1;
		}
#endif
		blocks++;
		if (blocks % 10 == 0)
			printf("beat %lu\n", blocks);
		if (extra > 0)
			extra--;
		else if (tp_term_requested)
			extra = 3;
	}
	printf("PASS cpuloop %s %lu blocks\n", path, blocks);
	return 0;
}
