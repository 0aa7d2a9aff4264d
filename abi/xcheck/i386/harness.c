/* Cross-check of statictramp-abi's i386 Plans against GCC-compiled callers.
 *
 * cases.c (from examples/xcheck_i386_cases.rs) holds, per case, static
 * argument and return objects, a caller call<k>() compiled for the case's
 * convention, and the Plan. main() runs every caller with entry_i386
 * (entry.S) as the callee: it saves the argument registers in the
 * statictramp frame layout and calls simulate(), a stand-in for the
 * runtime's dispatcher, which finds every argument through the Plan and
 * compares its bytes with the caller's object, then delivers the return
 * object through the Plan (return registers, hidden pointer, x87); the
 * entry pops the Plan's callee_pop bytes. The caller then checks that its
 * stack pointer is where GCC's code expects it after the call (the callee
 * popped what the convention says) and that it got the return object.
 * Only the bytes that hold a value are compared (masks: not padding, not
 * the 2 unused bytes of a long double, a union's first member).
 *
 * Built with -DXCHECK_LIBFFI and a libffi, the same callers call libffi's
 * own closures instead (one child process per case, as some crash), and
 * the harness counts per ABI how many behave: a measurement of libffi's
 * i386 closures against GCC's callers, not a test of ours. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loc {
  int kind; /* 0 Frame 1 Stack */
  unsigned off, size;
  const void *val;
  const char *mask;
};
struct rmove { unsigned at, len, sign, dst; };
struct tcase {
  const char *abi;
  void (*call)(void *);
  unsigned nargs;
  struct loc locs[8];
  int rk; /* 0 Void 1 Regs 2 Memory 3 X87 5 MemoryStack 6 X87Float 7 X87Double */
  unsigned nmoves;
  struct rmove moves[2];
  unsigned ptr, echo, pop;
  const void *rval;
  unsigned long rsize;
  const char *rmask;
};

#ifdef XCHECK_LIBFFI
#include <ffi.h>
#include <sys/wait.h>
#include <unistd.h>
struct ffi_case { ffi_abi abi; ffi_type **args; ffi_type *ret; };
#endif

void entry_i386(void);
int simulate(unsigned char *frame);
unsigned cur_pop;
static int curi, fails, simulated;
static void *expect_ptr;
static void check_call(int k, unsigned long delta);
static void check_ret(int k, const void *got);

#include "cases.c"

#define FAIL(...)                                                            \
  do {                                                                       \
    fprintf(stderr, "case %d (%s): ", curi, cases[curi].abi);                \
    fprintf(stderr, __VA_ARGS__);                                            \
    fputc('\n', stderr);                                                     \
    fails++;                                                                 \
  } while (0)

static unsigned char retbuf[32] __attribute__((aligned(16)));

static int differs(const unsigned char *a, const unsigned char *b, const char *mask) {
  for (size_t i = 0; mask[i]; i++)
    if (mask[i] == 'x' && a[i] != b[i]) return 1;
  return 0;
}

int simulate(unsigned char *frame) {
  const struct tcase *c = &cases[curi];
  unsigned char *stack = *(unsigned char **)(frame + 12);
  simulated++;
  for (unsigned i = 0; i < c->nargs; i++) {
    const struct loc *l = &c->locs[i];
    const unsigned char *p = l->kind == 0 ? frame + l->off : stack + l->off;
    if (differs(p, l->val, l->mask))
      FAIL("arg %u (%s %u, %u bytes) mismatch", i, l->kind ? "stack" : "frame", l->off, l->size);
  }
  cur_pop = c->pop;
  memset(frame + 16, 0xCC, 16); /* return slots: garbage unless written */
  switch (c->rk) {
  case 0:
    return 0;
  case 1:
    for (unsigned k = 0; k < c->nmoves; k++) {
      const struct rmove *m = &c->moves[k];
      uint64_t v = 0;
      memcpy(&v, (const unsigned char *)c->rval + m->at, m->len);
      if (m->sign && m->len < 8) {
        int sh = 64 - 8 * m->len;
        v = (uint64_t)((int64_t)(v << sh) >> sh);
      }
      memcpy(frame + m->dst, &v, 8);
    }
    return 0;
  case 2:
  case 5: {
    unsigned char *slot = c->rk == 2 ? frame + c->ptr : stack + c->ptr;
    void *dst;
    memcpy(&dst, slot, sizeof dst);
    if (expect_ptr && dst != expect_ptr) {
      FAIL("hidden pointer %p, the caller passed %p", dst, expect_ptr);
      return 0;
    }
    memcpy(dst, c->rval, c->rsize);
    memcpy(frame + c->echo, &dst, sizeof dst);
    return 0;
  }
  case 3:
  case 6:
  case 7: {
    void *b = retbuf;
    memcpy(retbuf, c->rval, c->rsize);
    memcpy(frame + 16, &b, sizeof b);
    return c->rk == 3 ? 1 : c->rk == 6 ? 3 : 4;
  }
  }
  abort();
}

