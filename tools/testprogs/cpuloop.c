/* cpuloop: a pure CPU loop whose state lives in vector registers, so a dump catches it with
 * live SIMD state and a restore must bring every bit of it back.
 *
 * x86_64: each block is one asm loop that keeps 6 accumulator/shadow pairs in ymm0..ymm11,
 * an increment in ymm12 and two constants in ymm14/ymm15 (all 256 bits differ per lane).
 * Every iteration adds the increment to all 12 accumulators and checks that each shadow minus
 * its accumulator still equals the pair's delta and that ymm14/ymm15 still hold their
 * constants; after the block the C side checks the exact accumulator values. With AVX-512F
 * the same loop also keeps 4 pairs in zmm16..zmm23 (increment zmm24) and a constant in the
 * opmask k1, all checked the same way, so the whole ymm and zmm/opmask state is live at any
 * instant a dump stops the loop. The paths are chosen by a runtime cpuid check (no AVX2: the
 * portable path below; "noavx512" leaves out the AVX-512 part, "generic" forces the portable
 * path).
 * Elsewhere (ppc64: VSX registers) and as the fallback: GCC generic vectors in a tight loop.
 *   cpuloop [noavx512|generic]
 * Prints "beat N" every 10 blocks. On SIGTERM it runs 3 more blocks, then reports. */
#include "common.h"
#include <stdint.h>

#define PAIRS 6
#define LANES 4 /* u64 lanes of a ymm register */

/* All the loop state; the x86_64 asm addresses it at fixed offsets from one base register. */
struct xstate {
	uint64_t acc[PAIRS][LANES];	 /*    0 */
	uint64_t shadow[PAIRS][LANES];	 /*  192 */
	uint64_t delta[PAIRS][LANES];	 /*  384 */
	uint64_t inc[LANES];		 /*  576 */
	uint64_t konst[2][LANES];	 /*  608 */
	uint64_t pad[4];		 /*  672 */
	uint64_t zacc[4][8];		 /*  704 */
	uint64_t zsh[4][8];		 /*  960 */
	uint64_t zdelta[4][8];		 /* 1216 */
	uint64_t zinc[8];		 /* 1472 */
};
_Static_assert(__builtin_offsetof(struct xstate, shadow) == 192, "layout");
_Static_assert(__builtin_offsetof(struct xstate, delta) == 384, "layout");
_Static_assert(__builtin_offsetof(struct xstate, inc) == 576, "layout");
_Static_assert(__builtin_offsetof(struct xstate, konst) == 608, "layout");
_Static_assert(__builtin_offsetof(struct xstate, zacc) == 704, "layout");
_Static_assert(__builtin_offsetof(struct xstate, zsh) == 960, "layout");
_Static_assert(__builtin_offsetof(struct xstate, zdelta) == 1216, "layout");
_Static_assert(__builtin_offsetof(struct xstate, zinc) == 1472, "layout");
static struct xstate xs __attribute__((aligned(64)));

static const char *path = "generic";

