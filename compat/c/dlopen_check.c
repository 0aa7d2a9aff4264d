/* dlopen_check: statictramp loaded with dlopen, after startup, with threads.
 *
 * Why: the library keeps its per-thread state behind one TLS word
 * (asm/x86_64/tls.S, src/arch/x86_64/tls.rs) reached through a TLS
 * descriptor: its block lives in static TLS when there was room at load
 * (the offset is then the same in every thread) and in dynamically
 * allocated TLS otherwise. An object that arrives with dlopen (a Python
 * extension, a plugin) must work in threads that existed before the dlopen
 * and in threads created after it, on either path. This program checks
 * exactly that case.
 *
 * It does NOT link libstatictramp (only -lffi for ffi_prep_cif and the
 * ffi_type_* objects, -ldl, -lpthread). Given the preload library's path:
 *   - checks the library is not loaded yet (dlopen RTLD_NOLOAD), so the test
 *     really covers a late load (run it without LD_PRELOAD);
 *   - with --fill-static-tls PROBE HOG...: first uses up glibc's surplus
 *     static TLS, as other extensions loaded before it may have: dlopens
 *     each HOG (shared objects with initial-exec TLS blocks, tls_hog.c,
 *     largest first) and skips those refused with "cannot allocate memory
 *     in static TLS block"; then PROBE (the smallest block, 16 bytes) must
 *     be refused that way, or the surplus was not used up (exit 2);
 *   - starts 1 thread BEFORE the dlopen; it waits until the dlopen is done;
 *   - dlopen(path, RTLD_NOW | RTLD_LOCAL) (on failure: dlerror(), exit 2);
 *   - dlsym's ffi_closure_alloc, ffi_prep_closure_loc, ffi_closure_free and
 *     statictramp_owns_code from that handle, and checks (dladdr) that they
 *     are the dlopened library's, not the system libffi's (also loaded);
 *   - then 4 threads created AFTER the dlopen, the early thread and the main
 *     thread each run CYCLES cycles of alloc + prep (int(int,int), cif from
 *     the system libffi) + call through the code pointer + free, with up to
 *     LIVE closures alive at once (random slot replaced each cycle), so the
 *     thread caches and the global pool are both exercised. Every closure's
 *     code must be owned (statictramp_owns_code != 0), and every call's
 *     result must equal the value computed directly, also when a closure is
 *     called again just before it is freed;
 *   - the threads exit (their statictramp thread state is torn down), then
 *     the main thread holds POST closures alive at once (more than one
 *     thread cache holds) to use the pool the exited threads gave back.
 * The library is not dlclose'd (statictramp does not support unloading).
 *
 * Output on success (parsed by tests/dlopen.rs):
 *   static_tls filled hogs=<HOGs loaded> probe=refused   (--fill-static-tls)
 *   ok cycles=<total cycles> threads=<threads that ran them> post=<POST>
 * On failure: the first wrong result ("FAIL ...") and exit status 1.
 * Usage errors, dlopen/dlsym failures: exit status 2.
 *
 * Usage: dlopen_check LIB [--fill-static-tls PROBE HOG...]
 * Build: cc -O1 -Wall -Wextra -pthread -o dlopen_check dlopen_check.c -lffi -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ffi.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CYCLES 20000
#define LIVE 300
#define AFTER_THREADS 4
#define POST 2000

/* The closure API, as dlsym'd from the dlopened library. */
typedef void *(*alloc_fn)(size_t size, void **code);
typedef ffi_status (*prep_loc_fn)(ffi_closure *closure, ffi_cif *cif,
                                  void (*fun)(ffi_cif *, void *, void **, void *),
                                  void *user_data, void *codeloc);
typedef void (*free_fn)(void *closure);
typedef int (*owns_fn)(const void *code);

static alloc_fn st_alloc;
static prep_loc_fn st_prep_loc;
static free_fn st_free;
static owns_fn st_owns;

/* The cif shared by all threads (each thread also has its own). */
static ffi_cif shared_cif;
static ffi_type *arg_types[2];

/* The thread started before the dlopen waits here until it is done. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open;

/* The first failure is printed; later ones are only counted. */
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static int failed;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    pthread_mutex_lock(&fail_lock);
    if (!failed) {
        va_list ap;
        va_start(ap, fmt);
        printf("FAIL ");
        vprintf(fmt, ap);
        printf("\n");
        fflush(stdout);
        va_end(ap);
    }
    failed++;
    pthread_mutex_unlock(&fail_lock);
}

static int any_failed(void) {
    pthread_mutex_lock(&fail_lock);
    int f = failed;
    pthread_mutex_unlock(&fail_lock);
    return f;
}

/* What every closure computes, from its arguments and its user_data tag.
 * Unsigned arithmetic: wraps instead of overflowing. */
static int expect(int a, int b, uintptr_t tag) {
    return (int)((unsigned)a * 3u - (unsigned)b + (unsigned)tag);
}

/* The closure function: int f(int a, int b). */
static void handler(ffi_cif *cif, void *ret, void **args, void *user_data) {
    (void)cif;
    int a = *(int *)args[0];
    int b = *(int *)args[1];
    *(ffi_arg *)ret = (ffi_arg)(ffi_sarg)expect(a, b, (uintptr_t)user_data);
}

