/*
 * i386 object notes (included by asm/common.h for FILE_NOTES).
 */
#ifndef STATICTRAMP_NOTES_H
#define STATICTRAMP_NOTES_H
/*
 * GNU_PROPERTY_X86_FEATURE_1_AND (0xc0000002) with IBT (1) | SHSTK (2):
 * every indirect-branch target in our code (the slots, the entries)
 * begins with endbr32, and every call is matched by a ret to the address
 * it pushed (the slots call a PC thunk that returns normally; the entries
 * move the return address up and return with ret, never jmp).
 *
 * Layout: an ELF note (namesz 4, descsz 12, type NT_GNU_PROPERTY_TYPE_0 =
 * 5, name "GNU") whose descriptor is one property (type, datasz 4, data),
 * 4-byte aligned on ELF32.
 */
#define GNU_PROPERTY                            \
	.pushsection .note.gnu.property, "a";   \
	.p2align 2;                             \
	.long 4;                                \
	.long 12;                               \
	.long 5;                                \
	.asciz "GNU";                           \
	.long 0xc0000002;                       \
	.long 4;                                \
	.long 3;                                \
	.popsection

#endif
