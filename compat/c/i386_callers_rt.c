/*
 * i386_callers_rt.c: the runtime and main of the i386 caller programs
 * (i386_callers.h says what they test). Each (case, caller) runs in its own
 * process, so that a closure that crashes or corrupts the stack fails its
 * case and the others still run and are reported.
 *
 * Usage: i386_callers [--abi NAME]... [--case ID]... [--caller gcc|asm|ref]...
 *                     [--require-statictramp] [--no-fork] [--list] [--self-test]
 *   --abi NAME   only these ABIs (FFI_SYSV or SYSV, any case)
 *   --case ID    only these cases (ids as --list prints them)
 *   --caller C   only these callers (default: all three)
 *   --require-statictramp  fail every closure statictramp_owns_code (looked
 *                up with dlsym) does not claim, or all if it is absent
 *   --no-fork    run in this process (for a debugger; a crash ends the run)
 *   --list       print the cases and exit
 *   --self-test  run the asm caller against two wrong callees (in
 *                i386_asm_callers.S): exit 0 iff all six wrongs are reported
 *
 * Output: a `FAIL <abi> #<id> <signature> <caller>: <what>` line per
 * mismatch; then per ABI
 *   `abi FFI_SYSV cases N gcc P/N asm P/N ref P/N pass P/N`
 * (pass: the cases all selected callers passed), the closures
 *   `owners statictramp K/M` or `owners statictramp_owns_code absent`,
 * and `result ok` or `result FAIL <n>`. Exit status 0 iff no failure.
 */
#include "i386_callers.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

_Static_assert(sizeof(void *) == 4, "the i386 callers are for i386");
_Static_assert(offsetof(struct i386_raw, fn) == RAW_FN, "RAW_FN");
_Static_assert(offsetof(struct i386_raw, eax) == RAW_EAX, "RAW_EAX");
_Static_assert(offsetof(struct i386_raw, edx) == RAW_EDX, "RAW_EDX");
_Static_assert(offsetof(struct i386_raw, ecx) == RAW_ECX, "RAW_ECX");
_Static_assert(offsetof(struct i386_raw, nwords) == RAW_NWORDS, "RAW_NWORDS");
_Static_assert(offsetof(struct i386_raw, misalign) == RAW_MISALIGN, "RAW_MISALIGN");
_Static_assert(offsetof(struct i386_raw, x87) == RAW_X87, "RAW_X87");
_Static_assert(offsetof(struct i386_raw, saved_esp) == RAW_SAVED_ESP, "RAW_SAVED_ESP");
_Static_assert(offsetof(struct i386_raw, esp_before) == RAW_ESP_BEFORE, "RAW_ESP_BEFORE");
_Static_assert(offsetof(struct i386_raw, out_eax) == RAW_OUT_EAX, "RAW_OUT_EAX");
_Static_assert(offsetof(struct i386_raw, out_edx) == RAW_OUT_EDX, "RAW_OUT_EDX");
_Static_assert(offsetof(struct i386_raw, out_ecx) == RAW_OUT_ECX, "RAW_OUT_ECX");
_Static_assert(offsetof(struct i386_raw, out_ebx) == RAW_OUT_EBX, "RAW_OUT_EBX");
_Static_assert(offsetof(struct i386_raw, out_esi) == RAW_OUT_ESI, "RAW_OUT_ESI");
_Static_assert(offsetof(struct i386_raw, out_edi) == RAW_OUT_EDI, "RAW_OUT_EDI");
_Static_assert(offsetof(struct i386_raw, out_ebp) == RAW_OUT_EBP, "RAW_OUT_EBP");
_Static_assert(offsetof(struct i386_raw, out_esp) == RAW_OUT_ESP, "RAW_OUT_ESP");
_Static_assert(offsetof(struct i386_raw, out_eflags) == RAW_OUT_EFLAGS, "RAW_OUT_EFLAGS");
_Static_assert(offsetof(struct i386_raw, fsw_before) == RAW_FSW_BEFORE, "RAW_FSW_BEFORE");
_Static_assert(offsetof(struct i386_raw, fsw_after) == RAW_FSW_AFTER, "RAW_FSW_AFTER");
_Static_assert(offsetof(struct i386_raw, canary_at) == RAW_CANARY_AT, "RAW_CANARY_AT");
_Static_assert(offsetof(struct i386_raw, out_canary) == RAW_OUT_CANARY, "RAW_OUT_CANARY");
_Static_assert(offsetof(struct i386_raw, st0) == RAW_ST0, "RAW_ST0");
_Static_assert(offsetof(struct i386_raw, words) == RAW_WORDS, "RAW_WORDS");
_Static_assert(sizeof(struct i386_raw) == RAW_SIZE, "RAW_SIZE");

