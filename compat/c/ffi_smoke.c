/* ffi_smoke: does a (cross-)built libffi work here? The default ABI of the
 * target (FFI_SYSV on i386, FFI_UNIX64 on x86_64), with results checked:
 *
 *   - ffi_call of a compiled C function int(int, int, int);
 *   - a libffi closure int(int, int), called directly and through ffi_call;
 *   - a closure returning a 12-byte struct, called directly (on i386 SysV
 *     through a hidden pointer that the callee pops with `ret $4`; a wrong
 *     pop leaves the caller's stack pointer off, which call_three below
 *     turns into a wrong sum or a crash);
 *   - a closure returning double (on i386 in st(0)).
 *
 * Prints "ffi_smoke ok (<N>-bit)" and exits 0, or names the first wrong
 * result and exits 1. scripts/test-i686 builds it with i686-linux-gnu-gcc
 * against Debian's libffi:i386 and against libffi 3.6 built for i686.
 * Build: cc -O1 -Wall -o ffi_smoke ffi_smoke.c -lffi
 */
#include <ffi.h>
#include <stdio.h>
#include <stdlib.h>

struct three {
    int a, b, c;
};

static int sub3(int a, int b, int c) { return a - b - c; }

static void add_handler(ffi_cif *cif, void *ret, void **args, void *user) {
    (void)cif;
    *(ffi_arg *)ret = (ffi_arg)(*(int *)args[0] + *(int *)args[1] + *(int *)user);
}

static void three_handler(ffi_cif *cif, void *ret, void **args, void *user) {
    (void)cif;
    (void)user;
    int x = *(int *)args[0];
    *(struct three *)ret = (struct three){x, x + 1, x + 2};
}

static void half_handler(ffi_cif *cif, void *ret, void **args, void *user) {
    (void)cif;
    (void)user;
    *(double *)ret = *(double *)args[0] / 2;
}

static int failures;

static void expect(const char *what, long long got, long long want) {
    if (got != want) {
        printf("ffi_smoke: %s: got %lld, want %lld\n", what, got, want);
        failures++;
    }
}

/* Calls f(x) from a frame addressed through the stack pointer (no frame
 * pointer at -O1 on i386): a callee that pops the wrong number of bytes
 * makes the locals read wrong and the return go astray. Returns a + b + c
 * of the struct, plus 1000 per corrupted local. */
__attribute__((noinline)) static int call_three(struct three (*f)(int), int x) {
    volatile int before = 0x1234;
    struct three t = f(x);
    volatile int after = 0x5678;
    return t.a + t.b + t.c + (before != 0x1234) * 1000 + (after != 0x5678) * 1000;
}

/* A closure for `handler` with the cif's signature; exits on failure. */
static void *make_closure(ffi_cif *cif, void (*handler)(ffi_cif *, void *, void **, void *),
                          void *user) {
    void *code = NULL;
    ffi_closure *c = ffi_closure_alloc(sizeof(ffi_closure), &code);
    if (c == NULL || code == NULL) {
        printf("ffi_smoke: ffi_closure_alloc failed\n");
        exit(1);
    }
    ffi_status st = ffi_prep_closure_loc(c, cif, handler, user, code);
    if (st != FFI_OK) {
        printf("ffi_smoke: ffi_prep_closure_loc: status %d\n", (int)st);
        exit(1);
    }
    return code;
}

static void prep(ffi_cif *cif, unsigned n, ffi_type *ret, ffi_type **args) {
    ffi_status st = ffi_prep_cif(cif, FFI_DEFAULT_ABI, n, ret, args);
    if (st != FFI_OK) {
        printf("ffi_smoke: ffi_prep_cif: status %d\n", (int)st);
        exit(1);
    }
}

int main(void) {
    ffi_type *ints[3] = {&ffi_type_sint, &ffi_type_sint, &ffi_type_sint};

    ffi_cif call3;
    prep(&call3, 3, &ffi_type_sint, ints);
    int a = 100, b = 30, c = 3;
    void *av[3] = {&a, &b, &c};
    ffi_arg r = 0;
    ffi_call(&call3, FFI_FN(sub3), &r, av);
    expect("ffi_call sub3(100, 30, 3)", (int)r, 67);

    ffi_cif add;
    prep(&add, 2, &ffi_type_sint, ints);
    int bias = 1000;
    int (*addf)(int, int) = (int (*)(int, int))make_closure(&add, add_handler, &bias);
    expect("closure add(2, 3) called directly", addf(2, 3), 1005);
    r = 0;
    ffi_call(&add, FFI_FN(addf), &r, av);
    expect("closure add(100, 30) through ffi_call", (int)r, 1130);

    ffi_type *three_elems[4] = {&ffi_type_sint, &ffi_type_sint, &ffi_type_sint, NULL};
    ffi_type three_type = {0, 0, FFI_TYPE_STRUCT, three_elems};
    ffi_cif three;
    prep(&three, 1, &three_type, ints);
    struct three (*threef)(int) = (struct three (*)(int))make_closure(&three, three_handler, NULL);
    expect("closure struct three(7): a + b + c", call_three(threef, 7), 7 + 8 + 9);

    ffi_type *dbl[1] = {&ffi_type_double};
    ffi_cif half;
    prep(&half, 1, &ffi_type_double, dbl);
    double (*halff)(double) = (double (*)(double))make_closure(&half, half_handler, NULL);
    expect("closure half(5.0) * 2", (long long)(halff(5.0) * 2), 5);

    if (failures)
        return 1;
    printf("ffi_smoke ok (%d-bit)\n", (int)(8 * sizeof(void *)));
    return 0;
}
