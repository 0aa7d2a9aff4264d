/* template_check: which file statictramp maps its trampoline copies from,
 * and whether it leaves the program's descriptors alone.
 *
 * Linked against the system libffi (ffi_prep_cif, ffi_type_sint) and run
 * with LD_PRELOAD=libstatictramp-preload.so, so that the closure API is
 * statictramp's. Steps:
 *   1. with --chdir DIR: chdir(DIR) before the first closure, so that a
 *      library loaded by a relative name must have been opened at load;
 *   2. allocates FIRST closures (more than the 1024 slots in the library
 *      image, so one template copy is mapped) and reports the file that
 *      backs the last one's code (/proc/self/maps);
 *   3. with --steal FILE: finds the descriptors on that file (the library
 *      or the template memfd; same device and inode as the mapping), closes
 *      every descriptor above 2 with close_range() and opens FILE on that
 *      number (open, then dup2 if the kernel picked another one), as a
 *      program that closes what it inherited and opens its own files does;
 *   4. allocates SECOND more closures (more than one template copy holds,
 *      so at least one more copy is mapped) and reports the file backing
 *      the last one;
 *   5. calls every closure and checks the result; with --steal, checks that
 *      the program's descriptor is still open on FILE (same device and
 *      inode) and still reads FILE's first bytes.
 *
 * Output, one fact per line (parsed by tests/template_file.rs):
 *   source1 <dev> <inode> <path>   the mapping of step 2 (path may be
 *                                  "/memfd:statictramp-template (deleted)")
 *   ours <fd>                      step 3, each descriptor on that file
 *   source2 <dev> <inode> <path>   step 4
 *   check <what> ok|FAIL <details>
 *   done <failures>
 * Exit status: 0 when every check passed, 1 otherwise, 2 on usage or setup
 * errors (a closure that cannot be allocated, FILE that cannot be opened).
 *
 * Build: cc -O1 -Wall -Wextra -o template_check template_check.c -lffi
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ffi.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* More than the in-image pool (IMAGE_SLOTS = 1024). */
#define FIRST (1024 + 200)
/* More than one template copy (TEMPLATE_SLOTS = 32768). */
#define SECOND (32768 + 200)
#define TOTAL (FIRST + SECOND)

static int failures;
static void *codes[TOTAL];

static void check(const char *what, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check(const char *what, int ok, const char *fmt, ...) {
    va_list ap;
    failures += !ok;
    printf("check %s %s ", what, ok ? "ok" : "FAIL");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static void die(const char *what) {
    printf("setup-error %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(2);
}

/* int f(int x) { return x + index; } */
static void handler(ffi_cif *cif, void *ret, void **args, void *user_data) {
    (void)cif;
    *(ffi_arg *)ret = (ffi_arg)(*(int *)args[0] + (int)(intptr_t)user_data);
}

static ffi_cif cif;
static ffi_type *arg_types[1] = {&ffi_type_sint};

static void allocate(int from, int to) {
    for (int i = from; i < to; i++) {
        void *code;
        ffi_closure *c = ffi_closure_alloc(sizeof(ffi_closure), &code);
        if (!c)
            die("ffi_closure_alloc");
        if (ffi_prep_closure_loc(c, &cif, handler, (void *)(intptr_t)i, code) != FFI_OK)
            die("ffi_prep_closure_loc");
        codes[i] = code;
    }
}

/* The mapping of /proc/self/maps that contains `addr`: device, inode and
 * path. Returns 0 if found. */
static int mapping_of(void *addr, dev_t *dev, ino_t *ino, char *path, size_t len) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        die("/proc/self/maps");
    char line[4096];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        uintptr_t lo, hi;
        unsigned maj, min;
        unsigned long long inode;
        int n = 0;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %*s %*s %x:%x %llu %n", &lo, &hi, &maj, &min,
                   &inode, &n) < 5)
            continue;
        if ((uintptr_t)addr < lo || (uintptr_t)addr >= hi)
            continue;
        line[strcspn(line, "\n")] = 0;
        snprintf(path, len, "%s", line + n);
        *dev = makedev(maj, min);
        *ino = (ino_t)inode;
        found = 0;
        break;
    }
    fclose(f);
    return found;
}

static void report(const char *label, void *addr, dev_t *dev, ino_t *ino) {
    char path[4096] = "";
    if (mapping_of(addr, dev, ino, path, sizeof path) != 0) {
        check(label, 0, "no mapping holds %p", addr);
        return;
    }
    printf("%s %u:%u %llu %s\n", label, major(*dev), minor(*dev), (unsigned long long)*ino, path);
}

int main(int argc, char **argv) {
    const char *chdir_to = NULL, *steal = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--chdir") && i + 1 < argc)
            chdir_to = argv[++i];
        else if (!strcmp(argv[i], "--steal") && i + 1 < argc)
            steal = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--chdir DIR] [--steal FILE]\n", argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 1, &ffi_type_sint, arg_types) != FFI_OK)
        die("ffi_prep_cif");
    if (chdir_to && chdir(chdir_to) != 0)
        die("chdir");

    allocate(0, FIRST);
    dev_t dev1 = 0, dev2 = 0;
    ino_t ino1 = 0, ino2 = 0;
    report("source1", codes[FIRST - 1], &dev1, &ino1);

    int stolen = -1;
    struct stat mine;
    char marker[16], again[16];
    if (steal) {
        /* Our descriptor(s) on the file the copy came from. */
        int found = 0;
        for (int fd = 3; fd < 65536; fd++) {
            struct stat st;
            if (fstat(fd, &st) == 0 && st.st_dev == dev1 && st.st_ino == ino1) {
                printf("ours %d\n", fd);
                if (!found++)
                    stolen = fd;
            }
        }
        check("statictramp-holds-one-descriptor-on-its-source", found == 1, "%d", found);
        if (stolen < 0)
            stolen = 3;
        /* The program closes all it inherited and opens a file of its own. */
        if (syscall(SYS_close_range, 3U, ~0U, 0) != 0)
            die("close_range");
        int fd = open(steal, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            die("open --steal file");
        if (fd != stolen) {
            if (dup2(fd, stolen) != stolen)
                die("dup2");
            close(fd);
        }
        if (fstat(stolen, &mine) != 0 || pread(stolen, marker, sizeof marker, 0) != sizeof marker)
            die("reading the --steal file");
    }

    allocate(FIRST, TOTAL);
    report("source2", codes[TOTAL - 1], &dev2, &ino2);

    int wrong = 0, first_wrong = -1;
    for (int i = 0; i < TOTAL; i++) {
        int got = ((int (*)(int))codes[i])(7);
        if (got != 7 + i && !wrong++)
            first_wrong = i;
    }
    check("every-closure-returns-its-value", wrong == 0, "%d wrong, first at %d", wrong,
          first_wrong);

    if (steal) {
        struct stat now;
        int open_ = fcntl(stolen, F_GETFD) != -1;
        check("program-descriptor-still-open", open_, "fd %d", stolen);
        int same = open_ && fstat(stolen, &now) == 0 && now.st_dev == mine.st_dev &&
                   now.st_ino == mine.st_ino;
        check("program-descriptor-same-file", same, "fd %d", stolen);
        int reads = same && pread(stolen, again, sizeof again, 0) == sizeof again &&
                    !memcmp(marker, again, sizeof marker);
        check("program-descriptor-reads-its-file", reads, "fd %d", stolen);
    }
    printf("done %d\n", failures);
    return failures != 0;
}
