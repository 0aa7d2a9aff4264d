/* Cross-check of statictramp-abi Plans against libffi's ffi_call.
 *
 * For every generated case (cases.h, from examples/xcheck_cases.rs):
 * ffi_call() calls entry_sysv/entry_win64 (entry.S), which saves the
 * argument registers in the statictramp frame layout (abi/src/x86_64/frame.rs)
 * and calls simulate(), a stand-in for the runtime dispatcher. simulate()
 * finds every argument through the Plan and compares it with the bytes
 * ffi_call was given, then delivers a known return value through the Plan
 * (return moves, hidden pointer, or x87); main() compares what ffi_call
 * stored in rvalue. Only the bytes libffi's ffi_call sends are compared
 * (masks: not padding, and for structs of stated layout the bytes of the
 * elements where libffi's classifier walk puts them, see
 * examples/xcheck_cases.rs). */
#include <ffi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct piece { unsigned src, at, len; };
struct loc {
  int kind; /* 0 Frame 1 Stack 2 FramePtr 3 StackPtr 4 Gather */
  unsigned off, npieces;
  unsigned long size, align;
  struct piece p[2];
  const char *mask;
};
struct rmove { unsigned at, len, sign, dst; };
struct tcase {
  ffi_abi abi;
  unsigned nargs;
  ffi_type **args, *ret;
  struct loc locs[16];
  int rk; /* 0 Void 1 Regs 2 Memory 3 X87 4 X87Pair */
  unsigned nmoves;
  struct rmove moves[4];
  unsigned ptr, echo;
  unsigned long rsize, ralign;
  unsigned ret_buf, scratch;
  const char *rmask;
};
#include "cases.h"

void entry_sysv(void);
void entry_win64(void);

static struct tcase *cur;
static int curi, fails;
static unsigned char pat[16][64], rpat[64];
static unsigned char retbuf[64] __attribute__((aligned(16)));

#define FAIL(...)                                                            \
  do {                                                                       \
    fprintf(stderr, "case %d: ", curi);                                      \
    fprintf(stderr, __VA_ARGS__);                                            \
    fputc('\n', stderr);                                                     \
    fails++;                                                                 \
  } while (0)

static int differs(const unsigned char *a, const unsigned char *b, const char *mask) {
  for (size_t i = 0; mask[i]; i++)
    if (mask[i] == 'x' && a[i] != b[i]) return 1;
  return 0;
}

static int is_x87(ffi_type *t) {
  return t == &ffi_type_longdouble || t == &ffi_type_complex_longdouble;
}

/* Called by entry.S with the saved frame; returns the RetKind. */
int simulate(unsigned char *frame) {
  unsigned char *stack = *(unsigned char **)(frame + 144);
  for (unsigned i = 0; i < cur->nargs; i++) {
    struct loc *l = &cur->locs[i];
    unsigned char gather[16], *p = 0;
    switch (l->kind) {
    case 0: p = frame + l->off; break;
    case 1: p = stack + l->off; break;
    case 2: p = *(unsigned char **)(frame + l->off); break;
    case 3: p = *(unsigned char **)(stack + l->off); break;
    case 4: {
      /* Pieces stay inside the value and cover every byte it carries (an
         eightbyte of class NO_CLASS carries none and has no piece). */
      char covered[16] = {0};
      memset(gather, 0xAB, sizeof gather);
      for (unsigned k = 0; k < l->npieces; k++) {
        if (l->p[k].at + l->p[k].len > l->size || l->p[k].at + l->p[k].len > sizeof gather)
          FAIL("arg %u: piece %u beyond the value", i, k);
        memcpy(gather + l->p[k].at, frame + l->p[k].src, l->p[k].len);
        memset(covered + l->p[k].at, 1, l->p[k].len);
      }
      for (size_t b = 0; l->mask[b]; b++)
        if (l->mask[b] == 'x' && (b >= sizeof covered || !covered[b]))
          FAIL("arg %u: byte %zu carries data but no piece covers it", i, b);
      p = gather;
      break;
    }
    }
    if (differs(p, pat[i], l->mask))
      FAIL("arg %u (loc kind %d, off %u, size %lu) mismatch", i, l->kind, l->off, l->size);
  }
  memset(frame + 112, 0xCC, 32); /* return slots: garbage unless moved */
  switch (cur->rk) {
  case 0: return 0;
  case 1:
    memcpy(retbuf, rpat, sizeof retbuf);
    for (unsigned k = 0; k < cur->nmoves; k++) {
      struct rmove *m = &cur->moves[k];
      uint64_t v = 0;
      memcpy(&v, retbuf + m->at, m->len);
      if (m->sign && m->len < 8) {
        int sh = 64 - 8 * m->len;
        v = (uint64_t)((int64_t)(v << sh) >> sh);
      }
      memcpy(frame + m->dst, &v, 8);
    }
    return 0;
  case 2: {
    unsigned char *dst = *(unsigned char **)(frame + cur->ptr);
    memcpy(dst, rpat, cur->rsize);
    memcpy(frame + cur->echo, &dst, 8);
    return 0;
  }
  case 3:
  case 4: {
    void *b = retbuf;
    memcpy(retbuf, rpat, sizeof retbuf);
    memcpy(frame + 112, &b, 8);
    return cur->rk == 3 ? 1 : 2;
  }
  }
  abort();
}