static int check_state(unsigned long iters, uint64_t before[PAIRS][LANES], const char *what)
{
	for (int p = 0; p < PAIRS; p++) {
		for (int l = 0; l < LANES; l++) {
			uint64_t want = before[p][l] + iters * xs.inc[l];
			if (xs.acc[p][l] != want || xs.shadow[p][l] != want + xs.delta[p][l]) {
				printf("FAIL cpuloop %s pair %d lane %d acc %016llx shadow %016llx want %016llx\n", what, p,
				       l, (unsigned long long)xs.acc[p][l], (unsigned long long)xs.shadow[p][l],
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
	v2u64 i0 = { xs.inc[0], xs.inc[1] }, i1 = { xs.inc[2], xs.inc[3] };
	for (int p = 0; p < PAIRS; p++) {
		for (int h = 0; h < 2; h++) {
			a[p][h] = (v2u64){ xs.acc[p][2 * h], xs.acc[p][2 * h + 1] };
			s[p][h] = (v2u64){ xs.shadow[p][2 * h], xs.shadow[p][2 * h + 1] };
			d[p][h] = (v2u64){ xs.delta[p][2 * h], xs.delta[p][2 * h + 1] };
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
			xs.acc[p][2 * h] = a[p][h][0];
			xs.acc[p][2 * h + 1] = a[p][h][1];
			xs.shadow[p][2 * h] = s[p][h][0];
			xs.shadow[p][2 * h + 1] = s[p][h][1];
		}
	}
	if (!(f > 1.0))
		return n + 1;
	return 0;
}

#if defined(__x86_64__)


/* ymm0..5 accumulators, ymm6..11 shadows, ymm12 increment, ymm13 scratch, ymm14/15 constants. */
#define Y_LOAD                                   \
	"vmovdqu 0(%[s]), %%ymm0\n\t"            \
	"vmovdqu 32(%[s]), %%ymm1\n\t"           \
	"vmovdqu 64(%[s]), %%ymm2\n\t"           \
	"vmovdqu 96(%[s]), %%ymm3\n\t"           \
	"vmovdqu 128(%[s]), %%ymm4\n\t"          \
	"vmovdqu 160(%[s]), %%ymm5\n\t"          \
	"vmovdqu 192(%[s]), %%ymm6\n\t"          \
	"vmovdqu 224(%[s]), %%ymm7\n\t"          \
	"vmovdqu 256(%[s]), %%ymm8\n\t"          \
	"vmovdqu 288(%[s]), %%ymm9\n\t"          \
	"vmovdqu 320(%[s]), %%ymm10\n\t"         \
	"vmovdqu 352(%[s]), %%ymm11\n\t"         \
	"vmovdqu 576(%[s]), %%ymm12\n\t"         \
	"vmovdqu 608(%[s]), %%ymm14\n\t"         \
	"vmovdqu 640(%[s]), %%ymm15\n\t"
#define Y_PAIR(A, S, OFF)                                    \
	"vpaddq %%ymm12, %%ymm" #A ", %%ymm" #A "\n\t"      \
	"vpaddq %%ymm12, %%ymm" #S ", %%ymm" #S "\n\t"      \
	"vpsubq %%ymm" #A ", %%ymm" #S ", %%ymm13\n\t"      \
	"vpcmpeqq " #OFF "(%[s]), %%ymm13, %%ymm13\n\t"     \
	"vpmovmskb %%ymm13, %%eax\n\t"                      \
	"cmp $-1, %%eax\n\t"                                \
	"jne 2f\n\t"
#define Y_BODY                                       \
	Y_PAIR(0, 6, 384) Y_PAIR(1, 7, 416)          \
	Y_PAIR(2, 8, 448) Y_PAIR(3, 9, 480)          \
	Y_PAIR(4, 10, 512) Y_PAIR(5, 11, 544)        \
	"vpcmpeqq 608(%[s]), %%ymm14, %%ymm13\n\t"   \
	"vpmovmskb %%ymm13, %%eax\n\t"               \
	"cmp $-1, %%eax\n\t"                         \
	"jne 2f\n\t"                                 \
	"vpcmpeqq 640(%[s]), %%ymm15, %%ymm13\n\t"   \
	"vpmovmskb %%ymm13, %%eax\n\t"               \
	"cmp $-1, %%eax\n\t"                         \
	"jne 2f\n\t"
#define Y_STORE                                  \
	"vmovdqu %%ymm0, 0(%[s])\n\t"            \
	"vmovdqu %%ymm1, 32(%[s])\n\t"           \
	"vmovdqu %%ymm2, 64(%[s])\n\t"           \
	"vmovdqu %%ymm3, 96(%[s])\n\t"           \
	"vmovdqu %%ymm4, 128(%[s])\n\t"          \
	"vmovdqu %%ymm5, 160(%[s])\n\t"          \
	"vmovdqu %%ymm6, 192(%[s])\n\t"          \
	"vmovdqu %%ymm7, 224(%[s])\n\t"          \
	"vmovdqu %%ymm8, 256(%[s])\n\t"          \
	"vmovdqu %%ymm9, 288(%[s])\n\t"          \
	"vmovdqu %%ymm10, 320(%[s])\n\t"         \
	"vmovdqu %%ymm11, 352(%[s])\n\t"
#define Y_CLOBBERS                                                                                          \
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
		"xmm13", "xmm14", "xmm15"

/* zmm16..19 accumulators, zmm20..23 shadows, zmm24 increment, zmm25 scratch, k1 a constant
 * mask, k2 scratch. */
#define Z_LOAD                                   \
	"vmovdqu64 704(%[s]), %%zmm16\n\t"       \
	"vmovdqu64 768(%[s]), %%zmm17\n\t"       \
	"vmovdqu64 832(%[s]), %%zmm18\n\t"       \
	"vmovdqu64 896(%[s]), %%zmm19\n\t"       \
	"vmovdqu64 960(%[s]), %%zmm20\n\t"       \
	"vmovdqu64 1024(%[s]), %%zmm21\n\t"      \
	"vmovdqu64 1088(%[s]), %%zmm22\n\t"      \
	"vmovdqu64 1152(%[s]), %%zmm23\n\t"      \
	"vmovdqu64 1472(%[s]), %%zmm24\n\t"      \
	"mov $0xa5c3, %%eax\n\t"                 \
	"kmovw %%eax, %%k1\n\t"
#define Z_PAIR(A, S, OFF)                                    \
	"vpaddq %%zmm24, %%zmm" #A ", %%zmm" #A "\n\t"      \
	"vpaddq %%zmm24, %%zmm" #S ", %%zmm" #S "\n\t"      \
	"vpsubq %%zmm" #A ", %%zmm" #S ", %%zmm25\n\t"      \
	"vpcmpeqq " #OFF "(%[s]), %%zmm25, %%k2\n\t"        \
	"kmovw %%k2, %%eax\n\t"                             \
	"cmp $0xff, %%eax\n\t"                              \
	"jne 2f\n\t"
#define Z_BODY                                           \
	Z_PAIR(16, 20, 1216) Z_PAIR(17, 21, 1280)        \
	Z_PAIR(18, 22, 1344) Z_PAIR(19, 23, 1408)        \
	"kmovw %%k1, %%eax\n\t"                          \
	"cmp $0xa5c3, %%eax\n\t"                         \
	"jne 2f\n\t"
#define Z_STORE                                  \
	"vmovdqu64 %%zmm16, 704(%[s])\n\t"       \
	"vmovdqu64 %%zmm17, 768(%[s])\n\t"       \
	"vmovdqu64 %%zmm18, 832(%[s])\n\t"       \
	"vmovdqu64 %%zmm19, 896(%[s])\n\t"       \
	"vmovdqu64 %%zmm20, 960(%[s])\n\t"       \
	"vmovdqu64 %%zmm21, 1024(%[s])\n\t"      \
	"vmovdqu64 %%zmm22, 1088(%[s])\n\t"      \
	"vmovdqu64 %%zmm23, 1152(%[s])\n\t"
#define Z_CLOBBERS \
	"xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "k1", "k2"

/* The loop frame: n iterations of BODY; on a failed check fail = the remaining count. */
#define LOOP(BODY)                 \
	"test %[n], %[n]\n\t"      \
	"jz 3f\n\t"                \
	"1:\n\t" BODY              \
	"dec %[n]\n\t"             \
	"jnz 1b\n\t"               \
	"jmp 3f\n\t"               \
	"2:\n\t"                   \
	"mov %[n], %[fail]\n\t"    \
	"3:\n\t"

/* One AVX2 block: returns 0 or the loop counter at the first failed check. */
static unsigned long avx2_block(unsigned long n)
{
	unsigned long fail = 0;
	__asm__ volatile(Y_LOAD LOOP(Y_BODY) Y_STORE "vzeroupper\n\t"
			 : [n] "+r"(n), [fail] "+r"(fail)
			 : [s] "r"(&xs)
			 : "rax", "cc", "memory", Y_CLOBBERS);
	return fail;
}

/* AVX2 and AVX-512 state live together: all of ymm0..15, zmm16..25 and k1/k2 in use. */
__attribute__((target("avx512f"))) static unsigned long avx512_block(unsigned long n)
{
	unsigned long fail = 0;
	__asm__ volatile(Y_LOAD Z_LOAD LOOP(Y_BODY Z_BODY) Y_STORE Z_STORE "vzeroupper\n\t"
			 : [n] "+r"(n), [fail] "+r"(fail)
			 : [s] "r"(&xs)
			 : "rax", "cc", "memory", Y_CLOBBERS, Z_CLOBBERS);
	return fail;
}

static int zcheck(unsigned long iters, uint64_t before[4][8])
{
	for (int p = 0; p < 4; p++) {
		for (int l = 0; l < 8; l++) {
			uint64_t want = before[p][l] + iters * xs.zinc[l];
			if (xs.zacc[p][l] != want || xs.zsh[p][l] != want + xs.zdelta[p][l]) {
				printf("FAIL cpuloop avx512 pair %d lane %d acc %016llx shadow %016llx want %016llx\n", p, l,
				       (unsigned long long)xs.zacc[p][l], (unsigned long long)xs.zsh[p][l],
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
	static const uint64_t inc0[LANES] = { 0x0000000100000003ULL, 0x0000001000000007ULL, 0x0000010000000011ULL,
					      0x0000100000000013ULL };
	static const uint64_t konst0[2][LANES] = { { 0x1111222233334444ULL, 0x5555666677778888ULL,
						     0x99990000aaaabbbbULL, 0xccccddddeeeeffffULL },
						   { 0x0123456789abcdefULL, 0xfedcba9876543210ULL,
						     0x0f1e2d3c4b5a6978ULL, 0x8796a5b4c3d2e1f0ULL } };
	memcpy(xs.inc, inc0, sizeof(inc0));
	memcpy(xs.konst, konst0, sizeof(konst0));
	uint64_t x = 0x243f6a8885a308d3ULL;
	for (int p = 0; p < PAIRS; p++) {
		for (int l = 0; l < LANES; l++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			xs.acc[p][l] = x;
			xs.delta[p][l] = x * 0x9e3779b97f4a7c15ULL + (uint64_t)(p * LANES + l);
			xs.shadow[p][l] = xs.acc[p][l] + xs.delta[p][l];
		}
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	use_avx2 = __builtin_cpu_supports("avx2") && !(argc > 1 && strcmp(argv[1], "generic") == 0);
	use_avx512 = use_avx2 && __builtin_cpu_supports("avx512f") && !(argc > 1 && strcmp(argv[1], "noavx512") == 0);
	for (int p = 0; p < 4; p++) {
		for (int l = 0; l < 8; l++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			xs.zacc[p][l] = x;
			xs.zdelta[p][l] = ~x + (uint64_t)l;
			xs.zsh[p][l] = xs.zacc[p][l] + xs.zdelta[p][l];
		}
	}
	for (int l = 0; l < 8; l++)
		xs.zinc[l] = 0x100000001ULL * (uint64_t)(l + 3);
	path = use_avx512 ? "avx2+avx512" : use_avx2 ? "avx2" : "generic";
#else
	(void)argc;
	(void)argv;
	(void)use_avx512;
	(void)use_avx2;
#endif
	printf("path %s\n", path);
	tp_ready("cpuloop");

	int extra = -1; /* blocks still to run after SIGTERM */
	while (extra != 0) {
		uint64_t before[PAIRS][LANES];
		memcpy(before, xs.acc, sizeof(before));
		unsigned long bad = 0;
#if defined(__x86_64__)
		uint64_t zbefore[4][8];
		memcpy(zbefore, xs.zacc, sizeof(zbefore));
		if (use_avx512)
			bad = avx512_block(n);
		else if (use_avx2)
			bad = avx2_block(n);
		else
			bad = generic_block(n);
#else
		bad = generic_block(n);
#endif
		if (bad) {
			printf("FAIL cpuloop %s register check failed in block %lu (counter %lu)\n", path, blocks, bad);
			return 1;
		}
		if (check_state(n, before, path))
			return 1;
#if defined(__x86_64__)
		if (use_avx512 && zcheck(n, zbefore))
			return 1;
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