struct i386_raw i386_raw;
struct ctx *cur;

/* ---- reporting -------------------------------------------------------- */

void fail(struct ctx *c, const char *fmt, ...)
{
    va_list ap;
    printf("FAIL %s #%d %s %s: ", c->cs->abi_name, c->cs->id, c->cs->sig, c->who);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    c->fails++;
}

static void hex(char *out, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        sprintf(out + 3 * i, "%02x ", b[i]);
    out[n ? 3 * n - 1 : 0] = 0;
}

void bad_value(struct ctx *c, int i, const void *got, const void *expected, size_t n)
{
    char g[3 * 64 + 1], e[3 * 64 + 1];
    if (n > 64)
        n = 64;
    hex(g, got, n);
    hex(e, expected, n);
    if (i < 0)
        fail(c, "return value: got %s, expected %s", g, e);
    else
        fail(c, "argument %d: got %s, expected %s", i, g, e);
}

struct ctx *handler_enter(ffi_cif *cif, void *user_data)
{
    struct ctx *c = cur;
    c->calls++;
    if (user_data != c)
        fail(c, "user_data %p, expected %p", user_data, (void *)c);
    if (cif->abi != c->cs->abi)
        fail(c, "cif->abi %d, expected %d", (int)cif->abi, (int)c->cs->abi);
    return c;
}

struct ctx *ref_enter(void)
{
    cur->calls++;
    return cur;
}

void gcc_check_sp(struct ctx *c, uint32_t before, uint32_t after)
{
    int d = (int)(after - before);
    if (d)
        fail(c, "the stack pointer is %+d bytes off after the call: the callee popped "
                "%d bytes %s than the function type says",
             d, d < 0 ? -d : d, d < 0 ? "fewer" : "more");
}

/* ---- the asm caller's image and checks --------------------------------- */

void raw_begin(void)
{
    memset(&i386_raw, 0, sizeof i386_raw);
    i386_raw.eax = GARBAGE_EAX;
    i386_raw.edx = GARBAGE_EDX;
    i386_raw.ecx = GARBAGE_ECX;
}

void raw_reg(uint32_t *reg, const void *v, size_t n)
{
    uint32_t w;
    if (n > 4)
        abort();
    memset(&w, GARBAGE_BYTE, sizeof w);
    memcpy(&w, v, n);
    *reg = w;
}

void raw_push(const void *v, size_t n)
{
    uint32_t buf[RAW_MAXWORDS];
    size_t m = (n + 3) / 4;
    if (m > RAW_MAXWORDS - i386_raw.nwords)
        abort();
    memset(buf, GARBAGE_BYTE, 4 * m);
    memcpy(buf, v, n);
    /* Its highest word first, so that word 0 ends at the lowest address. */
    while (m-- > 0)
        i386_raw.words[i386_raw.nwords++] = buf[m];
}

