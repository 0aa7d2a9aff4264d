/* wx_probe: tries every way strict mode must close, and libffi's closures.
 *
 *   wx_probe wx        attempt each way of making writable+executable or
 *                      anonymous executable memory, and the ways that must
 *                      stay open; one line per attempt:
 *                          <name> allowed
 *                          <name> refused <errno name>
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
#include <ffi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/shm.h>
#include <sys/syscall.h>
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
    if (argc == 2 && strcmp(argv[1], "closure") == 0)
        return probe_closure();
    fprintf(stderr, "usage: wx_probe wx|closure\n");
    return 2;
}