int main(void) {
  const char *only_s = getenv("ONLY");
  int only = only_s ? atoi(only_s) : -1;
  for (curi = 0; curi < NCASES; curi++) {
    if (only >= 0 && curi != only) continue;
    cur = &cases[curi];
    ffi_cif cif;
    if (ffi_prep_cif(&cif, cur->abi, cur->nargs, cur->ret, cur->args) != FFI_OK) {
      FAIL("ffi_prep_cif failed");
      continue;
    }
    for (unsigned i = 0; i < cur->nargs; i++)
      if (cur->args[i]->size != cur->locs[i].size || cur->args[i]->alignment != cur->locs[i].align)
        FAIL("arg %u layout: libffi %zu/%u, ours %lu/%lu", i, cur->args[i]->size,
             cur->args[i]->alignment, cur->locs[i].size, cur->locs[i].align);
    void *av[16];
    for (unsigned i = 0; i < cur->nargs; i++) {
      for (int j = 0; j < 64; j++) pat[i][j] = (unsigned char)(curi * 31 + i * 37 + j * 7 + 1);
      if (is_x87(cur->args[i])) { /* real x87 values: they may pass through fldt */
        long double v[2] = {1.25L + i + curi, -3.5L - i};
        memcpy(pat[i], v, sizeof v);
      }
      av[i] = pat[i];
    }
    for (int j = 0; j < 64; j++) rpat[j] = (unsigned char)(curi * 13 + j * 11 + 5);
    if (cur->rk == 3 || cur->rk == 4 || is_x87(cur->ret)) {
      long double v[2] = {7.75L + curi, -0.5L - curi};
      memcpy(rpat, v, sizeof v);
    }
    unsigned char rv[80] __attribute__((aligned(16)));
    memset(rv, 0x5A, sizeof rv);
    ffi_call(&cif, cur->abi == FFI_UNIX64 ? entry_sysv : entry_win64, rv, av);
    if (cur->ret->type == FFI_TYPE_VOID) continue;
    if (differs(rv, rpat, cur->rmask)) FAIL("return value mismatch (ret kind %d, size %lu)", cur->rk, cur->rsize);
    /* ffi_call widens small integer returns to an ffi_arg: check our extension. */
    int t = cur->ret->type;
    if (t >= FFI_TYPE_UINT8 && t <= FFI_TYPE_SINT32) {
      uint64_t got, v = 0;
      memcpy(&got, rv, 8);
      memcpy(&v, rpat, cur->rsize);
      int sh = 64 - 8 * (int)cur->rsize;
      uint64_t want = (t & 1) ? v : (uint64_t)((int64_t)(v << sh) >> sh); /* odd codes unsigned */
      if (got != want) FAIL("extension of type %d: got %llx want %llx", t, (unsigned long long)got, (unsigned long long)want);
    }
  }
  printf("%d cases, %d failures\n", NCASES, fails);
  return fails != 0;
}
