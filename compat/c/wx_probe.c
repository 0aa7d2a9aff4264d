/* wx_probe: tries every way strict mode must close, and libffi's closures.
 *
 *   wx_probe wx        attempt each way of making writable+executable or
 *                      anonymous executable memory, and the ways that must
 *                      stay open; one line per attempt:
 *                          <name> allowed
 *                          <name> refused <errno name>
 *   wx_probe code      try every known way to make or change code without
 *                      writable+executable memory (docs/design.md, "Strict
 *                      mode: what it cannot stop"): each route writes
 *                      `mov $42, %eax; ret` and calls it, or runs a copy
 *                      of this program that exits 42; one line per route:
 *                          <route> open
 *                          <route> closed <why>
 *                      The statictramp CLI's `check` runs its own
 *                      implementation (cli/src/routes.rs); the tests
 *                      compare the two.
 *   wx_probe closure   make an int(int, int) closure with the libffi closure
 *                      API this program is linked to (or the preloaded one)
 *                      and call it through ffi_call and directly:
 *                          closure ok <result>          exit 0
 *                          closure alloc-failed         exit 3
 *                          closure prep-failed <status> exit 4
 *                          closure wrong <got>          exit 5
 *
 * cli/tests/strict.rs runs it with and without `statictramp run --strict`.
 * Build: cc -O1 -Wall -o wx_probe wx_probe.c -lffi
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdint.h>
#include <ffi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SHM_EXEC
#define SHM_EXEC 0100000
#endif

static const char *errname(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT";
    default: return "other";
    }
}

/* Reports one attempt: `err` 0 means the call succeeded. */
static void report(const char *name, int err) {
    if (err == 0)
        printf("%s allowed\n", name);
    else
        printf("%s refused %s\n", name, errname(err));
    fflush(stdout);
}

static int mmap_err(void *addr, int prot, int flags, int fd) {
    void *p = mmap(addr, 4096, prot, flags, fd, 0);
    if (p == MAP_FAILED)
        return errno;
    munmap(p, 4096);
    return 0;
}

#if defined(__x86_64__)
/* long int80(nr, a, b, c, d, e, f): an i386 system call from this 64-bit
 * process (int $0x80 enters the kernel's i386 ABI, so seccomp sees
 * AUDIT_ARCH_I386). Arguments go to ebx, ecx, edx, esi, edi, ebp. Returns
 * the kernel's 32-bit result sign-extended. A separate function, not inline
 * asm, because it must save rbx/rbp and use the stack. */
long int80(long nr, long a, long b, long c, long d, long e, long f);
__asm__(".text\n"
        ".globl int80\n"
        ".type int80,@function\n"
        "int80:\n"
        "  push %rbx\n"
        "  push %rbp\n"
        "  mov %rdi, %rax\n"   /* nr */
        "  mov %rsi, %rbx\n"   /* a */
        "  mov %rdx, %r10\n"   /* b, kept */
        "  mov %rcx, %rdx\n"   /* c */
        "  mov %r10, %rcx\n"   /* b */
        "  mov %r8, %rsi\n"    /* d */
        "  mov %r9, %rdi\n"    /* e */
        "  mov 24(%rsp), %rbp\n" /* f: 7th argument, above 2 pushes + return */
        "  int $0x80\n"
        "  movslq %eax, %rax\n"
        "  pop %rbp\n"
        "  pop %rbx\n"
        "  ret\n"
        ".size int80, .-int80\n");

static int int80_err(long r) {
    return (r < 0 && r >= -4095) ? (int)-r : 0;
}
#endif

static int probe_wx(void) {
    const int anon = MAP_PRIVATE | MAP_ANONYMOUS;
    report("mmap-anon-rx", mmap_err(NULL, PROT_READ | PROT_EXEC, anon, -1));
    report("mmap-anon-rwx", mmap_err(NULL, PROT_READ | PROT_WRITE | PROT_EXEC, anon, -1));

    void *rw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, anon, -1, 0);
    report("mprotect-rw-to-rx", mprotect(rw, 4096, PROT_READ | PROT_EXEC) ? errno : 0);
#ifdef SYS_pkey_mprotect
    long pk = syscall(SYS_pkey_mprotect, rw, 4096, PROT_READ | PROT_EXEC, -1);
    report("pkey-mprotect-rw-to-rx", pk ? errno : 0);
