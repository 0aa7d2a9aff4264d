/*
 * Moving the stack pointer down by a run-time amount without skipping a
 * guard page.
 *
 * The generic entries reserve the plan's scratch below their frame: up to
 * ~33 KiB (avalue[] for 4096 arguments, gather areas, the return buffer).
 * A thread's stack usually ends in a single guard page (glibc's default
 * guard size is one page), so one `subq` of the whole amount could move
 * rsp past the guard into whatever is mapped below it, and the next write
 * would land there instead of faulting. As GCC's -fstack-clash-protection
 * does, SUB_RSP_PROBED moves rsp one STACK_PROBE_INTERVAL at a time and
 * writes to each new page (`orq $0`: a write that changes nothing), so the
 * first access past the end of the stack faults in the guard page.
 *
 * Contract of SUB_RSP_PROBED reg:
 *   - on entry, the word at (%rsp) has been written (the entries save an
 *     argument register there), so that is the last touched address;
 *   - reg holds the amount, a multiple of 16; it is clobbered, as are the
 *     flags;
 *   - the residue below the last probe is at most STACK_PROBE_INTERVAL - 16
 *     bytes and is not probed: the caller's next write must be no more
 *     than 8 bytes below the new rsp (the entries' `call` pushes its
 *     return address at rsp - 8), which keeps every access within one
 *     interval of the previous one;
 *   - the CFA must not be rsp-based (the entries' is rbp + 16), so moving
 *     rsp needs no CFI.
 *
 * STACK_PROBE_INTERVAL is the smallest page size on x86_64 (4 KiB), so it
 * is right for any page size the kernel uses.
 */
#ifndef STATICTRAMP_X86_64_STACK_H
#define STATICTRAMP_X86_64_STACK_H

#define STACK_PROBE_INTERVAL 4096

.macro SUB_RSP_PROBED reg
	cmpq	$STACK_PROBE_INTERVAL, \reg
	jb	.Lprobed\@
.Lprobe\@:
	subq	$STACK_PROBE_INTERVAL, %rsp
	orq	$0, (%rsp)			/* touch the new page */
	subq	$STACK_PROBE_INTERVAL, \reg
	cmpq	$STACK_PROBE_INTERVAL, \reg
	jae	.Lprobe\@
.Lprobed\@:
	subq	\reg, %rsp			/* less than one interval */
.endm

#endif
