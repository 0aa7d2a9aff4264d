/*
 * overlay_probe: a program built only through pkg-config, against libffi
 * (`cc overlay_probe.c $(pkg-config --cflags --libs libffi)`); with
 * PKG_CONFIG_PATH pointing at statictramp's overlay (scripts/install) its
 * closures must be statictramp's, bound at link time: no LD_PRELOAD.
 * Prints "overlay ok" when a closure returns the right value and
 * statictramp_owns_code claims its code; exits 1 otherwise.
 */
#include <ffi.h>
#include <statictramp.h>
#include <stdio.h>

static void h(ffi_cif *cif, void *ret, void **args, void *ud)
{
	(void)cif;
	*(ffi_arg *)ret = (ffi_arg)(*(int *)args[0] * 2 + (int)(long)ud);
}

int main(void)
{
	ffi_cif cif;
	ffi_type *at[1] = { &ffi_type_sint };
	void *code;
	if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 1, &ffi_type_sint, at) != FFI_OK)
		return 1;
	ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
	if (!cl) {
		perror("ffi_closure_alloc");
		return 1;
	}
	if (ffi_prep_closure_loc(cl, &cif, h, (void *)1L, code) != FFI_OK)
		return 1;
	int r = ((int (*)(int))code)(20);
	int owned = statictramp_owns_code(code);
	ffi_closure_free(cl);
	if (r != 41 || owned != 1) {
		printf("overlay FAILED: result %d, statictramp_owns_code %d\n", r, owned);
		return 1;
	}
	puts("overlay ok");
	return 0;
}
