/*
 * x86_64 object notes (included by asm/common.h for FILE_NOTES).
 */
#ifndef STATICTRAMP_NOTES_H
#define STATICTRAMP_NOTES_H
/*
 * GNU_PROPERTY_X86_FEATURE_1_AND (0xc0000002) with IBT (1) | SHSTK (2):
 * every indirect-branch target in our code (trampoline slots, entries,
 * the fast entry's return sequences) begins with endbr64, and every call
 * is matched by a ret to the address it pushed (slots and entries jump,
 * never push a return address of their own), as a shadow stack requires.
 *
 * The linker ANDs these bits over all its inputs, so this note alone does
 * not mark a library that also contains unmarked (Rust) code; the
 * libraries are marked SHSTK at link time (build.rs table -> capi/build.rs,
 * scripts/build-preload).
 * It keeps our objects from unmarking a program built with
 * -fcf-protection that links the staticlib.
 *
 * Layout: an ELF note (namesz 4, descsz 16, type NT_GNU_PROPERTY_TYPE_0 =
 * 5, name "GNU") whose descriptor is one property (type, datasz 4, data,
 * padding to 8 bytes), 8-byte aligned on ELF64.
 */
#define GNU_PROPERTY                            \
	.pushsection .note.gnu.property, "a";   \
	.p2align 3;                             \
	.long 4;                                \
	.long 16;                               \
	.long 5;                                \
	.asciz "GNU";                           \
	.long 0xc0000002;                       \
	.long 4;                                \
	.long 3;                                \
	.p2align 3;                             \
	.popsection

#endif
