/*
 * Parasite entry. The dumper sets rsp to the top of the parasite stack (16-byte aligned)
 * and rdi to the parasite_args; the return value of parasite_main is left in rax for the
 * dumper to read at the trap.
 */
	.section .head.text, "ax"
	.globl parasite_head
parasite_head:
	call parasite_main
	int3
	.section .note.GNU-stack, "", @progbits