void raw_run(struct ctx *c, void *fn, unsigned misalign, unsigned pop, int x87)
{
    const struct i386_raw *r = &i386_raw;
    static const char *const names[4] = {"ebx", "esi", "edi", "ebp"};
    const uint32_t want[4] = {CANARY_EBX, CANARY_ESI, CANARY_EDI, CANARY_EBP};

    i386_raw.fn = (uint32_t)fn;
    i386_raw.misalign = misalign;
    i386_raw.x87 = x87 != 0;
    i386_raw_call();

    const uint32_t got[4] = {r->out_ebx, r->out_esi, r->out_edi, r->out_ebp};
    for (int i = 0; i < 4; i++)
        if (got[i] != want[i])
            fail(c, "%s not preserved: 0x%08x, was 0x%08x", names[i], got[i], want[i]);
    uint32_t at_call = r->esp_before - 4 * r->nwords;
    if (r->out_esp != at_call + pop)
        fail(c, "the callee popped %d bytes, the convention says %u",
             (int)(r->out_esp - at_call), pop);
    for (int i = 0; i < 4; i++)
        if (r->out_canary[i] != CANARY_STACK) {
            fail(c, "the stack above the arguments changed: word %d is 0x%08x", i,
                 r->out_canary[i]);
            break;
        }
    if (r->out_eflags & 0x400)
        fail(c, "the direction flag is set after the call");
    int top_before = (r->fsw_before >> 11) & 7, top_after = (r->fsw_after >> 11) & 7;
    int pushed = (top_before - top_after) & 7;
    if (pushed != (x87 != 0)) {
        fail(c, "the x87 stack holds %d values more after the call, expected %d", pushed,
             x87 != 0);
        /* Leave the FPU as a C caller expects it for the next checks. */
        __asm__ volatile("fninit");
    }
}

void raw_ret_eax(struct ctx *c, uint32_t expected, size_t size)
{
    uint32_t mask = c->extend || size >= 4 ? 0xffffffffu : (1u << 8 * size) - 1;
    if ((i386_raw.out_eax ^ expected) & mask)
        fail(c, "return: eax 0x%08x, expected 0x%08x", i386_raw.out_eax, expected);
}

void raw_ret_eax_edx(struct ctx *c, uint64_t expected)
{
    uint64_t got = (uint64_t)i386_raw.out_edx << 32 | i386_raw.out_eax;
    if (got != expected)
        fail(c, "return: edx:eax 0x%016llx, expected 0x%016llx", (unsigned long long)got,
             (unsigned long long)expected);
}

void raw_ret_bytes(struct ctx *c, const void *expected, size_t n)
{
    uint32_t regs[2] = {i386_raw.out_eax, i386_raw.out_edx};
    if (n > sizeof regs)
        abort();
    if (memcmp(regs, expected, n) != 0)
        bad_value(c, -1, regs, expected, n);
}

void raw_ret_x87(struct ctx *c, long double expected)
{
    if (i386_raw.st0 != expected)
        fail(c, "return: st(0) %La, expected %La", i386_raw.st0, expected);
}

void raw_ret_echo(struct ctx *c, const void *sret)
{
    if (i386_raw.out_eax != (uint32_t)sret)
        fail(c, "eax 0x%08x after a struct return, not the hidden pointer %p",
             i386_raw.out_eax, sret);
}

/* ---- main --------------------------------------------------------------- */

enum { CALLER_GCC, CALLER_ASM, CALLER_REF, NCALLERS };
static const char *const caller_names[NCALLERS] = {"gcc", "asm", "ref"};

/* Bits of a child's exit status. */
enum { X_FAILED = 1, X_OWNED = 2, X_OWNS_FOUND = 4, X_MADE = 8 };

static int (*owns_code)(const void *);

/* Set in a child: a child whose stack a wrong callee corrupted may return
 * into main's loop; it must then stop, not run the next cases. */
static volatile int in_child;

