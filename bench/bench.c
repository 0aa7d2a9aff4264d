/*
 * bench: libffi closure benchmarks through libffi's public API only.
 *
 * One binary measures whichever backend the dynamic linker binds: the
 * system libffi alone, another libffi.so.8 found first on LD_LIBRARY_PATH
 * (libffi 3.6 with static trampolines), or statictramp preloaded over
 * libffi (LD_PRELOAD). `statictramp-bench` (scripts/bench) builds and runs
 * it; it can also be run by hand:
 *
 *   cc -O2 -o bench bench/bench.c -lffi -lpthread -ldl
 *   ./bench calls 10000000
 *
 * Every subcommand prints `key value...` lines, one fact per line:
 *
 *   calls [ITERS]        ns per call through each signature's closure (typed
 *                        direct call, best of REPS timed runs) and the
 *                        "floor": the same handler called directly with a
 *                        prebuilt avalue[] (no closure).
 *                          call SIG NS / floor SIG NS
 *   loop SIG|all ITERS   only the closure call loop, inside measure_loop()
 *   floorloop SIG|all ITERS  only the floor loop, inside measure_loop()
 *                        (for valgrind --tool=callgrind
 *                        --toggle-collect=measure_loop; with `all`, one
 *                        measure_loop() call per signature in SIGS order, so
 *                        --dump-after=measure_loop gives one dump each)
 *   cycle [ITERS]        ns per ffi_closure_alloc + ffi_prep_closure_loc +
 *                        one call + ffi_closure_free (int(int,int))
 *   parts [ITERS]        the cycle's parts, each alone: ns per alloc+free,
 *                        per prep (one closure, again), per call through
 *                        one closure and through 65 in turn
 *                          parts_alloc_free / parts_prep /
 *                          parts_call_same / parts_call_turns NS
 *   scale N              N closures alive at once: ns per alloc+prep, per
 *                        call, per free, VMAs and RSS added; stops gracefully
 *                        (`stopped ...`) if allocation fails before N
 *   threads T ITERS      T threads each doing ITERS alloc+prep+call+free cycles
 *   info                 which object provides the closure API, where the
 *                        closure code lives, which libffi this is
 *
 * On i386 (cc -m32 or i686-linux-gnu-gcc) one more signature, i_ii_reg:
 * int(int,int) with FFI_REGISTER. BENCH_SKIP=SIG,... leaves signatures out
 * of calls and loop (for a libffi that crashes on their closures).
 *
 * Every handler computes from its arguments; every loop sums the results
 * into a checksum compared with the value computed without closures. A wrong
 * result prints `error ...` on stderr and exits 1.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ffi.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))
/* Hides a value from the optimizer (no constant propagation, no inlining
 * through a known function pointer). */
#define OPAQUE(x) __asm__ volatile("" : "+r"(x))

typedef void handler_fn(ffi_cif *, void *, void **, void *);

static int reps = 5;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "error %s\n", what);
	exit(1);
}

static void check(const char *what, uint64_t got, uint64_t want)
{
	if (got != want) {
		fprintf(stderr, "error %s: checksum %llu, expected %llu\n", what,
			(unsigned long long)got, (unsigned long long)want);
		exit(1);
	}
}

/* ------------------------------------------------------------------ */
/* The signatures: a reference function (the handler's work on plain C
 * values), the handler, the closure loop and the floor loop. Arithmetic is
 * unsigned (wraps, no undefined behaviour); double results are exact.      */

struct pair { long a, b; };
struct five { long a, b, c, d, e; };

/* void(void): counts its calls in *user_data. */
static void h_v_v(ffi_cif *cif, void *ret, void **args, void *ud)
{
	(void)cif; (void)ret; (void)args;
	++*(uint64_t *)ud;
}
static uint64_t counter;
static NOINLINE uint64_t loop_v_v(void *code, long n)
{
	void (*f)(void) = (void (*)(void))code;
	uint64_t before = counter;
	OPAQUE(f);
	for (long i = 0; i < n; i++)
		f();
	return counter - before;
}
static NOINLINE uint64_t floor_v_v(ffi_cif *cif, handler_fn *h, long n)
{
	uint64_t before = counter;
	OPAQUE(h);
	for (long i = 0; i < n; i++)
		h(cif, NULL, NULL, &counter);
	return counter - before;
}
static uint64_t expect_v_v(long n) { return (uint64_t)n; }