static void check_call(int k, unsigned long delta) {
  if (delta != 0)
    FAIL("stack pointer off by %ld after the call (callee_pop %u)", (long)delta, cases[k].pop);
}

static void check_ret(int k, const void *got) {
  if (differs(got, cases[k].rval, cases[k].rmask))
    FAIL("return value mismatch (ret kind %d, %lu bytes)", cases[k].rk, cases[k].rsize);
}

#ifdef XCHECK_LIBFFI
/* The handler of libffi's closure: the same checks as simulate(). */
static void handler(ffi_cif *cif, void *ret, void **args, void *ud) {
  const struct tcase *c = &cases[curi];
  (void)cif;
  (void)ud;
  simulated++;
  for (unsigned i = 0; i < c->nargs; i++)
    if (differs(args[i], c->locs[i].val, c->locs[i].mask))
      FAIL("arg %u mismatch", i);
  if (c->rsize) memcpy(ret, c->rval, c->rsize);
}

/* Runs case k against a libffi closure in a child: 0 passed, 1 failed,
   2 crashed, 3 refused by ffi_prep_cif/ffi_prep_closure_loc. */
static int run_libffi(int k) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    const struct ffi_case *f = &ffi_cases[k];
    ffi_cif cif;
    void *code;
    ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
    if (!cl || ffi_prep_cif(&cif, f->abi, cases[k].nargs, f->ret, f->args) != FFI_OK ||
        ffi_prep_closure_loc(cl, &cif, handler, 0, code) != FFI_OK)
      _exit(3);
    curi = k;
    cases[k].call(code);
    if (simulated != 1) FAIL("the handler was not called once");
    fflush(stderr);
    _exit(fails != 0);
  }
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
}

/* Per ABI: passed, failed, crashed, refused. */
int main(void) {
  static const char *names[] = {"SYSV", "STDCALL", "THISCALL", "FASTCALL", "MS_CDECL", "PASCAL", "REGISTER"};
  int tally[7][4] = {{0}};
  if (!getenv("VERBOSE")) freopen("/dev/null", "w", stderr);
  for (int k = 0; k < NCASES; k++) {
    int a = 0;
    while (strcmp(names[a], cases[k].abi)) a++;
    int r = run_libffi(k);
    if (r == 2) fprintf(stderr, "case %d (%s): crashed\n", k, cases[k].abi);
    tally[a][r]++;
  }
  int bad = 0;
  for (int a = 0; a < 7; a++) {
    printf("%-8s %4d passed %4d failed %4d crashed %4d refused\n", names[a], tally[a][0],
           tally[a][1], tally[a][2], tally[a][3]);
    bad += tally[a][1] + tally[a][2] + tally[a][3];
  }
  return bad != 0;
}
#else
int main(void) {
  const char *only_s = getenv("ONLY");
  int only = only_s ? atoi(only_s) : -1, ran = 0;
  for (curi = 0; curi < NCASES; curi++) {
    if (only >= 0 && curi != only) continue;
    expect_ptr = 0;
    int before = simulated;
    cases[curi].call((void *)entry_i386);
    if (simulated != before + 1) FAIL("the entry was not called once");
    ran++;
  }
  printf("%d cases, %d failures\n", ran, fails);
  return fails != 0;
}
#endif
