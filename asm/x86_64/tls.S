/*
 * statictramp_thread_state: one initial-exec TLS word per thread, holding
 * the address of that thread's state (src/thread_state.rs): 0 before the
 * thread first allocates, prepares or frees a closure, 1 while its state
 * is being created and once it has been torn down at thread exit,
 * otherwise a pointer.
 *
 * Rust's thread_local! in a shared object uses the general-dynamic model:
 * every access calls __tls_get_addr (about 11 instructions plus the
 * wrapper's state checks), three times per alloc/prep/free cycle. This
 * word is read instead with `movq %fs:0, r; addq sym@gottpoff(%rip), r`
 * (src/thread_state.rs), two instructions. Initial-exec in a shared object
 * takes 8 bytes of the static TLS block; glibc reserves surplus static TLS
 * for objects loaded later with dlopen (tests/dlopen.rs loads the library
 * that way). In an executable the linker relaxes the access to local-exec.
 *
 * No code here: only the .tbss definition.
 */
#include "../common.h"

	.section .tbss, "awT", @nobits
	.balign 8
	.globl	statictramp_thread_state
	.hidden	statictramp_thread_state
	.type	statictramp_thread_state, @object
	.size	statictramp_thread_state, 8
statictramp_thread_state:
	.zero	8

FILE_NOTES
