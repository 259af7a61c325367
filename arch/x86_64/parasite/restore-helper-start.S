/* Entry of the restore helper: align the stack and run helper_main (which never returns). */
	.text
	.globl _start
_start:
	andq $-16, %rsp
	call helper_main
	ud2
	.section .note.GNU-stack, "", @progbits
