/* bind_check: a program linked against the system libffi (cc ... -lffi) that
 * uses every closure entry point libffi exports in LIBFFI_CLOSURE_8.0 and
 * reports which shared object each one resolved to.
 *
 * Run it plainly and the closure API is libffi's; run it with
 * LD_PRELOAD=libstatictramp-preload.so and every one of the symbols must
 * resolve into statictramp (tests/preload.rs checks both): 8, or 6 where
 * libffi's raw API is native (FFI_NATIVE_RAW_API, i386: no Java raw
 * closures there).
 *
 * Output, one fact per line (parsed by tests/preload.rs):
 *   symbol <name> <object that defines it (dladdr dli_fname)>
 *   check <what> ok|FAIL <got> <want>
 *   owns <closure> 1|0|absent   statictramp_owns_code(code), looked up with
 *                               dlsym(RTLD_DEFAULT); "absent" without statictramp;
 *                               the closure "freed" is asked after ffi_closure_free
 *   done <failures>
 * Exit status: 0 when every check passed, 1 otherwise.
 *
 * Build: cc -O1 -Wall -o bind_check bind_check.c -lffi -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ffi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Java raw API is deprecated in ffi.h; we test it on purpose. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static int failures;

static void check_i64(const char *what, long long got, long long want) {
    int ok = got == want;
    failures += !ok;
    printf("check %s %s %lld %lld\n", what, ok ? "ok" : "FAIL", got, want);
}

static void check_f64(const char *what, double got, double want) {
    int ok = got == want;
    failures += !ok;
    printf("check %s %s %.17g %.17g\n", what, ok ? "ok" : "FAIL", got, want);
}

/* ---- where did the dynamic linker bind each symbol? ------------------- */

/* Taking the addresses in data makes the dynamic linker resolve each symbol
 * with its version (R_X86_64_GLOB_DAT / R_X86_64_64), the same binding the
 * calls below use. */
static const struct {
    const char *name;
    void *addr;
} symbols[] = {
    {"ffi_closure_alloc", (void *)ffi_closure_alloc},
    {"ffi_closure_free", (void *)ffi_closure_free},
    {"ffi_prep_closure", (void *)ffi_prep_closure},
    {"ffi_prep_closure_loc", (void *)ffi_prep_closure_loc},
    {"ffi_prep_raw_closure", (void *)ffi_prep_raw_closure},
    {"ffi_prep_raw_closure_loc", (void *)ffi_prep_raw_closure_loc},
#if !FFI_NATIVE_RAW_API
    /* libffi has the Java raw closures only where the raw API is not
     * native: i386's ffi.h declares them not, its libffi.so.8 exports
     * them not. */
    {"ffi_prep_java_raw_closure", (void *)ffi_prep_java_raw_closure},
    {"ffi_prep_java_raw_closure_loc", (void *)ffi_prep_java_raw_closure_loc},
#endif
};

static void report_symbols(void) {
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        Dl_info info;
        const char *where = "?";
        if (dladdr(symbols[i].addr, &info) && info.dli_fname)
            where = info.dli_fname;
        printf("symbol %s %s\n", symbols[i].name, where);
    }
}

/* ---- statictramp_owns_code, if statictramp is loaded ------------------ */

typedef int (*owns_fn)(const void *);

static void report_owns(const char *label, void *code) {
    owns_fn owns = (owns_fn)dlsym(RTLD_DEFAULT, "statictramp_owns_code");
    if (!owns)
        printf("owns %s absent\n", label);
    else
        printf("owns %s %d\n", label, owns(code));
}

/* ---- ordinary closures ------------------------------------------------ */

/* int f(int a, int b) = a * 1000 + b + user_data */
static void h_int2(ffi_cif *cif, void *ret, void **args, void *ud) {
    (void)cif;
    int a = *(int *)args[0], b = *(int *)args[1];
    *(ffi_arg *)ret = (ffi_sarg)(a * 1000 + b + (int)(intptr_t)ud);
}

/* double f(double x, int n, float y) = x * n + y */
static void h_dbl(ffi_cif *cif, void *ret, void **args, void *ud) {
    (void)cif;
    (void)ud;
    *(double *)ret = *(double *)args[0] * *(int *)args[1] + *(float *)args[2];
}

/* struct pair { long a; double b; } f(struct pair p, long k) = {p.a * k, p.b * k} */
struct pair {
    long a;
    double b;
};

static void h_pair(ffi_cif *cif, void *ret, void **args, void *ud) {
    (void)cif;
    (void)ud;
    struct pair p = *(struct pair *)args[0];
    long k = *(long *)args[1];
    struct pair r = {p.a * k, p.b * (double)k};
    memcpy(ret, &r, sizeof r);
}

