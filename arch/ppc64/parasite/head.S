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

/*
 * void parasite_sigreturn(unsigned long sp): rt_sigreturn on the frame the dumper wrote for the
 * task's own state (a struct ucontext at sp: the kernel reads it at r1). The task resumes where
 * it was frozen with its registers (r13, its TLS pointer, included), FP/VMX/VSX state, signal
 * mask and sigaltstack. Does not return: a bad frame makes the kernel send SIGSEGV.
 */
	.text
	.globl parasite_sigreturn
	.type parasite_sigreturn, @function
parasite_sigreturn:
	mr	1, 3
	li	0, 172		/* __NR_rt_sigreturn */
	sc
	trap
	.size parasite_sigreturn, . - parasite_sigreturn
	.section .note.GNU-stack, "", @progbits
