/*
 * call_bench: ns per closure call through libffi's public closure API.
 *
 * Uses only libffi's API, so the same binary measures whichever backend
 * the dynamic linker binds: the system libffi alone, or statictramp
 * under LD_PRELOAD. Prints one line per signature:
 *   <signature> <ns per call> <checksum>
 * The checksum proves the handler ran and saw the right arguments.
 *
 * Build: cc -O2 -o call_bench call_bench.c -lffi
 */
#include <ffi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct pair { long a, b; };

static void h_int(ffi_cif *cif, void *ret, void **args, void *ud) {
	(void)cif; (void)ud;
	*(ffi_arg *)ret = *(int *)args[0] + *(int *)args[1];
}

static void h_pair(ffi_cif *cif, void *ret, void **args, void *ud) {
	(void)cif; (void)ud;
	struct pair p = *(struct pair *)args[0];
	struct pair r = { p.b, p.a + 1 };
	*(struct pair *)ret = r;
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void *make(ffi_cif *cif, void (*h)(ffi_cif *, void *, void **, void *)) {
	void *code;
	ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
	if (!cl || ffi_prep_closure_loc(cl, cif, h, NULL, code) != FFI_OK) {
		fprintf(stderr, "closure setup failed\n");
		exit(1);
	}
	return code;
}

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 20000000;
	ffi_cif c_int, c_pair;
	ffi_type *int_args[2] = { &ffi_type_sint32, &ffi_type_sint32 };
	ffi_type *pair_el[3] = { &ffi_type_slong, &ffi_type_slong, NULL };
	ffi_type pair_t = { 0, 0, FFI_TYPE_STRUCT, pair_el };
	ffi_type *pair_args[1] = { &pair_t };
	if (ffi_prep_cif(&c_int, FFI_DEFAULT_ABI, 2, &ffi_type_sint32, int_args) != FFI_OK ||
	    ffi_prep_cif(&c_pair, FFI_DEFAULT_ABI, 1, &pair_t, pair_args) != FFI_OK)
		return 1;
	int (*f_int)(int, int) = (int (*)(int, int))make(&c_int, h_int);
	struct pair (*f_pair)(struct pair) = (struct pair (*)(struct pair))make(&c_pair, h_pair);

	long sum = 0;
	double t0 = now();
	for (long i = 0; i < n; i++)
		sum += f_int((int)i, 3);
	double t1 = now();
	printf("int(int,int) %.2f %ld\n", (t1 - t0) / n, sum);

	struct pair p = { 1, 2 };
	t0 = now();
	for (long i = 0; i < n; i++) {
		p = f_pair(p);
		p.a &= 0xffff;
	}
	t1 = now();
	printf("pair(pair) %.2f %ld\n", (t1 - t0) / n, p.a + p.b);
	return 0;
}