/* int(int, int) */
static inline int ref_i_ii(int a, int b)
{
	return (int)((unsigned)a * 3u + (unsigned)(b ^ 0x5a));
}
static void h_i_ii(ffi_cif *cif, void *ret, void **args, void *ud)
{
	(void)cif; (void)ud;
	*(ffi_sarg *)ret = ref_i_ii(*(int *)args[0], *(int *)args[1]);
}
static NOINLINE uint64_t loop_i_ii(void *code, long n)
{
	int (*f)(int, int) = (int (*)(int, int))code;
	uint64_t s = 0;
	OPAQUE(f);
	for (long i = 0; i < n; i++)
		s += (uint64_t)(int64_t)f((int)i, (int)(i >> 3));
	return s;
}
static NOINLINE uint64_t floor_i_ii(ffi_cif *cif, handler_fn *h, long n)
{
	int a, b;
	ffi_arg r;
	void *av[2] = { &a, &b };
	uint64_t s = 0;
	OPAQUE(h);
	for (long i = 0; i < n; i++) {
		a = (int)i;
		b = (int)(i >> 3);
		h(cif, &r, av, NULL);
		s += (uint64_t)(int64_t)(int)r;
	}
	return s;
}
static uint64_t expect_i_ii(long n)
{
	uint64_t s = 0;
	for (long i = 0; i < n; i++)
		s += (uint64_t)(int64_t)ref_i_ii((int)i, (int)(i >> 3));
	return s;
}

/* double(double x4, int x4): all values are multiples of 1/4, so exact. */
static inline double ref_d_4d4i(double d0, double d1, double d2, double d3,
				int i0, int i1, int i2, int i3)
{
	return d0 + d1 * 2 + d2 * 0.5 + d3 - i0 + i1 * 3 - i2 + i3;
}
static void h_d_4d4i(ffi_cif *cif, void *ret, void **args, void *ud)
{
	(void)cif; (void)ud;
	*(double *)ret = ref_d_4d4i(*(double *)args[0], *(double *)args[1],
				    *(double *)args[2], *(double *)args[3],
				    *(int *)args[4], *(int *)args[5],
				    *(int *)args[6], *(int *)args[7]);
}
#define D_4D4I_ARGS(i) (double)((i) & 1023), 1.5, (double)((i) & 7), -0.25, \
	(int)((i) & 15), 7, -(int)((i) & 3), 100
static NOINLINE uint64_t loop_d_4d4i(void *code, long n)
{
	double (*f)(double, double, double, double, int, int, int, int) =
		(double (*)(double, double, double, double, int, int, int, int))code;
	uint64_t s = 0;
	OPAQUE(f);
	for (long i = 0; i < n; i++)
		s += (uint64_t)(int64_t)(f(D_4D4I_ARGS(i)) * 4);
	return s;
}
static NOINLINE uint64_t floor_d_4d4i(ffi_cif *cif, handler_fn *h, long n)
{
	double d[4], r;
	int k[4];
	void *av[8] = { &d[0], &d[1], &d[2], &d[3], &k[0], &k[1], &k[2], &k[3] };
	uint64_t s = 0;
	OPAQUE(h);
	for (long i = 0; i < n; i++) {
		d[0] = (double)(i & 1023); d[1] = 1.5; d[2] = (double)(i & 7); d[3] = -0.25;
		k[0] = (int)(i & 15); k[1] = 7; k[2] = -(int)(i & 3); k[3] = 100;
		h(cif, &r, av, NULL);
		s += (uint64_t)(int64_t)(r * 4);
	}
	return s;
}
static uint64_t expect_d_4d4i(long n)
{
	uint64_t s = 0;
	for (long i = 0; i < n; i++)
		s += (uint64_t)(int64_t)(ref_d_4d4i(D_4D4I_ARGS(i)) * 4);
	return s;
}

/* struct pair(struct pair): 16 bytes in (rdi:rsi) and out (rax:rdx). */
static inline struct pair ref_s16(struct pair p)
{
	struct pair r = { (long)((unsigned long)p.a * 5 + (unsigned long)p.b), p.a ^ p.b };
	return r;
}
static void h_s16(ffi_cif *cif, void *ret, void **args, void *ud)
{
	(void)cif; (void)ud;
	*(struct pair *)ret = ref_s16(*(struct pair *)args[0]);
}
#define S16_MIX(r) ((uint64_t)(r).a * 3 + (uint64_t)(r).b)
static NOINLINE uint64_t loop_s16(void *code, long n)
{
	struct pair (*f)(struct pair) = (struct pair (*)(struct pair))code;
	uint64_t s = 0;
	OPAQUE(f);
	for (long i = 0; i < n; i++) {
		struct pair p = { i, i * 7 + 1 };
		struct pair r = f(p);
		s += S16_MIX(r);
	}
	return s;
}
static NOINLINE uint64_t floor_s16(ffi_cif *cif, handler_fn *h, long n)
{
	struct pair p, r;
	void *av[1] = { &p };
	uint64_t s = 0;
	OPAQUE(h);
	for (long i = 0; i < n; i++) {
		p.a = i;
		p.b = i * 7 + 1;
		h(cif, &r, av, NULL);
		s += S16_MIX(r);
	}
	return s;
}
static uint64_t expect_s16(long n)
{
	uint64_t s = 0;
	for (long i = 0; i < n; i++) {
		struct pair p = { i, i * 7 + 1 };
		struct pair r = ref_s16(p);
		s += S16_MIX(r);
	}
	return s;
}