static void test_prep_closure_loc(void) {
    ffi_cif cif;
    ffi_type *at[] = {&ffi_type_sint, &ffi_type_sint};
    void *code = NULL;
    ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
    if (!cl) {
        check_i64("alloc_loc", 0, 1);
        return;
    }
    check_i64("prep_cif_int2", ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 2, &ffi_type_sint, at), FFI_OK);
    check_i64("prep_closure_loc",
              ffi_prep_closure_loc(cl, &cif, h_int2, (void *)(intptr_t)7, code), FFI_OK);
    int (*f)(int, int) = (int (*)(int, int))code;
    check_i64("direct_int2", f(12, 34), 12034 + 7);
    check_i64("direct_int2_neg", f(-3, 5), -2995 + 7);

    /* libffi's ffi_call calls the closure. */
    ffi_arg r = 0;
    int a = 40, b = 2;
    void *av[] = {&a, &b};
    ffi_call(&cif, FFI_FN(code), &r, av);
    check_i64("ffi_call_int2", (int)r, 40002 + 7);

    report_owns("prep_closure_loc", code);
    ffi_closure_free(cl);
    /* Freed: statictramp no longer counts the code address as a closure. */
    report_owns("freed", code);
}

static void test_prep_closure(void) {
    ffi_cif cif;
    ffi_type *at[] = {&ffi_type_double, &ffi_type_sint, &ffi_type_float};
    void *code = NULL;
    ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
    if (!cl) {
        check_i64("alloc_prep", 0, 1);
        return;
    }
    check_i64("prep_cif_dbl", ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 3, &ffi_type_double, at), FFI_OK);
    /* The deprecated form: the closure must be called at its writable
     * address for libffi, at `code` for static trampolines. Both libffi
     * (without a separate code mapping) and statictramp accept `code`. */
    check_i64("prep_closure", ffi_prep_closure(cl, &cif, h_dbl, NULL), FFI_OK);
    double (*f)(double, int, float) = (double (*)(double, int, float))code;
    check_f64("direct_dbl", f(1.5, 4, 0.25f), 6.25);

    double r = 0;
    double x = -2.5;
    int n = 3;
    float y = 0.5f;
    void *av[] = {&x, &n, &y};
    ffi_call(&cif, FFI_FN(code), &r, av);
    check_f64("ffi_call_dbl", r, -7.0);

    report_owns("prep_closure", code);
    ffi_closure_free(cl);
}

static void test_struct_by_value(void) {
    ffi_type *fields[] = {&ffi_type_slong, &ffi_type_double, NULL};
    ffi_type pair_t = {0, 0, FFI_TYPE_STRUCT, fields};
    ffi_type *at[] = {&pair_t, &ffi_type_slong};
    ffi_cif cif;
    void *code = NULL;
    ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
    if (!cl) {
        check_i64("alloc_struct", 0, 1);
        return;
    }
    check_i64("prep_cif_struct", ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 2, &pair_t, at), FFI_OK);
    check_i64("prep_closure_struct", ffi_prep_closure_loc(cl, &cif, h_pair, NULL, code), FFI_OK);
    struct pair (*f)(struct pair, long) = (struct pair (*)(struct pair, long))code;
    struct pair r = f((struct pair){21, 0.75}, 2);
    check_i64("direct_struct_a", r.a, 42);
    check_f64("direct_struct_b", r.b, 1.5);
    report_owns("struct_by_value", code);
    ffi_closure_free(cl);
}

/* ---- raw closures ----------------------------------------------------- */

/* int f(int a, long long b) = a - b (raw: one ffi_raw slot per argument) */
static void h_raw_loc(ffi_cif *cif, void *ret, ffi_raw *raw, void *ud) {
    (void)cif;
    (void)ud;
    *(ffi_arg *)ret = (ffi_sarg)(int)(raw[0].sint - raw[1].sint);
}

/* long long f(short a, unsigned char b, long long c) = a * 100000 + b * 1000 + c */
static void h_raw(ffi_cif *cif, void *ret, ffi_raw *raw, void *ud) {
    (void)cif;
    *(long long *)ret = raw[0].sint * 100000 + (long long)raw[1].uint * 1000 + raw[2].sint +
                        (long long)(intptr_t)ud;
}

#if !FFI_NATIVE_RAW_API
/* Java raw: 64-bit values take two slots (ffi_java_raw_size).
 * long long f(int a, long long b, int c) = a + b * 10 + c * 100 */
static void h_java_loc(ffi_cif *cif, void *ret, ffi_java_raw *raw, void *ud) {
    (void)cif;
    (void)ud;
    long long a = (int)raw[0].sint;
    long long b = raw[1].sint; /* raw[2] is the second half of b's slot pair */
    long long c = (int)raw[3].sint;
    *(long long *)ret = a + b * 10 + c * 100;
}

/* double f(double x, float y, int n) = x * n - y */
static void h_java(ffi_cif *cif, void *ret, ffi_java_raw *raw, void *ud) {
    (void)cif;
    (void)ud;
    double x;
    memcpy(&x, &raw[0], sizeof x); /* raw[1] is skipped */
    float y = raw[2].flt;
    int n = (int)raw[3].sint;
    *(double *)ret = x * n - y;
}
#endif