#endif
    munmap(rw, 4096);

    int mfd = memfd_create("wx_probe", 0);
    if (mfd >= 0 && ftruncate(mfd, 4096) == 0) {
        report("memfd-shared-rx", mmap_err(NULL, PROT_READ | PROT_EXEC, MAP_SHARED, mfd));
        report("memfd-shared-validate-rx",
               mmap_err(NULL, PROT_READ | PROT_EXEC, MAP_SHARED_VALIDATE, mfd));
        report("memfd-private-rwx", mmap_err(NULL, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE, mfd));
    }

    int self = open("/proc/self/exe", O_RDONLY);
    report("file-private-rwx", mmap_err(NULL, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE, self));
    /* Must stay open: this is how the dynamic loader maps code. */
    report("file-private-rx", mmap_err(NULL, PROT_READ | PROT_EXEC, MAP_PRIVATE, self));
    report("anon-rw", mmap_err(NULL, PROT_READ | PROT_WRITE, anon, -1));

    int shm = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    if (shm >= 0) {
        void *p = shmat(shm, NULL, SHM_EXEC);
        report("shmat-exec", p == (void *)-1 ? errno : 0);
        if (p != (void *)-1)
            shmdt(p);
        p = shmat(shm, NULL, 0);
        report("shmat-rw", p == (void *)-1 ? errno : 0);
        if (p != (void *)-1)
            shmdt(p);
    }

    int old = personality(0xffffffff);
    report("personality-query", old == -1 ? errno : 0);
    int r = personality((unsigned long)old | READ_IMPLIES_EXEC);
    report("personality-read-implies-exec", r == -1 ? errno : 0);
    personality((unsigned long)old);

#if defined(__x86_64__)
    /* The same through the i386 and x32 system call ABIs. */
    report("i386-mmap2-anon-rx", int80_err(int80(192, 0, 4096, PROT_READ | PROT_EXEC, anon, -1, 0)));
    report("i386-mprotect-rx", int80_err(int80(125, 0x10000, 4096, PROT_READ | PROT_EXEC, 0, 0, 0)));
    /* old_mmap (90) takes a pointer to its arguments: refused outright. */
    report("i386-old-mmap", int80_err(int80(90, 0, 0, 0, 0, 0, 0)));
    if (shm >= 0) {
        /* ipc(SHMAT | version 2 << 16, shmid, SHM_EXEC, &raddr, NULL): the
         * kernel ignores the version for SHMAT (except 1); raddr must be a
         * 32-bit address. */
        unsigned *raddr = mmap(NULL, 4096, PROT_READ | PROT_WRITE, anon | MAP_32BIT, -1, 0);
        report("i386-ipc-shmat-exec",
               int80_err(int80(117, (2 << 16) | 21, shm, SHM_EXEC, (long)raddr, 0, 0)));
    }
    long x32 = syscall(0x40000000 | SYS_mmap, 0, 4096, PROT_READ | PROT_EXEC, anon, -1, 0);
    report("x32-mmap-anon-rx", x32 == -1 ? errno : 0);
#endif
    if (shm >= 0)
        shmctl(shm, IPC_RMID, NULL);
    return 0;
}

/* ---- code routes ---------------------------------------------------- */

/* mov $42, %eax; ret (x86_64 and i386 alike). */
static const unsigned char CODE[6] = {0xb8, 0x2a, 0, 0, 0, 0xc3};
typedef int (*fn_t)(void);

static void route(const char *name, int open_, const char *why) {
    if (open_)
        printf("%s open\n", name);
    else
        printf("%s closed %s\n", name, why && *why ? why : "the code did not change");
    fflush(stdout);
}

