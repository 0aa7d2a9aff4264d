/*
 * fork_order: fork() in a program that has its own pthread_atfork handler
 * and allocates closures while holding the lock that handler takes.
 *
 * Run with statictramp preloaded. The program registers its handler in
 * main, i.e. after statictramp was loaded, then makes its first closure;
 * a second thread loops: lock L, allocate and free 300 closures (refills
 * and spills through statictramp's global pool), unlock L. The main
 * thread forks 2000 times; each child exits at once.
 *
 * glibc runs prepare handlers in reverse order of registration. If
 * statictramp's prepare ran first (handlers registered lazily, at first
 * use), it could take its allocator lock while the worker, holding L,
 * waits for that lock; the program's prepare would then wait for L
 * forever. statictramp registers at load time, so its prepare runs last.
 *
 * Prints `ok forks=2000 rounds=N` and exits 0; a hang is caught by the
 * caller's timeout (and alarm(60) here).
 */
#include <ffi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t L = PTHREAD_MUTEX_INITIALIZER;
static atomic_long rounds;

static void before(void) { pthread_mutex_lock(&L); }
static void after(void) { pthread_mutex_unlock(&L); }

static void *churn(void *arg)
{
	(void)arg;
	void *code, *c[300];
	for (;;) {
		pthread_mutex_lock(&L);
		for (int i = 0; i < 300; i++) {
			c[i] = ffi_closure_alloc(sizeof(ffi_closure), &code);
			if (!c[i]) {
				fprintf(stderr, "error ffi_closure_alloc failed\n");
				exit(1);
			}
		}
		for (int i = 0; i < 300; i++)
			ffi_closure_free(c[i]);
		pthread_mutex_unlock(&L);
		atomic_fetch_add(&rounds, 1);
	}
	return NULL;
}

int main(void)
{
	if (pthread_atfork(before, after, after) != 0) {
		fprintf(stderr, "error pthread_atfork\n");
		return 2;
	}
	void *code;
	ffi_closure_free(ffi_closure_alloc(sizeof(ffi_closure), &code));
	pthread_t t;
	if (pthread_create(&t, NULL, churn, NULL) != 0) {
		fprintf(stderr, "error pthread_create\n");
		return 2;
	}
	while (atomic_load(&rounds) == 0)
		usleep(100);
	alarm(60);
	int forks = 0;
	for (; forks < 2000; forks++) {
		pid_t p = fork();
		if (p < 0) {
			perror("fork");
			return 2;
		}
		if (p == 0)
			_exit(0);
		int st;
		if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "error child %d: status %#x\n", forks, st);
			return 1;
		}
	}
	printf("ok forks=%d rounds=%ld\n", forks, atomic_load(&rounds));
	return 0;
}