/* Runs case `cs` with one caller; returns X_* bits. */
static int run_one(const struct ccase *cs, int caller)
{
    static const char *const asm_names[4] = {"asm/0", "asm/4", "asm/8", "asm/12"};
    struct ctx c = {cs, caller_names[caller], 0, 0, caller != CALLER_REF};
    int bits = 0;

    cur = &c;
    if (caller == CALLER_REF) {
        cs->raw(&c, cs->ref, 0);
        if (c.calls != 1)
            fail(&c, "the reference callee ran %d times, not once", c.calls);
        return c.fails ? X_FAILED : 0;
    }

    ffi_cif cif;
    ffi_status st = cs->variadic ? ffi_prep_cif_var(&cif, cs->abi, cs->nfixed, cs->nargs,
                                                    cs->rtype, cs->atypes)
                                 : ffi_prep_cif(&cif, cs->abi, cs->nargs, cs->rtype, cs->atypes);
    if (st != FFI_OK) {
        fail(&c, "ffi_prep_cif: status %d", (int)st);
        return X_FAILED;
    }
    void *code = NULL;
    ffi_closure *cl = ffi_closure_alloc(sizeof *cl, &code);
    if (!cl || !code) {
        fail(&c, "ffi_closure_alloc failed");
        return X_FAILED;
    }
    st = ffi_prep_closure_loc(cl, &cif, cs->fun, &c, code);
    if (st != FFI_OK) {
        fail(&c, "ffi_prep_closure_loc: status %d", (int)st);
        return X_FAILED;
    }
    bits |= X_MADE;
    if (owns_code) {
        bits |= X_OWNS_FOUND;
        if (owns_code(code))
            bits |= X_OWNED;
    }

    if (caller == CALLER_GCC) {
        cs->gcc(&c, code);
        if (c.calls != 1)
            fail(&c, "the handler ran %d times, not once", c.calls);
    } else {
        for (unsigned m = 0; m < 16; m += 4) {
            c.who = asm_names[m / 4];
            c.calls = 0;
            cs->raw(&c, code, m);
            if (c.calls != 1)
                fail(&c, "the handler ran %d times, not once", c.calls);
        }
    }
    ffi_closure_free(cl);
    return bits | (c.fails ? X_FAILED : 0);
}

/* --self-test: i386_raw_call's checks against two wrong callees; each of
 * the six wrongs must be reported. */
static int self_test(void)
{
    static const struct ccase cs = {.id = 0, .abi_name = "self-test", .sig = "void(u32)"};
    struct ctx c = {&cs, "asm", 0, 0, 1};
    uint32_t w = 5;

    raw_begin();
    raw_push(&w, sizeof w);
    raw_run(&c, (void *)i386_bad_callee_regs, 0, 0, 0); /* ebx, ebp, pop, DF, x87 */
    raw_begin();
    raw_push(&w, sizeof w);
    /* misalign 4 with one word: no padding, the canary is the next word. */
    raw_run(&c, (void *)i386_bad_callee_stack, 4, 0, 0);
    printf("self-test %d/6 wrongs reported\n", c.fails);
    return c.fails == 6 ? 0 : 1;
}

static const char *abi_short(const char *name)
{
    return strncmp(name, "FFI_", 4) == 0 ? name + 4 : name;
}