/* A one-page memfd, or -1. */
static int page_memfd(void) {
    int fd = memfd_create("route", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, 4096)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The function the in-place routes rewrite: 6 bytes of code padded to 16,
 * so that ptrace's word-sized write touches nothing else. */
__asm__(".pushsection .text.route_target,\"ax\",@progbits\n"
        ".balign 16\n"
        "route_target:\n"
        "  mov $7, %eax\n"
        "  ret\n"
        "  .fill 10, 1, 0xcc\n"
        ".popsection\n");
int route_target(void) __asm__("route_target");
/* Called through a volatile pointer so the compiler cannot fold the 7. */
static fn_t volatile target = route_target;

#define FAIL(name) do { route(name, 0, strerror(errno)); return; } while (0)

static void memfd_alias(void) {
    int fd = page_memfd();
    if (fd < 0) FAIL("memfd-alias");
    unsigned char *rw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (rw == MAP_FAILED) FAIL("memfd-alias");
    void *rx = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    if (rx == MAP_FAILED) FAIL("memfd-alias");
    memcpy(rw, CODE, sizeof CODE);
    route("memfd-alias", ((fn_t)rx)() == 42, NULL);
}

static void file_write(void) {
    int fd = page_memfd();
    if (fd < 0) FAIL("file-write");
    void *rx = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    if (rx == MAP_FAILED) FAIL("file-write");
    if (pwrite(fd, CODE, sizeof CODE, 0) != sizeof CODE) FAIL("file-write");
    route("file-write", ((fn_t)rx)() == 42, NULL);
}

/* A new file in $TMPDIR (or /tmp) holding `len` bytes of `bytes`; its
 * path in `path`. Returns 0 or an errno. */
static int new_file(char *path, size_t size, const char *what, const void *bytes, size_t len,
                    mode_t mode) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, size, "%s/wx_probe-%s-%d", dir && *dir ? dir : "/tmp", what, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return errno;
    int e = write(fd, bytes, len) == (ssize_t)len ? 0 : errno;
    close(fd);
    return e;
}

static void new_file_code(void) {
    static unsigned char page[4096];
    char path[512];
    memcpy(page, CODE, sizeof CODE);
    if ((errno = new_file(path, sizeof path, "code", page, sizeof page, 0600))) FAIL("new-file-code");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    unlink(path);
    if (fd < 0) FAIL("new-file-code");
    void *rx = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    if (rx == MAP_FAILED) FAIL("new-file-code");
    route("new-file-code", ((fn_t)rx)() == 42, NULL);
}

/* This program's bytes (malloc'd), for the routes that execute a copy. */
static unsigned char *self_bytes(size_t *len) {
    int in = open("/proc/self/exe", O_RDONLY);
    size_t cap = 1 << 16, n = 0;
    unsigned char *b = malloc(cap);
    ssize_t r;
    while (in >= 0 && (r = read(in, b + n, cap - n)) > 0)
        if ((n += r) == cap)
            b = realloc(b, cap *= 2);
    if (in >= 0)
        close(in);
    *len = n;
    return b;
}

/* Runs a copy of this program (`path`, or `fd` with fexecve when path is
 * NULL) with argument exit42 in a child; reports the route open if it
 * exited 42. */
static void exec_copy(const char *name, const char *path, int fd, char *self) {
    char *args[] = {self, "exit42", NULL};
    pid_t p = fork();
    if (p == 0) {
        if (path)
            execve(path, args, environ);
        else
            fexecve(fd, args, environ);
        _exit(100 + errno);
    }
    int st;
    waitpid(p, &st, 0);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    route(name, code == 42, code > 100 ? strerror(code - 100) : NULL);
}

static void new_file_exec(char *self) {
    size_t len;
    unsigned char *b = self_bytes(&len);
    char path[512];
    if ((errno = new_file(path, sizeof path, "exec", b, len, 0700))) FAIL("new-file-exec");
    exec_copy("new-file-exec", path, -1, self);
    unlink(path);
    free(b);
}

static void memfd_exec(const char *name, int via_procfd, char *self) {
    size_t len;
    unsigned char *b = self_bytes(&len);
    int fd = memfd_create("exe", 0);
    if (fd < 0 || write(fd, b, len) != (ssize_t)len) FAIL(name);
    free(b);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    exec_copy(name, via_procfd ? path : NULL, fd, self);
    close(fd);
}

static void proc_self_mem(void) {
    int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (fd < 0) FAIL("proc-self-mem");
    if (pwrite(fd, CODE, sizeof CODE, (off_t)(uintptr_t)route_target) != sizeof CODE)
        FAIL("proc-self-mem");
    close(fd);
    route("proc-self-mem", target() == 42, NULL);
}

