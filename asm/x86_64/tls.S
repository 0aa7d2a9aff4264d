/*
 * statictramp_thread_state: one TLS word per thread, holding the address
 * of that thread's state (src/thread_state.rs): 0 before the thread first
 * allocates, prepares or frees a closure, 1 while its state is being
 * created and once it has been torn down at thread exit, otherwise a
 * pointer.
 *
 * Rust's thread_local! in a shared object uses the general-dynamic model:
 * every access calls __tls_get_addr (about 11 instructions plus the
 * wrapper's state checks), three times per alloc/prep/free cycle. This
 * word is read through a TLS descriptor instead (src/thread_state.rs):
 * `leaq sym@tlsdesc(%rip), %rax; call *sym@tlscall(%rax)` gives its offset
 * from the thread pointer (%fs:0). The dynamic linker resolves the
 * descriptor to a constant when the library's TLS block is in static TLS
 * (loaded at startup, or dlopened while glibc's surplus static TLS had
 * room) and to a lookup of the dynamically allocated block otherwise, so
 * the library needs no static TLS and is not DF_STATIC_TLS: a dlopen after
 * other objects used up the surplus still works (tests/dlopen.rs). When
 * the offset is a constant, the runtime keeps it and adds it to %fs:0
 * without calling the descriptor again. In an executable the linker
 * relaxes the sequence to the constant.
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
