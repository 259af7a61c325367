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

/*
 * void parasite_sigreturn(unsigned long sp): rt_sigreturn on the frame the dumper wrote for the
 * task's own state (sp = frame + 8, as if a signal handler had returned through pretcode). The
 * task resumes where it was frozen, with its registers, FPU/AVX state, signal mask and
 * sigaltstack; fs_base/gs_base are not in the frame and the parasite never changes them.
 * Does not return: a bad frame makes the kernel send SIGSEGV.
 */
	.text
	.globl parasite_sigreturn
	.type parasite_sigreturn, @function
parasite_sigreturn:
	movq	%rdi, %rsp
	movl	$15, %eax	/* __NR_rt_sigreturn */
	syscall
	ud2
	.size parasite_sigreturn, . - parasite_sigreturn
	.section .note.GNU-stack, "", @progbits
