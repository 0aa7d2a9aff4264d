/*
 * statictramp: libffi's closure API on static trampoline tables.
 *
 * Programs use libffi's own <ffi.h> for the closure API
 * (ffi_closure_alloc, ffi_prep_closure_loc, ffi_closure_free and the raw
 * variants): linked with libstatictramp.a ahead of -lffi (pkg-config
 * statictramp, or the libffi.pc overlay), or under the preload library,
 * those calls are served by statictramp. This header declares what
 * statictramp adds, and below, what statictramp guarantees about signals
 * and stale pointers (docs/design.md has the details and the tests).
 *
 * Signals and async-signal safety:
 *   - Calling a prepared closure (its code pointer, as a function of its C
 *     type) is async-signal-safe: no lock, no allocation, no system call,
 *     no thread-local storage, even if the signal interrupted
 *     ffi_closure_alloc, ffi_prep_closure_loc or ffi_closure_free on the
 *     same thread. The closure must have been prepared before, must not be
 *     the one whose prep or free was interrupted, and its handler must be
 *     async-signal-safe itself. (ffi_call is libffi's: not
 *     async-signal-safe.)
 *   - ffi_closure_alloc, ffi_prep_closure_loc and ffi_closure_free are not
 *     async-signal-safe (nor are libffi's): called from a handler they can
 *     deadlock on a lock the interrupted thread holds, or re-enter malloc.
 *
 * Stale pointers (freed closures):
 *   - A freed record and its code address are not handed out again until
 *     more than 64 freed records wait behind it in its queue: for an
 *     ffi_closure-sized record, the freeing thread's own later frees (the
 *     64th releases it); for a larger one, later frees of its size class.
 *     Until then a call through the stale code pointer prints a diagnostic
 *     and aborts, a second ffi_closure_free aborts as a double free, and
 *     ffi_prep_closure_loc returns FFI_BAD_ARGTYPE. When fresh memory runs
 *     out, the oldest freed record is reused early rather than failing.
 *   - After that the pointer belongs to the closure allocated in its place:
 *     a stale call traps until the new owner prepares it, then runs the new
 *     closure; a stale free frees the new closure (whose owner's own free
 *     then aborts as a double free).
 *   - Memory not from ffi_closure_alloc is the caller's: no guarantee.
 */
#ifndef STATICTRAMP_H
#define STATICTRAMP_H

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if `code` is the code address of a live statictramp closure (the
 * `*code` ffi_closure_alloc gave, after ffi_prep_closure_loc), else 0.
 * Safe to call with any pointer, including NULL. */
int statictramp_owns_code(const void *code);

#ifdef __cplusplus
}
#endif

#endif /* STATICTRAMP_H */
