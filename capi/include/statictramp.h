/*
 * statictramp: libffi's closure API on static trampoline tables.
 *
 * Programs use libffi's own <ffi.h> for the closure API
 * (ffi_closure_alloc, ffi_prep_closure_loc, ffi_closure_free and the raw
 * variants): linked with libstatictramp.a ahead of -lffi (pkg-config
 * statictramp, or the libffi.pc overlay), or under the preload library,
 * those calls are served by statictramp. This header declares what
 * statictramp adds.
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
