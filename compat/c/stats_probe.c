/*
 * stats_probe: a known amount of closure work, for STATICTRAMP_STATS=1
 * (tests/stats.rs). Against the system libffi, run under the preload
 * library:
 *
 *   stats_probe [fork]
 *
 * allocates and prepares 5 closures int(int), calls each, frees 3;
 * allocates a sixth whose prep libffi refuses (an ABI number no target
 * has) and frees it; and, with `fork`, forks a child that allocates 2 more
 * and frees them before both exit. Prints "probe ok" when every call
 * returned the right value. The expected summary lines (parent; child,
 * which inherits the parent's 2 live closures):
 *   6 closures allocated, 4 freed, 5 live at peak, ..., 1 prep refused (FFI_BAD_ABI 1: ...)
 *   2 closures allocated, 2 freed, 4 live at peak, ..., 0 preps refused
 */
#include <ffi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void h(ffi_cif *cif, void *ret, void **args, void *ud)
{
	(void)cif;
	*(ffi_arg *)ret = (ffi_arg)(*(int *)args[0] + (int)(long)ud);
}

int main(int argc, char **argv)
{
	ffi_cif cif;
	ffi_type *at[1] = { &ffi_type_sint };
	if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 1, &ffi_type_sint, at) != FFI_OK)
		return 1;
	ffi_closure *cl[5];
	void *code[5];
	for (int i = 0; i < 5; i++) {
		cl[i] = ffi_closure_alloc(sizeof(ffi_closure), &code[i]);
		if (!cl[i] || ffi_prep_closure_loc(cl[i], &cif, h, (void *)(long)i, code[i]) != FFI_OK)
			return 1;
		if (((int (*)(int))code[i])(100) != 100 + i)
			return 1;
	}
	for (int i = 0; i < 3; i++)
		ffi_closure_free(cl[i]);
	/* A cif with an ABI no target has: ffi_prep_closure_loc refuses it. */
	ffi_cif bad = cif;
	bad.abi = (ffi_abi)999;
	ffi_closure *b = ffi_closure_alloc(sizeof(ffi_closure), &code[0]);
	if (!b || ffi_prep_closure_loc(b, &bad, h, NULL, code[0]) == FFI_OK)
		return 1;
	ffi_closure_free(b);
	if (argc > 1 && strcmp(argv[1], "fork") == 0) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			void *c2[2];
			ffi_closure *k[2];
			for (int i = 0; i < 2; i++) {
				k[i] = ffi_closure_alloc(sizeof(ffi_closure), &c2[i]);
				if (!k[i] || ffi_prep_closure_loc(k[i], &cif, h, (void *)7L, c2[i]) != FFI_OK)
					_exit(1);
				if (((int (*)(int))c2[i])(1) != 8)
					_exit(1);
			}
			ffi_closure_free(k[0]);
			ffi_closure_free(k[1]);
			exit(0); /* exit, not _exit: the summary is an atexit handler */
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			return 1;
	}
	puts("probe ok");
	return 0;
}