/* int(struct five): 40 bytes by value, passed in memory. */
static inline int ref_s40(struct five v)
{
	return (int)((unsigned long)v.a + 2 * (unsigned long)v.b + 3 * (unsigned long)v.c +
		     4 * (unsigned long)v.d + 5 * (unsigned long)v.e);
}
static void h_s40(ffi_cif *cif, void *ret, void **args, void *ud)
{
	(void)cif; (void)ud;
	*(ffi_sarg *)ret = ref_s40(*(struct five *)args[0]);
}
/* The structs come from a table filled before any loop runs, as a real
 * caller's would come from memory: a struct built with scalar stores just
 * before the call would make GCC's vector copy of it into the argument area
 * stall on store forwarding, in the caller, for every backend alike. */
static struct five s40_tab[256];
static void init_s40(void)
{
	for (long k = 0; k < 256; k++) {
		struct five v = { k, k + 1, k ^ 5, 3, k >> 2 };
		s40_tab[k] = v;
	}
}
static NOINLINE uint64_t loop_s40(void *code, long n)
{
	int (*f)(struct five) = (int (*)(struct five))code;
	uint64_t s = 0;
	OPAQUE(f);
	for (long i = 0; i < n; i++)
		s += (uint64_t)(int64_t)f(s40_tab[i & 255]);
	return s;
}
static NOINLINE uint64_t floor_s40(ffi_cif *cif, handler_fn *h, long n)
{
	ffi_arg r;
	void *av[1];
	uint64_t s = 0;
	OPAQUE(h);
	for (long i = 0; i < n; i++) {
		av[0] = &s40_tab[i & 255];
		h(cif, &r, av, NULL);
		s += (uint64_t)(int64_t)(int)r;
	}
	return s;
}
static uint64_t expect_s40(long n)
{
	uint64_t s = 0;
	for (long i = 0; i < n; i++)
		s += (uint64_t)(int64_t)ref_s40(s40_tab[i & 255]);
	return s;
}

/* long(long x8, double x4): two longs on the stack. */
static inline long ref_l_8l4d(long l0, long l1, long l2, long l3, long l4, long l5,
			      long l6, long l7, double d0, double d1, double d2, double d3)
{
	unsigned long u = (unsigned long)l0 + 2 * (unsigned long)l1 + 3 * (unsigned long)l2 +
		4 * (unsigned long)l3 + 5 * (unsigned long)l4 + 6 * (unsigned long)l5 +
		7 * (unsigned long)l6 + 8 * (unsigned long)l7;
	return (long)(u + (unsigned long)(long)((d0 + d1 * 2 + d2 + d3) * 2));
}
static void h_l_8l4d(ffi_cif *cif, void *ret, void **args, void *ud)
{
	(void)cif; (void)ud;
	long *l[8];
	double *d[4];
	for (int k = 0; k < 8; k++)
		l[k] = args[k];
	for (int k = 0; k < 4; k++)
		d[k] = args[8 + k];
	*(long *)ret = ref_l_8l4d(*l[0], *l[1], *l[2], *l[3], *l[4], *l[5], *l[6], *l[7],
				  *d[0], *d[1], *d[2], *d[3]);
}
#define L_8L4D_ARGS(i) (i), (i) ^ 1, 2, (i) >> 1, 4, 5, (i) + 6, 7, \
	(double)((i) & 255), 0.5, -1.0, (double)((i) & 3)
static NOINLINE uint64_t loop_l_8l4d(void *code, long n)
{
	long (*f)(long, long, long, long, long, long, long, long,
		  double, double, double, double) =
		(long (*)(long, long, long, long, long, long, long, long,
			  double, double, double, double))code;
	uint64_t s = 0;
	OPAQUE(f);
	for (long i = 0; i < n; i++)
		s += (uint64_t)f(L_8L4D_ARGS(i));
	return s;
}
static NOINLINE uint64_t floor_l_8l4d(ffi_cif *cif, handler_fn *h, long n)
{
	long l[8], r;
	double d[4];
	void *av[12];
	uint64_t s = 0;
	for (int k = 0; k < 8; k++)
		av[k] = &l[k];
	for (int k = 0; k < 4; k++)
		av[8 + k] = &d[k];
	OPAQUE(h);
	for (long i = 0; i < n; i++) {
		l[0] = i; l[1] = i ^ 1; l[2] = 2; l[3] = i >> 1;
		l[4] = 4; l[5] = 5; l[6] = i + 6; l[7] = 7;
		d[0] = (double)(i & 255); d[1] = 0.5; d[2] = -1.0; d[3] = (double)(i & 3);
		h(cif, &r, av, NULL);
		s += (uint64_t)r;
	}
	return s;
}
static uint64_t expect_l_8l4d(long n)
{
	uint64_t s = 0;
	for (long i = 0; i < n; i++)
		s += (uint64_t)ref_l_8l4d(L_8L4D_ARGS(i));
	return s;
}

#if defined(__i386__)
/* int(int, int) with FFI_REGISTER (i386 only): a in eax, b in edx, callee
 * pops nothing. GCC cannot name FFI_REGISTER, but regparm(3) + stdcall has
 * its layout when every argument fits in the three registers. */