int main(int argc, char **argv)
{
    const char *abis[16];
    int nabis = 0, ids[64], nids = 0, callers = 0, require = 0, nofork = 0, list = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--abi") && i + 1 < argc && nabis < 16)
            abis[nabis++] = argv[++i];
        else if (!strcmp(a, "--case") && i + 1 < argc && nids < 64)
            ids[nids++] = atoi(argv[++i]);
        else if (!strcmp(a, "--caller") && i + 1 < argc) {
            const char *n = argv[++i];
            int k;
            for (k = 0; k < NCALLERS && strcmp(n, caller_names[k]); k++)
                ;
            if (k == NCALLERS) {
                fprintf(stderr, "unknown caller %s (gcc, asm, ref)\n", n);
                return 2;
            }
            callers |= 1 << k;
        } else if (!strcmp(a, "--require-statictramp"))
            require = 1;
        else if (!strcmp(a, "--no-fork"))
            nofork = 1;
        else if (!strcmp(a, "--list"))
            list = 1;
        else if (!strcmp(a, "--self-test"))
            return self_test();
        else {
            fprintf(stderr,
                    "usage: %s [--abi NAME]... [--case ID]... [--caller gcc|asm|ref]... "
                    "[--require-statictramp] [--no-fork] [--list] [--self-test]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!callers)
        callers = (1 << NCALLERS) - 1;
    owns_code = (int (*)(const void *))dlsym(RTLD_DEFAULT, "statictramp_owns_code");

    /* ABIs in the order the cases name them. */
    const char *abi_order[16];
    int nabi_order = 0;
    int total[16][NCALLERS + 1] = {{0}}, passed[16][NCALLERS + 1] = {{0}};
    int closures = 0, owned = 0, owns_found = 0, failures = 0;

    for (unsigned k = 0; k < ncases; k++) {
        const struct ccase *cs = &cases[k];
        if (in_child)
            _exit(X_FAILED);
        int keep = nabis == 0;
        for (int i = 0; i < nabis; i++)
            keep |= !strcasecmp(abis[i], cs->abi_name) ||
                    !strcasecmp(abis[i], abi_short(cs->abi_name));
        if (nids) {
            int found = 0;
            for (int i = 0; i < nids; i++)
                found |= ids[i] == cs->id;
            keep &= found;
        }
        if (!keep)
            continue;
        if (list) {
            printf("%d %s %s\n", cs->id, cs->abi_name, cs->sig);
            continue;
        }
        int a;
        for (a = 0; a < nabi_order && strcmp(abi_order[a], cs->abi_name); a++)
            ;
        if (a == nabi_order) {
            if (nabi_order == 16)
                abort();
            abi_order[nabi_order++] = cs->abi_name;
        }
        int all_ok = 1;
        for (int caller = 0; caller < NCALLERS; caller++) {
            if (in_child)
                _exit(X_FAILED);
            if (!(callers & 1 << caller))
                continue;
            int bits, ok = 1;
            struct ctx c = {cs, caller_names[caller], 0, 0, 0};
            fflush(stdout);
            if (nofork) {
                bits = run_one(cs, caller);
            } else {
                pid_t pid = fork();
                if (pid < 0) {
                    perror("fork");
                    return 2;
                }
                if (pid == 0) {
                    in_child = 1;
                    alarm(20);
                    bits = run_one(cs, caller);
                    fflush(stdout);
                    _exit(bits);
                }
                int status;
                if (waitpid(pid, &status, 0) != pid) {
                    perror("waitpid");
                    return 2;
                }
                if (WIFSIGNALED(status)) {
                    int sig = WTERMSIG(status);
                    fail(&c, "%s (signal %d)",
                         sig == SIGALRM ? "did not return in 20 s" : strsignal(sig), sig);
                    bits = X_FAILED;
                } else if (WEXITSTATUS(status) > 15) {
                    fail(&c, "the process exited with status %d", WEXITSTATUS(status));
                    bits = X_FAILED;
                } else {
                    bits = WEXITSTATUS(status);
                }
            }
            if (bits & X_FAILED)
                ok = 0;
            if (bits & X_MADE) {
                closures++;
                owned += (bits & X_OWNED) != 0;
                owns_found |= (bits & X_OWNS_FOUND) != 0;
                if (require && !(bits & X_OWNED)) {
                    fail(&c, (bits & X_OWNS_FOUND)
                                 ? "statictramp_owns_code does not claim the closure"
                                 : "statictramp_owns_code not found (no statictramp loaded)");
                    ok = 0;
                }
            }
            total[a][caller]++;
            passed[a][caller] += ok;
            all_ok &= ok;
            failures += !ok;
        }
        total[a][NCALLERS]++;
        passed[a][NCALLERS] += all_ok;
    }
    if (in_child)
        _exit(X_FAILED);
    if (list)
        return 0;

    for (int a = 0; a < nabi_order; a++) {
        printf("abi %s cases %d", abi_order[a], total[a][NCALLERS]);
        for (int caller = 0; caller < NCALLERS; caller++)
            if (callers & 1 << caller)
                printf(" %s %d/%d", caller_names[caller], passed[a][caller], total[a][caller]);
        printf(" pass %d/%d\n", passed[a][NCALLERS], total[a][NCALLERS]);
    }
    if (owns_found)
        printf("owners statictramp %d/%d\n", owned, closures);
    else
        printf("owners statictramp_owns_code absent\n");
    if (failures)
        printf("result FAIL %d\n", failures);
    else
        printf("result ok\n");
    return failures ? 1 : 0;
}