static void ptrace_child(void) {
    pid_t p = fork();
    if (p == 0) {
        if (ptrace(PTRACE_TRACEME, 0, 0, 0))
            _exit(100);
        raise(SIGSTOP);
        _exit(target());
    }
    int st;
    waitpid(p, &st, 0);
    /* Word by word (a word is 4 bytes on i386), keeping the padding. */
    long r = 0;
    int e = 0;
    for (size_t off = 0; off < sizeof CODE && r == 0; off += sizeof(long)) {
        char *at = (char *)route_target + off;
        long word = ptrace(PTRACE_PEEKTEXT, p, at, 0);
        size_t n = sizeof CODE - off < sizeof word ? sizeof CODE - off : sizeof word;
        memcpy(&word, CODE + off, n);
        r = ptrace(PTRACE_POKETEXT, p, at, (void *)word);
        e = errno;
    }
    ptrace(PTRACE_CONT, p, 0, 0);
    waitpid(p, &st, 0);
    errno = e;
    if (r) FAIL("ptrace-poke-child");
    route("ptrace-poke-child", WIFEXITED(st) && WEXITSTATUS(st) == 42, NULL);
}

/* userfaultfd: UFFDIO_COPY fills a missing page of a private read+exec
 * memfd mapping (a shmem VMA) with any bytes. The uffd comes from the
 * system call or from /dev/userfaultfd. */
static void uffd(const char *name, int from_dev) {
    int fd = page_memfd();
    if (fd < 0) FAIL(name);
    void *rx = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    if (rx == MAP_FAILED) FAIL(name);
    int u;
    if (from_dev) {
        int d = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (d < 0) FAIL(name);
        u = ioctl(d, USERFAULTFD_IOC_NEW, O_CLOEXEC);
        close(d);
    } else {
        u = syscall(SYS_userfaultfd, O_CLOEXEC);
    }
    if (u < 0) FAIL(name);
    struct uffdio_api api = {.api = UFFD_API};
    if (ioctl(u, UFFDIO_API, &api)) FAIL(name);
    struct uffdio_register reg = {.range = {(uintptr_t)rx, 4096}, .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(u, UFFDIO_REGISTER, &reg)) FAIL(name);
    static unsigned char src[4096] __attribute__((aligned(4096)));
    memcpy(src, CODE, sizeof CODE);
    struct uffdio_copy c = {.dst = (uintptr_t)rx, .src = (uintptr_t)src, .len = 4096};
    if (ioctl(u, UFFDIO_COPY, &c)) FAIL(name);
    route(name, ((fn_t)rx)() == 42, NULL);
}

/* Closed by the kernel on every configuration (writes honour page
 * protection): process_vm_writev into our own code. */
static void vm_writev(void) {
    struct iovec l = {(void *)CODE, sizeof CODE}, r = {(void *)route_target, sizeof CODE};
    if (process_vm_writev(getpid(), &l, 1, &r, 1, 0) != sizeof CODE) FAIL("process-vm-writev");
    route("process-vm-writev", target() == 42, NULL);
}

/* Also closed by the kernel: io_uring runs reads without the seccomp
 * filter seeing them, but its writes to user memory honour protection.
 * A read of CODE from a memfd into a private read+exec page. */