typedef int __attribute__((regparm(3), stdcall)) reg_i_ii_fn(int, int);
static NOINLINE uint64_t loop_i_ii_reg(void *code, long n)
{
	reg_i_ii_fn *f = (reg_i_ii_fn *)code;
	uint64_t s = 0;
	OPAQUE(f);
	for (long i = 0; i < n; i++)
		s += (uint64_t)(int64_t)f((int)i, (int)(i >> 3));
	return s;
}
#endif

static ffi_type *pair_elems[] = { &ffi_type_slong, &ffi_type_slong, NULL };
static ffi_type pair_type = { 0, 0, FFI_TYPE_STRUCT, pair_elems };
static ffi_type *five_elems[] = { &ffi_type_slong, &ffi_type_slong, &ffi_type_slong,
				  &ffi_type_slong, &ffi_type_slong, NULL };
static ffi_type five_type = { 0, 0, FFI_TYPE_STRUCT, five_elems };

static ffi_type *args_i_ii[] = { &ffi_type_sint, &ffi_type_sint };
static ffi_type *args_d_4d4i[] = { &ffi_type_double, &ffi_type_double, &ffi_type_double,
				   &ffi_type_double, &ffi_type_sint, &ffi_type_sint,
				   &ffi_type_sint, &ffi_type_sint };
static ffi_type *args_s16[] = { &pair_type };
static ffi_type *args_s40[] = { &five_type };
static ffi_type *args_l_8l4d[] = { &ffi_type_slong, &ffi_type_slong, &ffi_type_slong,
				   &ffi_type_slong, &ffi_type_slong, &ffi_type_slong,
				   &ffi_type_slong, &ffi_type_slong, &ffi_type_double,
				   &ffi_type_double, &ffi_type_double, &ffi_type_double };

struct sig {
	const char *name;
	ffi_abi abi;
	ffi_type *rtype;
	unsigned nargs;
	ffi_type **args;
	handler_fn *handler;
	void *user_data;
	uint64_t (*loop)(void *code, long n);
	uint64_t (*floor)(ffi_cif *cif, handler_fn *h, long n);
	uint64_t (*expect)(long n);
	ffi_cif cif;
	int skip; /* named in BENCH_SKIP: not measured */
};

/* The order `loop all` / `floorloop all` measure them in. */
static struct sig SIGS[] = {
	{ "v_v", FFI_DEFAULT_ABI, &ffi_type_void, 0, NULL, h_v_v, &counter, loop_v_v, floor_v_v,
	  expect_v_v, { 0 }, 0 },
	{ "i_ii", FFI_DEFAULT_ABI, &ffi_type_sint, 2, args_i_ii, h_i_ii, NULL, loop_i_ii, floor_i_ii,
	  expect_i_ii, { 0 }, 0 },
	{ "d_4d4i", FFI_DEFAULT_ABI, &ffi_type_double, 8, args_d_4d4i, h_d_4d4i, NULL, loop_d_4d4i,
	  floor_d_4d4i, expect_d_4d4i, { 0 }, 0 },
	{ "s16_s16", FFI_DEFAULT_ABI, &pair_type, 1, args_s16, h_s16, NULL, loop_s16, floor_s16,
	  expect_s16, { 0 }, 0 },
	{ "i_s40", FFI_DEFAULT_ABI, &ffi_type_sint, 1, args_s40, h_s40, NULL, loop_s40, floor_s40,
	  expect_s40, { 0 }, 0 },
	{ "l_8l4d", FFI_DEFAULT_ABI, &ffi_type_slong, 12, args_l_8l4d, h_l_8l4d, NULL, loop_l_8l4d,
	  floor_l_8l4d, expect_l_8l4d, { 0 }, 0 },
#if defined(__i386__)
	/* The floor is int(int,int)'s: the same handler, called directly. */
	{ "i_ii_reg", FFI_REGISTER, &ffi_type_sint, 2, args_i_ii, h_i_ii, NULL, loop_i_ii_reg,
	  floor_i_ii, expect_i_ii, { 0 }, 0 },
#endif
};
#define NSIGS (sizeof SIGS / sizeof SIGS[0])

/* BENCH_SKIP: signatures not to measure, separated by commas (a libffi
 * that crashes on their closures, such as 3.4.4 on every FFI_REGISTER one). */
static void prep_cifs(void)
{
	const char *skip = getenv("BENCH_SKIP");
	init_s40();
	for (size_t k = 0; k < NSIGS; k++) {
		struct sig *s = &SIGS[k];
		size_t len = strlen(s->name);
		for (const char *p = skip; p && *p; p += strcspn(p, ","), p += *p == ',')
			if (strncmp(p, s->name, len) == 0 && (p[len] == ',' || p[len] == 0))
				s->skip = 1;
		if (ffi_prep_cif(&s->cif, s->abi, s->nargs, s->rtype, s->args) != FFI_OK) {
			fprintf(stderr, "error ffi_prep_cif failed for %s\n", s->name);
			exit(1);
		}
	}
}

