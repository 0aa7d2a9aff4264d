/*
 * Shared assembler macros for statictramp (GNU as, preprocessed by cc).
 *
 *   ENTRY(name)   global, hidden, typed function symbol, 16-byte aligned
 *   LOCAL(name)   local function symbol
 *   END(name)     size directive
 *   GNU_STACK     non-executable stack note (every file ends with it)
 */
#ifndef STATICTRAMP_COMMON_H
#define STATICTRAMP_COMMON_H

#define ENTRY(name)            \
	.globl name;           \
	.hidden name;          \
	.type name, @function; \
	.balign 16;            \
name:

#define LOCAL(name)            \
	.type name, @function; \
	.balign 16;            \
name:

#define END(name) .size name, . - name

#define GNU_STACK .section .note.GNU-stack, "", @progbits

#endif