struct slot {
    ffi_closure *closure;
    int (*code)(int, int);
    uintptr_t tag;
};

/* Calls the closure in `s` with (a, b) and checks the result. */
static int call_check(const char *who, const struct slot *s, int a, int b) {
    int got = s->code(a, b);
    int want = expect(a, b, s->tag);
    if (got != want) {
        fail("%s: closure %p (code %p, tag %#lx) returned %d for (%d, %d), want %d", who,
             (void *)s->closure, (void *)s->code, (unsigned long)s->tag, got, a, b, want);
        return 0;
    }
    return 1;
}

/* Allocates and prepares a closure with `tag` on `cif` into `s`. */
static int make(const char *who, struct slot *s, ffi_cif *cif, uintptr_t tag) {
    void *code = NULL;
    ffi_closure *c = st_alloc(sizeof(ffi_closure), &code);
    if (c == NULL || code == NULL) {
        fail("%s: ffi_closure_alloc returned %p, code %p", who, (void *)c, code);
        return 0;
    }
    ffi_status st = st_prep_loc(c, cif, handler, (void *)tag, code);
    if (st != FFI_OK) {
        fail("%s: ffi_prep_closure_loc returned %d", who, (int)st);
        st_free(c);
        return 0;
    }
    if (st_owns(code) == 0) {
        fail("%s: statictramp_owns_code(%p) = 0 for a live closure", who, code);
        st_free(c);
        return 0;
    }
    s->closure = c;
    s->code = (int (*)(int, int))code;
    s->tag = tag;
    return 1;
}

struct worker {
    pthread_t thread;
    int id;
    const char *name;
    int waits; /* started before the dlopen: wait for the gate */
    long cycles;
};

/* CYCLES cycles of alloc + prep + call + free, up to LIVE closures alive. */
static void *work(void *arg) {
    struct worker *w = arg;
    if (w->waits) {
        pthread_mutex_lock(&gate_lock);
        while (!gate_open)
            pthread_cond_wait(&gate_cond, &gate_lock);
        pthread_mutex_unlock(&gate_lock);
    }
    ffi_cif own_cif;
    if (ffi_prep_cif(&own_cif, FFI_DEFAULT_ABI, 2, &ffi_type_sint, arg_types) != FFI_OK) {
        fail("%s: ffi_prep_cif failed", w->name);
        return NULL;
    }
    struct slot slots[LIVE];
    memset(slots, 0, sizeof slots);
    uint32_t rng = 0x9e3779b9u ^ (uint32_t)w->id * 0x85ebca6bu;
    long done = 0;
    for (long i = 0; i < CYCLES; i++) {
        rng = rng * 1664525u + 1013904223u;
        struct slot *s = &slots[(rng >> 8) % LIVE];
        int a = (int)(i * 7) - w->id * 1000;
        int b = w->id * 100003 - (int)i;
        if (s->closure != NULL) {
            /* Still right after the other allocations since it was made? */
            if (!call_check(w->name, s, b, a))
                break;
            st_free(s->closure);
            s->closure = NULL;
        }
        uintptr_t tag = ((uintptr_t)w->id << 20) | (uintptr_t)i;
        if (!make(w->name, s, (i & 1) ? &shared_cif : &own_cif, tag))
            break;
        if (!call_check(w->name, s, a, b))
            break;
        done++;
        if ((i & 1023) == 0 && any_failed())
            break;
    }
    for (int k = 0; k < LIVE; k++) {
        if (slots[k].closure != NULL) {
            call_check(w->name, &slots[k], k, -k);
            st_free(slots[k].closure);
            slots[k].closure = NULL;
        }
    }
    w->cycles = done;
    return NULL;
}

/* Looks `name` up in `handle` and checks that the dlopened object defines it. */
static void *lookup(void *handle, const char *name, const char *path) {
    dlerror();
    void *p = dlsym(handle, name);
    const char *err = dlerror();
    if (p == NULL || err != NULL) {
        fprintf(stderr, "dlopen_check: dlsym(%s): %s\n", name, err ? err : "NULL");
        exit(2);
    }
    Dl_info info;
    if (dladdr(p, &info) == 0 || info.dli_fname == NULL) {
        fprintf(stderr, "dlopen_check: dladdr(%s = %p) found no object\n", name, p);
        exit(2);
    }
    char *want = realpath(path, NULL);
    char *got = realpath(info.dli_fname, NULL);
    if (want == NULL || got == NULL || strcmp(want, got) != 0) {
        fprintf(stderr, "dlopen_check: %s = %p is defined in %s, not in %s\n", name, p,
                info.dli_fname, path);
        exit(2);
    }
    free(want);
    free(got);
    return p;
}

/* Whether the last dlopen failure was for want of static TLS. */
static int static_tls_refused(const char *err) {
    return err != NULL && strstr(err, "cannot allocate memory in static TLS block") != NULL;
}

/* --fill-static-tls: loads the hogs that fit, then checks that the probe
 * does not. */