static struct sig *find_sig(const char *name)
{
	for (size_t k = 0; k < NSIGS; k++)
		if (strcmp(SIGS[k].name, name) == 0)
			return &SIGS[k];
	fprintf(stderr, "error unknown signature %s (known:", name);
	for (size_t k = 0; k < NSIGS; k++)
		fprintf(stderr, " %s", SIGS[k].name);
	fprintf(stderr, ")\n");
	exit(2);
}

/* A closure for `s`; its code pointer in *code. */
static ffi_closure *make_closure(struct sig *s, void **code)
{
	ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), code);
	if (!cl) {
		fprintf(stderr, "error ffi_closure_alloc: %s\n", strerror(errno));
		exit(1);
	}
	ffi_status st = ffi_prep_closure_loc(cl, &s->cif, s->handler, s->user_data, *code);
	if (st != FFI_OK) {
		fprintf(stderr, "error ffi_prep_closure_loc(%s) returned %d\n", s->name, (int)st);
		exit(1);
	}
	return cl;
}

/* The only function callgrind collects in (--toggle-collect=measure_loop):
 * one signature's closure loop (floor == 0) or floor loop. */
NOINLINE uint64_t measure_loop(struct sig *s, int floor, void *code, long n)
{
	if (floor)
		return s->floor(&s->cif, s->handler, n);
	return s->loop(code, n);
}

static void cmd_loop(const char *which, int floor, long n)
{
	for (size_t k = 0; k < NSIGS; k++) {
		struct sig *s = &SIGS[k];
		/* The floor makes no closure: BENCH_SKIP does not apply. */
		if ((s->skip && !floor) || (strcmp(which, "all") != 0 && strcmp(which, s->name) != 0))
			continue;
		void *code = NULL;
		ffi_closure *cl = floor ? NULL : make_closure(s, &code);
		uint64_t want = s->expect(n);
		uint64_t got = measure_loop(s, floor, code, n);
		check(s->name, got, want);
		printf("%s %s %ld\n", floor ? "floorloop" : "loop", s->name, n);
		if (cl)
			ffi_closure_free(cl);
	}
	if (strcmp(which, "all") != 0)
		find_sig(which); /* unknown names are an error */
}

static void cmd_calls(long n)
{
	for (size_t k = 0; k < NSIGS; k++) {
		struct sig *s = &SIGS[k];
		if (s->skip)
			continue;
		void *code;
		ffi_closure *cl = make_closure(s, &code);
		uint64_t want = s->expect(n), want_warm = s->expect(n / 10 + 1);
		check(s->name, s->loop(code, n / 10 + 1), want_warm); /* warm up */
		check(s->name, s->floor(&s->cif, s->handler, n / 10 + 1), want_warm);
		double best_call = 1e300, best_floor = 1e300;
		/* Alternate the two loops so noise hits both alike. */
		for (int r = 0; r < reps; r++) {
			double t0 = now_ns();
			uint64_t got = s->loop(code, n);
			double t1 = now_ns();
			check(s->name, got, want);
			if (t1 - t0 < best_call)
				best_call = t1 - t0;
			t0 = now_ns();
			got = s->floor(&s->cif, s->handler, n);
			t1 = now_ns();
			check(s->name, got, want);
			if (t1 - t0 < best_floor)
				best_floor = t1 - t0;
		}
		printf("call %s %.3f\n", s->name, best_call / (double)n);
		printf("floor %s %.3f\n", s->name, best_floor / (double)n);
		ffi_closure_free(cl);
	}
}

/* alloc + prep + one call + free, n times; returns 0 or -1 on a wrong result. */
static int cycles(long n, long seed)
{
	struct sig *s = find_sig("i_ii");
	for (long i = 0; i < n; i++) {
		void *code;
		ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
		if (!cl)
			return -2;
		if (ffi_prep_closure_loc(cl, &s->cif, s->handler, NULL, code) != FFI_OK) {
			ffi_closure_free(cl);
			return -2;
		}
		int a = (int)(i + seed);
		int r = ((int (*)(int, int))code)(a, 11);
		ffi_closure_free(cl);
		if (r != ref_i_ii(a, 11))
			return -1;
	}
	return 0;
}

static void cmd_cycle(long n)
{
	double best = 1e300;
	if (cycles(n / 10 + 1, 0) != 0)
		die("cycle: wrong result or allocation failure in warm-up");
	for (int r = 0; r < reps; r++) {
		double t0 = now_ns();
		int rc = cycles(n, r);
		double t1 = now_ns();
		if (rc == -1)
			die("cycle: a closure returned a wrong result");
		if (rc == -2)
			die("cycle: ffi_closure_alloc or ffi_prep_closure_loc failed");
		if (t1 - t0 < best)
			best = t1 - t0;
	}
	printf("cycle %.3f\n", best / (double)n);
}

/* The cycle's parts, each timed alone (int(int,int)), best of reps:
 * alloc+free; prep of one closure, again and again; calls through one
 * closure; calls through TURNS closures in turn, the order in which the
 * cycle meets code addresses when freed closures are handed out again
 * first-in first-out after 64 newer frees (statictramp's quarantine). */