static void uring(void) {
    const char *name = "io-uring-read-into-code";
    struct io_uring_params pr;
    memset(&pr, 0, sizeof pr);
    int fd = syscall(SYS_io_uring_setup, 4, &pr);
    if (fd < 0) FAIL(name);
    size_t sqsz = pr.sq_off.array + pr.sq_entries * sizeof(unsigned);
    size_t cqsz = pr.cq_off.cqes + pr.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(0, sqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    char *cq = mmap(0, cqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes = mmap(0, pr.sq_entries * sizeof *sqes, PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) FAIL(name);
    int src = page_memfd(), dst = page_memfd();
    if (src < 0 || dst < 0 || pwrite(src, CODE, sizeof CODE, 0) != sizeof CODE) FAIL(name);
    void *rx = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, dst, 0);
    if (rx == MAP_FAILED) FAIL(name);
    (void)*(volatile char *)rx; /* populate the page */
    memset(&sqes[0], 0, sizeof sqes[0]);
    sqes[0].opcode = IORING_OP_READ;
    sqes[0].fd = src;
    sqes[0].addr = (uintptr_t)rx;
    sqes[0].len = sizeof CODE;
    unsigned *tail = (unsigned *)(sq + pr.sq_off.tail);
    unsigned mask = *(unsigned *)(sq + pr.sq_off.ring_mask);
    ((unsigned *)(sq + pr.sq_off.array))[*tail & mask] = 0;
    __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
    if (syscall(SYS_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) FAIL(name);
    unsigned head = __atomic_load_n((unsigned *)(cq + pr.cq_off.head), __ATOMIC_ACQUIRE);
    struct io_uring_cqe *cqe = (struct io_uring_cqe *)(cq + pr.cq_off.cqes) +
                               (head & *(unsigned *)(cq + pr.cq_off.ring_mask));
    errno = cqe->res < 0 ? -cqe->res : 0;
    if (cqe->res != sizeof CODE) FAIL(name);
    route(name, ((fn_t)rx)() == 42, NULL);
}

/* Also closed by the kernel: mremap keeps a mapping's protection. Moves a
 * private read+exec mapping with MREMAP_DONTUNMAP (which leaves the old
 * range mapped, empty; kernels that refuse it for file mappings get a
 * plain move to a larger size) and reads the ranges' permissions back. */
static void mremap_rx(void) {
    const char *name = "mremap-rx";
    int fd = page_memfd();
    if (fd < 0) FAIL(name);
    void *rx = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    if (rx == MAP_FAILED) FAIL(name);
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
    void *moved = mremap(rx, 4096, 4096, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
    if (moved == MAP_FAILED && errno == EINVAL)
        moved = mremap(rx, 4096, 8192, MREMAP_MAYMOVE);
    if (moved == MAP_FAILED) FAIL(name);
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    int writable_exec = 0;
    while (maps && fgets(line, sizeof line, maps)) {
        char perms[5] = "";
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
            (lo == (uintptr_t)rx || lo == (uintptr_t)moved))
            writable_exec |= perms[1] == 'w' || perms[2] != 'x';
    }
    if (maps)
        fclose(maps);
    errno = 0;
    route(name, writable_exec, "protection kept: r-x");
}

static int probe_code(char *self) {
    memfd_alias();
    file_write();
    new_file_code();
    new_file_exec(self);
    memfd_exec("memfd-fexecve", 0, self);
    memfd_exec("memfd-execve-procfd", 1, self);
    proc_self_mem();
    ptrace_child();
    uffd("userfaultfd-memfd", 0);
    uffd("userfaultfd-dev", 1);
    vm_writev();
    uring();
    mremap_rx();
    return 0;
}

static void add(ffi_cif *cif, void *ret, void **args, void *ud) {
    (void)cif;
    *(ffi_arg *)ret = *(int *)args[0] * 10 + *(int *)args[1] + *(int *)ud;
}

static int probe_closure(void) {
    static ffi_type *types[2] = {&ffi_type_sint, &ffi_type_sint};
    static int bias = 1000;
    ffi_cif cif;
    void *code = NULL;
    ffi_closure *c = ffi_closure_alloc(sizeof(ffi_closure), &code);
    if (!c) {
        printf("closure alloc-failed\n");
        return 3;
    }
    ffi_status st = ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 2, &ffi_type_sint, types);
    if (st == FFI_OK)
        st = ffi_prep_closure_loc(c, &cif, add, &bias, code);
    if (st != FFI_OK) {
        printf("closure prep-failed %d\n", (int)st);
        return 4;
    }
    int a = 4, b = 2;
    void *av[2] = {&a, &b};
    ffi_arg via_call = 0;
    ffi_call(&cif, FFI_FN(code), &via_call, av);
    int direct = ((int (*)(int, int))code)(7, 3);
    ffi_closure_free(c);
    if ((int)via_call != 1042 || direct != 1073) {
        printf("closure wrong %d %d\n", (int)via_call, direct);
        return 5;
    }
    printf("closure ok %d %d\n", (int)via_call, direct);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "wx") == 0)
        return probe_wx();
    if (argc == 2 && strcmp(argv[1], "exit42") == 0)
        return 42;
    if (argc == 2 && strcmp(argv[1], "code") == 0)
        return probe_code(argv[0]);
    if (argc == 2 && strcmp(argv[1], "closure") == 0)
        return probe_closure();
    fprintf(stderr, "usage: wx_probe wx|code|closure\n");
    return 2;
}
