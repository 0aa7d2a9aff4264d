/* tls_hog: a shared object that only takes static TLS.
 *
 * Built with -DHOG_SIZE=N (a multiple of 16) into tls_hog_N.so. Its
 * HOG_SIZE-byte thread-local block is accessed with the initial-exec model,
 * so the object is DF_STATIC_TLS: a dlopen must place the block in glibc's
 * surplus static TLS (in every thread) or fail with "cannot allocate memory
 * in static TLS block". dlopen_check (tests/dlopen.rs) loads hogs of
 * decreasing sizes until that surplus is used up, then loads statictramp.
 *
 * Build: cc -shared -fPIC -O1 -DHOG_SIZE=N -o tls_hog_N.so tls_hog.c
 */
#ifndef HOG_SIZE
#error "build with -DHOG_SIZE=<bytes>"
#endif

static __thread char hog[HOG_SIZE]
    __attribute__((tls_model("initial-exec"), aligned(16)));

/* The block's address in the calling thread (an initial-exec access). */
char *tls_hog(void) {
    return hog;
}