#define TURNS 65
static void cmd_parts(long n)
{
	struct sig *s = find_sig("i_ii");
	double best[4] = { 1e300, 1e300, 1e300, 1e300 };
	void *codes[TURNS];
	ffi_closure *cls[TURNS];
	for (int k = 0; k < TURNS; k++) {
		cls[k] = ffi_closure_alloc(sizeof(ffi_closure), &codes[k]);
		if (!cls[k] || ffi_prep_closure_loc(cls[k], &s->cif, s->handler, NULL, codes[k]) != FFI_OK)
			die("parts: ffi_closure_alloc or ffi_prep_closure_loc failed");
	}
	for (int r = 0; r < reps; r++) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++) {
			void *code;
			ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
			if (!cl)
				die("parts: ffi_closure_alloc failed");
			ffi_closure_free(cl);
		}
		double t1 = now_ns();
		if (t1 - t0 < best[0])
			best[0] = t1 - t0;
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			if (ffi_prep_closure_loc(cls[0], &s->cif, s->handler, NULL, codes[0]) != FFI_OK)
				die("parts: ffi_prep_closure_loc failed");
		t1 = now_ns();
		if (t1 - t0 < best[1])
			best[1] = t1 - t0;
		int (*f)(int, int) = (int (*)(int, int))codes[0];
		OPAQUE(f);
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			if (f((int)i, 11) != ref_i_ii((int)i, 11))
				die("parts: a closure returned a wrong result");
		t1 = now_ns();
		if (t1 - t0 < best[2])
			best[2] = t1 - t0;
		t0 = now_ns();
		for (long i = 0, k = 0; i < n; i++, k = k + 1 == TURNS ? 0 : k + 1) {
			int (*g)(int, int) = (int (*)(int, int))codes[k];
			OPAQUE(g);
			if (g((int)i, 11) != ref_i_ii((int)i, 11))
				die("parts: a closure returned a wrong result");
		}
		t1 = now_ns();
		if (t1 - t0 < best[3])
			best[3] = t1 - t0;
	}
	for (int k = 0; k < TURNS; k++)
		ffi_closure_free(cls[k]);
	printf("parts_alloc_free %.3f\n", best[0] / (double)n);
	printf("parts_prep %.3f\n", best[1] / (double)n);
	printf("parts_call_same %.3f\n", best[2] / (double)n);
	printf("parts_call_turns %.3f\n", best[3] / (double)n);
}

/* ------------------------------------------------------------------ */
/* scale: without malloc while many closures are alive (at the map-count
 * limit, malloc may fail too). */

static long count_maps(void)
{
	static char buf[1 << 16];
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	long lines = 0;
	ssize_t got;
	while ((got = read(fd, buf, sizeof buf)) > 0)
		for (ssize_t i = 0; i < got; i++)
			lines += buf[i] == '\n';
	close(fd);
	return lines;
}

struct rss { long total, anon, file, shmem; }; /* kB */

