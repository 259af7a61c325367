/*
 * Parasite entry (ELFv2). The dumper sets nip = r12 = the address of parasite_head (the
 * ELFv2 global entry convention), r1 = a 16-byte aligned stack pointer with a minimal 32-byte
 * frame above it, and r3 = the parasite_args. r2 (the TOC pointer) is derived from r12 here;
 * parasite_main's return value stays in r3 for the dumper to read at the trap.
 */
	.section .head.text, "ax"
	.globl parasite_head
	.type parasite_head, @function
parasite_head:
	addis	2, 12, (.TOC. - parasite_head)@ha
	addi	2, 2, (.TOC. - parasite_head)@l
	bl	parasite_main
	nop
	trap			/* tw 31,0,0: SIGTRAP with nip at this instruction */
	.size parasite_head, . - parasite_head
	.section .note.GNU-stack, "", @progbits