static void fill_static_tls(char **paths, int n) {
    int loaded = 0;
    for (int i = 1; i < n; i++) {
        if (dlopen(paths[i], RTLD_NOW | RTLD_LOCAL) != NULL) {
            loaded++;
            continue;
        }
        const char *err = dlerror();
        if (!static_tls_refused(err)) {
            fprintf(stderr, "dlopen_check: dlopen(%s) failed: %s\n", paths[i], err ? err : "?");
            exit(2);
        }
    }
    if (dlopen(paths[0], RTLD_NOW | RTLD_LOCAL) != NULL) {
        fprintf(stderr, "dlopen_check: %s still fits after %d hogs: static TLS not used up\n",
                paths[0], loaded);
        exit(2);
    }
    const char *err = dlerror();
    if (!static_tls_refused(err)) {
        fprintf(stderr, "dlopen_check: dlopen(%s) failed: %s\n", paths[0], err ? err : "?");
        exit(2);
    }
    printf("static_tls filled hogs=%d probe=refused\n", loaded);
}

int main(int argc, char **argv) {
    int fill = argc >= 4 && strcmp(argv[2], "--fill-static-tls") == 0;
    if (argc != 2 && !fill) {
        fprintf(stderr, "usage: %s /path/to/libstatictramp-preload.so "
                        "[--fill-static-tls PROBE HOG...]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);

    arg_types[0] = &ffi_type_sint;
    arg_types[1] = &ffi_type_sint;
    if (ffi_prep_cif(&shared_cif, FFI_DEFAULT_ABI, 2, &ffi_type_sint, arg_types) != FFI_OK) {
        fprintf(stderr, "dlopen_check: ffi_prep_cif failed\n");
        return 2;
    }

    /* Loaded already (LD_PRELOAD, DT_NEEDED)? Then this is not a late load. */
    if (dlopen(path, RTLD_NOW | RTLD_NOLOAD) != NULL) {
        fprintf(stderr, "dlopen_check: %s is already loaded before dlopen "
                        "(LD_PRELOAD, or a dependency of the program?); this would not test a late load\n", path);
        return 2;
    }

    if (fill)
        fill_static_tls(argv + 3, argc - 3);

    struct worker workers[1 + AFTER_THREADS + 1];
    int nworkers = 0;
    struct worker *early = &workers[nworkers++];
    *early = (struct worker){.id = 1, .name = "before-dlopen", .waits = 1};
    if (pthread_create(&early->thread, NULL, work, early) != 0) {
        fprintf(stderr, "dlopen_check: pthread_create failed\n");
        return 2;
    }

    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        fprintf(stderr, "dlopen_check: dlopen(%s) failed: %s\n", path, dlerror());
        return 2;
    }
    st_alloc = (alloc_fn)lookup(handle, "ffi_closure_alloc", path);
    st_prep_loc = (prep_loc_fn)lookup(handle, "ffi_prep_closure_loc", path);
    st_free = (free_fn)lookup(handle, "ffi_closure_free", path);
    st_owns = (owns_fn)lookup(handle, "statictramp_owns_code", path);
    /* The system libffi (linked with -lffi) has its own; ours must differ. */
    if ((void *)st_alloc == (void *)ffi_closure_alloc) {
        fprintf(stderr, "dlopen_check: dlsym gave the global ffi_closure_alloc\n");
        return 2;
    }

    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);

    static const char *names[AFTER_THREADS] = {"after-dlopen-1", "after-dlopen-2",
                                               "after-dlopen-3", "after-dlopen-4"};
    for (int t = 0; t < AFTER_THREADS; t++) {
        struct worker *w = &workers[nworkers++];
        *w = (struct worker){.id = 2 + t, .name = names[t]};
        if (pthread_create(&w->thread, NULL, work, w) != 0) {
            fprintf(stderr, "dlopen_check: pthread_create failed\n");
            return 2;
        }
    }
    struct worker *main_w = &workers[nworkers++];
    *main_w = (struct worker){.id = 2 + AFTER_THREADS, .name = "main"};
    work(main_w);

    long total = main_w->cycles;
    for (int t = 0; t < nworkers - 1; t++) {
        pthread_join(workers[t].thread, NULL);
        total += workers[t].cycles;
    }

    /* After the threads exited: many closures alive at once. */
    static struct slot post[POST];
    int made = 0;
    if (!any_failed()) {
        for (; made < POST; made++) {
            if (!make("post", &post[made], &shared_cif, (uintptr_t)0x7f000000u + (uintptr_t)made))
                break;
        }
        for (int k = 0; k < made; k++)
            call_check("post", &post[k], k, 2 * k);
        for (int k = 0; k < made; k++)
            st_free(post[k].closure);
    }

    if (any_failed()) {
        printf("failures=%d cycles=%ld threads=%d post=%d\n", failed, total, nworkers, made);
        return 1;
    }
    if (total != (long)CYCLES * nworkers || made != POST) {
        printf("FAIL cycles=%ld threads=%d post=%d (incomplete)\n", total, nworkers, made);
        return 1;
    }
    printf("ok cycles=%ld threads=%d post=%d\n", total, nworkers, made);
    return 0;
}