static long status_field(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static struct rss read_rss(void)
{
	static char buf[8192];
	struct rss r = { -1, -1, -1, -1 };
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return r;
	ssize_t len = 0, got;
	while (len < (ssize_t)sizeof buf - 1 &&
	       (got = read(fd, buf + len, sizeof buf - 1 - (size_t)len)) > 0)
		len += got;
	close(fd);
	buf[len < 0 ? 0 : len] = 0;
	r.total = status_field(buf, "\nVmRSS:");
	r.anon = status_field(buf, "\nRssAnon:");
	r.file = status_field(buf, "\nRssFile:");
	r.shmem = status_field(buf, "\nRssShmem:");
	return r;
}

static void h_scale(ffi_cif *cif, void *ret, void **args, void *ud)
{
	(void)cif;
	*(ffi_sarg *)ret = (int)((unsigned)*(int *)args[0] * 2u + (unsigned)(uintptr_t)ud);
}

static void cmd_scale(long n)
{
	static ffi_type *argt[1] = { &ffi_type_sint };
	ffi_cif cif;
	if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 1, &ffi_type_sint, argt) != FFI_OK)
		die("ffi_prep_cif");
	/* Our own arrays, touched before the "before" snapshot. */
	size_t bytes = (size_t)n * sizeof(void *);
	void **cls = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void **codes = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (cls == MAP_FAILED || codes == MAP_FAILED)
		die("scale: cannot map the bookkeeping arrays");
	memset(cls, 1, bytes);
	memset(codes, 1, bytes);
	printf("scale_n %ld\n", n);
	fflush(stdout);

	long maps0 = count_maps();
	struct rss rss0 = read_rss();
	const char *stopped = NULL;
	int err = 0;
	long made = 0;
	double t0 = now_ns();
	for (; made < n; made++) {
		void *code;
		ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
		if (!cl) {
			err = errno;
			stopped = "ffi_closure_alloc returned NULL";
			break;
		}
		if (ffi_prep_closure_loc(cl, &cif, h_scale, (void *)(uintptr_t)made, code) != FFI_OK) {
			err = errno;
			stopped = "ffi_prep_closure_loc failed";
			ffi_closure_free(cl);
			break;
		}
		cls[made] = cl;
		codes[made] = code;
	}
	double t1 = now_ns();
	long maps1 = count_maps();
	struct rss rss1 = read_rss();
	long wrong = 0;
	double t2 = now_ns();
	for (long i = 0; i < made; i++) {
		int a = (int)(i ^ 0x3c3c);
		int r = ((int (*)(int))codes[i])(a);
		wrong += r != (int)((unsigned)a * 2u + (unsigned)i);
	}
	double t3 = now_ns();
	for (long i = 0; i < made; i++)
		ffi_closure_free(cls[i]);
	double t4 = now_ns();
	long maps2 = count_maps();

	printf("scale_made %ld\n", made);
	if (stopped)
		printf("scale_stopped %ld errno=%d (%s): %s\n", made, err, strerror(err), stopped);
	if (made > 0) {
		printf("scale_alloc_prep_ns %.3f\n", (t1 - t0) / (double)made);
		printf("scale_call_ns %.3f\n", (t3 - t2) / (double)made);
		printf("scale_free_ns %.3f\n", (t4 - t3) / (double)made);
		printf("scale_rss_bytes_per_closure %.3f\n",
		       (double)(rss1.total - rss0.total) * 1024 / (double)made);
		printf("scale_rss_anon_bytes_per_closure %.3f\n",
		       (double)(rss1.anon - rss0.anon) * 1024 / (double)made);
		printf("scale_rss_file_bytes_per_closure %.3f\n",
		       (double)(rss1.file - rss0.file) * 1024 / (double)made);
		printf("scale_rss_shmem_bytes_per_closure %.3f\n",
		       (double)(rss1.shmem - rss0.shmem) * 1024 / (double)made);
	}
	printf("scale_maps_before %ld\n", maps0);
	printf("scale_maps_live %ld\n", maps1);
	printf("scale_maps_after_free %ld\n", maps2);
	printf("scale_vmas_added %ld\n", maps1 - maps0);
	printf("scale_rss_kb_before %ld %ld %ld %ld\n", rss0.total, rss0.anon, rss0.file, rss0.shmem);
	printf("scale_rss_kb_live %ld %ld %ld %ld\n", rss1.total, rss1.anon, rss1.file, rss1.shmem);
	printf("scale_max_map_count_reached %d\n", err == ENOMEM && maps1 >= 65000);
	if (wrong) {
		fprintf(stderr, "error scale: %ld of %ld closures returned a wrong result\n", wrong, made);
		exit(1);
	}
	if (made == 0)
		die("scale: not even one closure could be made");
}

/* ------------------------------------------------------------------ */
/* threads */

struct worker {
	pthread_t tid;
	long iters;
	int rc;
	double t0, t1;
};
static pthread_barrier_t start_barrier;

static void *worker_main(void *p)
{
	struct worker *w = p;
	pthread_barrier_wait(&start_barrier);
	/* Timed in the workers: with as many workers as CPUs, the main thread
	 * may not run again until they are done. */
	w->t0 = now_ns();
	w->rc = cycles(w->iters, (long)(uintptr_t)p & 0xffff);
	w->t1 = now_ns();
	return NULL;
}

static void cmd_threads(int t, long iters)
{
	if (t < 1 || t > 1024)
		die("threads: T must be 1..1024");
	struct worker *ws = calloc((size_t)t, sizeof *ws);
	if (!ws || cycles(iters / 10 + 1, 0) != 0)
		die("threads: warm-up failed");
	pthread_barrier_init(&start_barrier, NULL, (unsigned)t + 1);
	for (int k = 0; k < t; k++) {
		ws[k].iters = iters;
		if (pthread_create(&ws[k].tid, NULL, worker_main, &ws[k]) != 0)
			die("threads: pthread_create");
	}
	pthread_barrier_wait(&start_barrier);
	for (int k = 0; k < t; k++)
		pthread_join(ws[k].tid, NULL);
	double t0 = ws[0].t0, t1 = ws[0].t1;
	for (int k = 0; k < t; k++) {
		if (ws[k].t0 < t0)
			t0 = ws[k].t0;
		if (ws[k].t1 > t1)
			t1 = ws[k].t1;
		if (ws[k].rc == -1)
			die("threads: a closure returned a wrong result");
		if (ws[k].rc != 0)
			die("threads: ffi_closure_alloc or ffi_prep_closure_loc failed");
	}
	double total = (double)t * (double)iters;
	printf("threads %d\n", t);
	printf("threads_cycles_per_sec %.0f\n", total / ((t1 - t0) / 1e9));
	printf("threads_ns_per_cycle_per_thread %.3f\n", (t1 - t0) / (double)iters);
	free(ws);
}

/* ------------------------------------------------------------------ */
/* info */

