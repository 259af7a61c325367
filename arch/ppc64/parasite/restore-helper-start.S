/*
 * Entry of the ppc64le restore helper (a static, libc-free ELFv2 program; see
 * packages/core/restorer/restore-helper.c). The kernel starts it with r1 at argc and no TOC
 * pointer: r2 is derived from our own address (position independent, so the same code works
 * linked at a fixed address or as PIE), r1 is aligned to 16 bytes with a minimal ELFv2 frame
 * whose back chain is 0, and helper_main (which never returns) is called.
 */
	.text
	.globl _start
	.type _start, @function
_start:
	bl	0f
0:	mflr	12
	addis	2, 12, (.TOC. - 0b)@ha
	addi	2, 2, (.TOC. - 0b)@l
	clrrdi	1, 1, 4
	li	0, 0
	stdu	0, -32(1)
	bl	helper_main
	nop
	trap
	.size _start, . - _start
	.section .note.GNU-stack, "", @progbits