static void test_raw(void) {
    {
        ffi_cif cif;
        ffi_type *at[] = {&ffi_type_sint, &ffi_type_sint64};
        void *code = NULL;
        ffi_raw_closure *cl = ffi_closure_alloc(sizeof(ffi_raw_closure), &code);
        if (!cl) {
            check_i64("alloc_raw_loc", 0, 1);
        } else {
            check_i64("prep_cif_raw_loc",
                      ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 2, &ffi_type_sint, at), FFI_OK);
            check_i64("prep_raw_closure_loc",
                      ffi_prep_raw_closure_loc(cl, &cif, h_raw_loc, NULL, code), FFI_OK);
            int (*f)(int, long long) = (int (*)(int, long long))code;
            check_i64("direct_raw_loc", f(50, 8), 42);
            report_owns("prep_raw_closure_loc", code);
            ffi_closure_free(cl);
        }
    }
    {
        ffi_cif cif;
        ffi_type *at[] = {&ffi_type_sshort, &ffi_type_uchar, &ffi_type_sint64};
        void *code = NULL;
        ffi_raw_closure *cl = ffi_closure_alloc(sizeof(ffi_raw_closure), &code);
        if (!cl) {
            check_i64("alloc_raw", 0, 1);
        } else {
            check_i64("prep_cif_raw", ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 3, &ffi_type_sint64, at),
                      FFI_OK);
            check_i64("prep_raw_closure",
                      ffi_prep_raw_closure(cl, &cif, h_raw, (void *)(intptr_t)5), FFI_OK);
            long long (*f)(short, unsigned char, long long) =
                (long long (*)(short, unsigned char, long long))code;
            check_i64("direct_raw", f(-3, 200, 77), -300000 + 200000 + 77 + 5);
            long long r = 0;
            short a = 9;
            unsigned char b = 1;
            long long c = -1;
            void *av[] = {&a, &b, &c};
            ffi_call(&cif, FFI_FN(code), &r, av);
            check_i64("ffi_call_raw", r, 900000 + 1000 - 1 + 5);
            report_owns("prep_raw_closure", code);
            ffi_closure_free(cl);
        }
    }
#if !FFI_NATIVE_RAW_API
    {
        ffi_cif cif;
        ffi_type *at[] = {&ffi_type_sint, &ffi_type_sint64, &ffi_type_sint};
        void *code = NULL;
        ffi_java_raw_closure *cl = ffi_closure_alloc(sizeof(ffi_java_raw_closure), &code);
        if (!cl) {
            check_i64("alloc_java_loc", 0, 1);
        } else {
            check_i64("prep_cif_java_loc",
                      ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 3, &ffi_type_sint64, at), FFI_OK);
            check_i64("prep_java_raw_closure_loc",
                      ffi_prep_java_raw_closure_loc(cl, &cif, h_java_loc, NULL, code), FFI_OK);
            long long (*f)(int, long long, int) = (long long (*)(int, long long, int))code;
            check_i64("direct_java_loc", f(1, 2, 3), 1 + 20 + 300);
            check_i64("direct_java_loc_big", f(-7, 1LL << 40, 0), -7 + (1LL << 40) * 10);
            report_owns("prep_java_raw_closure_loc", code);
            ffi_closure_free(cl);
        }
    }
    {
        ffi_cif cif;
        ffi_type *at[] = {&ffi_type_double, &ffi_type_float, &ffi_type_sint};
        void *code = NULL;
        ffi_java_raw_closure *cl = ffi_closure_alloc(sizeof(ffi_java_raw_closure), &code);
        if (!cl) {
            check_i64("alloc_java", 0, 1);
        } else {
            check_i64("prep_cif_java", ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 3, &ffi_type_double, at),
                      FFI_OK);
            check_i64("prep_java_raw_closure", ffi_prep_java_raw_closure(cl, &cif, h_java, NULL),
                      FFI_OK);
            double (*f)(double, float, int) = (double (*)(double, float, int))code;
            check_f64("direct_java", f(2.5, 0.5f, 4), 9.5);
            report_owns("prep_java_raw_closure", code);
            ffi_closure_free(cl);
        }
    }
#endif
}

/* ---- many closures at once -------------------------------------------- */

static void test_many(void) {
    enum { N = 1000 };
    static ffi_closure *cls[N];
    static void *codes[N];
    ffi_cif cif;
    ffi_type *at[] = {&ffi_type_sint, &ffi_type_sint};
    check_i64("prep_cif_many", ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 2, &ffi_type_sint, at), FFI_OK);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        cls[i] = ffi_closure_alloc(sizeof(ffi_closure), &codes[i]);
        if (!cls[i] || ffi_prep_closure_loc(cls[i], &cif, h_int2, (void *)(intptr_t)i, codes[i]) != FFI_OK)
            bad++;
    }
    check_i64("many_prepared", N - bad, N);
    if (bad)
        return;
    long long sum = 0;
    for (int i = 0; i < N; i++)
        sum += ((int (*)(int, int))codes[i])(1, 2);
    check_i64("many_calls", sum, (long long)N * 1002 + (long long)N * (N - 1) / 2);
    for (int i = 0; i < N; i++)
        ffi_closure_free(cls[i]);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    report_symbols();
    test_prep_closure_loc();
    test_prep_closure();
    test_struct_by_value();
    test_raw();
    test_many();
    printf("done %d\n", failures);
    return failures ? 1 : 0;
}