/* The /proc/self/maps line that contains addr: permissions and path. */
static int map_of(const void *addr, char *perms, char *path, size_t pathlen)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];
	int found = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		int off = 0;
		char p[8];
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, p, &off) < 3)
			continue;
		if ((uintptr_t)addr >= lo && (uintptr_t)addr < hi) {
			strcpy(perms, p);
			char *q = off ? line + off : line + strlen(line);
			q[strcspn(q, "\n")] = 0;
			snprintf(path, pathlen, "%s", *q ? q : "[anon]");
			found = 1;
			break;
		}
	}
	fclose(f);
	return found;
}

static void print_real(const char *key, const char *path)
{
	char real[PATH_MAX];
	printf("%s %s\n", key, realpath(path, real) ? real : path);
}

static void cmd_info(void)
{
	Dl_info di;
	void *alloc = dlsym(RTLD_DEFAULT, "ffi_closure_alloc");
	void *prep = dlsym(RTLD_DEFAULT, "ffi_prep_closure_loc");
	void *cifp = dlsym(RTLD_DEFAULT, "ffi_prep_cif");
	char provider[PATH_MAX] = "?";
	if (alloc && dladdr(alloc, &di) && di.dli_fname) {
		if (!realpath(di.dli_fname, provider))
			snprintf(provider, sizeof provider, "%s", di.dli_fname);
		printf("closure_api_provider %s\n", provider);
	}
	if (prep && dladdr(prep, &di) && di.dli_fname)
		print_real("prep_closure_provider", di.dli_fname);
	if (cifp && dladdr(cifp, &di) && di.dli_fname)
		print_real("libffi", di.dli_fname);
	const char *(*version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "ffi_get_version");
	printf("libffi_version %s\n", version ? version() : "unknown(before-3.5)");

	struct sig *s = find_sig("i_ii");
	void *code;
	ffi_closure *cl = make_closure(s, &code);
	int r = ((int (*)(int, int))code)(20, 3);
	if (r != ref_i_ii(20, 3))
		die("info: the closure returned a wrong result");
	printf("closure_call ok\n");
	printf("code_is_closure %d\n", code == (void *)cl);
	char cperms[8] = "?", cpath[PATH_MAX] = "?", dperms[8] = "?", dpath[PATH_MAX] = "?";
	map_of(code, cperms, cpath, sizeof cpath);
	map_of(cl, dperms, dpath, sizeof dpath);
	printf("code_map %s %s\n", cperms, cpath);
	printf("closure_map %s %s\n", dperms, dpath);
	int code_w = strchr(cperms, 'w') != NULL, code_x = strchr(cperms, 'x') != NULL;
	/* Static trampolines: the code is read+execute, mapped from the file
	 * that provides ffi_closure_alloc, and the closure is elsewhere. */
	char creal[PATH_MAX];
	int from_provider = cpath[0] == '/' && realpath(cpath, creal) && strcmp(creal, provider) == 0;
	int is_static = code_x && !code_w && from_provider && code != (void *)cl;
	printf("trampoline %s\n", is_static ? "static" : "classic");
	int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "statictramp_owns_code");
	if (owns)
		printf("statictramp_owns_code %d\n", owns(code));
	else
		printf("statictramp_owns_code absent\n");
	ffi_closure_free(cl);
}

static long arg_long(int argc, char **argv, int i, long def)
{
	if (argc <= i)
		return def;
	char *end;
	errno = 0;
	long v = strtol(argv[i], &end, 10);
	if (errno || *end || v < 0) {
		fprintf(stderr, "error bad number %s\n", argv[i]);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	const char *r = getenv("BENCH_REPS");
	if (r && atoi(r) > 0)
		reps = atoi(r);
	prep_cifs();
	if (strcmp(cmd, "calls") == 0)
		cmd_calls(arg_long(argc, argv, 2, 10000000));
	else if ((strcmp(cmd, "loop") == 0 || strcmp(cmd, "floorloop") == 0) && argc > 2)
		cmd_loop(argv[2], cmd[0] == 'f', arg_long(argc, argv, 3, 1000000));
	else if (strcmp(cmd, "cycle") == 0)
		cmd_cycle(arg_long(argc, argv, 2, 1000000));
	else if (strcmp(cmd, "parts") == 0)
		cmd_parts(arg_long(argc, argv, 2, 1000000));
	else if (strcmp(cmd, "scale") == 0)
		cmd_scale(arg_long(argc, argv, 2, 1000000));
	else if (strcmp(cmd, "threads") == 0 && argc > 2)
		cmd_threads((int)arg_long(argc, argv, 2, 2), arg_long(argc, argv, 3, 1000000));
	else if (strcmp(cmd, "info") == 0)
		cmd_info();
	else {
		fprintf(stderr,
			"usage: bench calls [ITERS] | loop SIG|all ITERS | floorloop SIG|all ITERS |\n"
			"             cycle [ITERS] | parts [ITERS] | scale N | threads T ITERS | info\n"
			"SIG: v_v i_ii d_4d4i s16_s16 i_s40 l_8l4d, on i386 also i_ii_reg\n"
			"env: BENCH_REPS (timed repetitions, default 5), BENCH_SKIP (SIG,SIG...:\n"
			"     not measured)\n");
		return 2;
	}
	if (fflush(stdout) != 0)
		return 1;
	return 0;
}
