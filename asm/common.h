/*
 * Shared assembler macros for statictramp (GNU as, preprocessed by cc).
 * `%function` / `%progbits` rather than `@...`: `@` starts a comment in
 * GNU as for arm; x86 and aarch64 accept `%` too.
 *
 *   ENTRY(name)   global, hidden, typed function symbol, 16-byte aligned
 *   LOCAL(name)   local function symbol
 *   END(name)     size directive
 *   FILE_NOTES    the notes every file ends with: a non-executable stack
 *                 (.note.GNU-stack) and the control-flow protection the
 *                 file's code supports (.note.gnu.property)
 */
#ifndef STATICTRAMP_COMMON_H
#define STATICTRAMP_COMMON_H

#define ENTRY(name)            \
	.globl name;           \
	.hidden name;          \
	.type name, %function; \
	.balign 16;            \
name:

#define LOCAL(name)            \
	.type name, %function; \
	.balign 16;            \
name:

#define END(name) .size name, . - name

#define GNU_STACK .section .note.GNU-stack, "", %progbits

/* GNU_PROPERTY: this architecture's .note.gnu.property (asm/<arch>/notes.h;
 * build.rs puts the architecture's directory on the include path). */
#include "notes.h"

#define FILE_NOTES GNU_STACK; GNU_PROPERTY

#endif
