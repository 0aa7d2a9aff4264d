/*
 * i386_asm_callers.S: the hand-written caller of the i386 caller programs
 * (i386_callers.h). GCC cannot emit the PASCAL and REGISTER conventions,
 * and a compiled caller cannot say what a callee did to registers it does
 * not use or how far it moved the stack pointer; this one can, for every
 * convention.
 *
 * void i386_raw_call(void)   (cdecl; everything in the global i386_raw)
 *
 * In (i386_raw): fn; eax, edx, ecx (argument registers, or garbage);
 * words[0..nwords) pushed in that order (words[0] first, so it ends at the
 * highest address: the generator lists them as the convention pushes);
 * misalign: the stack pointer at the call is that many bytes below a
 * multiple of 16 (0: what the i386 System V ABI asks of a C caller; 4, 8,
 * 12: what a Pascal caller or hand-written code may do); x87: the callee
 * returns in st(0).
 *
 * What it does: saves the cdecl callee-saved registers, builds the stack
 * below a 256-byte guard (room for a callee that pops too much), sets ebx,
 * esi, edi and ebp to the CANARY_* values, eax/edx/ecx from i386_raw,
 * clears the direction flag, calls fn, and records eax, edx, ecx, ebx,
 * esi, edi, ebp, esp, eflags, the x87 status word (before and after) and
 * st(0) (popped, if x87), and the 16 canary bytes above the arguments.
 * Then it restores its own stack from i386_raw.saved_esp, whatever the
 * callee left in esp.
 *
 * Stack during the call (addresses grow upwards):
 *
 *     | caller's frame, return address   | <- saved_esp + 16
 *     | saved ebp, ebx, esi, edi         | <- saved_esp
 *     | guard (256 bytes) + alignment    |
 *     | CANARY_STACK x 4 (16 bytes)      | <- canary_at (16-byte aligned)
 *     | pad: (misalign - 4 * nwords) & 15|
 *     | words[0]                         | <- esp_before - 4
 *     | ...                              |
 *     | words[nwords - 1]                | <- esp at the call
 *     | return address (pushed by call)  |
 *
 * The global is addressed absolutely: the program is linked without PIE
 * (-fno-pie -no-pie), which keeps every general register free for the
 * canaries and the arguments.
 *
 * CFI: the prologue and epilogue are described. Between the pushes and the
 * restore the frame is reachable only through i386_raw.saved_esp (every
 * register is a canary or an argument), which CFI cannot express without a
 * relocation: the return address is marked undefined there, so a debugger
 * or unwinder stops at this frame instead of misreading it.
 */
#include "i386_callers.h"

        .text
        .globl  i386_raw_call
        .type   i386_raw_call, @function
i386_raw_call:
        .cfi_startproc
        pushl   %ebp
        .cfi_adjust_cfa_offset 4
        .cfi_rel_offset %ebp, 0
        pushl   %ebx
        .cfi_adjust_cfa_offset 4
        .cfi_rel_offset %ebx, 0
        pushl   %esi
        .cfi_adjust_cfa_offset 4
        .cfi_rel_offset %esi, 0
        pushl   %edi
        .cfi_adjust_cfa_offset 4
        .cfi_rel_offset %edi, 0
        movl    %esp, i386_raw + RAW_SAVED_ESP
        .cfi_remember_state
        .cfi_undefined %eip

        /* The guard, then 16 aligned canary bytes. */
        subl    $256, %esp
        andl    $-16, %esp
        pushl   $CANARY_STACK
        pushl   $CANARY_STACK
        pushl   $CANARY_STACK
        pushl   $CANARY_STACK
        movl    %esp, i386_raw + RAW_CANARY_AT

        /* pad = (misalign - 4 * nwords) & 15, so that after the pushes
           esp + misalign is a multiple of 16. */
        movl    i386_raw + RAW_NWORDS, %ecx
        leal    (,%ecx,4), %eax
        negl    %eax
        addl    i386_raw + RAW_MISALIGN, %eax
        andl    $15, %eax
        subl    %eax, %esp
        movl    %esp, i386_raw + RAW_ESP_BEFORE

        /* words[0] first. */
        xorl    %edx, %edx
1:      cmpl    %ecx, %edx
        jae     2f
        pushl   i386_raw + RAW_WORDS(,%edx,4)
        incl    %edx
        jmp     1b
2:
        fnstsw  i386_raw + RAW_FSW_BEFORE
        cld
        movl    $CANARY_EBX, %ebx
        movl    $CANARY_ESI, %esi
        movl    $CANARY_EDI, %edi
        movl    $CANARY_EBP, %ebp
        movl    i386_raw + RAW_EAX, %eax
        movl    i386_raw + RAW_EDX, %edx
        movl    i386_raw + RAW_ECX, %ecx
        call    *i386_raw + RAW_FN

        /* Record before anything changes a register or the flags. */
        movl    %eax, i386_raw + RAW_OUT_EAX
        movl    %edx, i386_raw + RAW_OUT_EDX
        movl    %ecx, i386_raw + RAW_OUT_ECX
        movl    %ebx, i386_raw + RAW_OUT_EBX
        movl    %esi, i386_raw + RAW_OUT_ESI
        movl    %edi, i386_raw + RAW_OUT_EDI
        movl    %ebp, i386_raw + RAW_OUT_EBP
        movl    %esp, i386_raw + RAW_OUT_ESP
        /* pushfl writes below esp: within the guard or the argument area,
           whatever the callee did to esp (up to 256 bytes too many). */
        pushfl
        popl    i386_raw + RAW_OUT_EFLAGS
        /* C code may not run with the direction flag a bad callee set. */
        cld
        fnstsw  i386_raw + RAW_FSW_AFTER
        cmpl    $0, i386_raw + RAW_X87
        je      3f
        fstpt   i386_raw + RAW_ST0
3:
        movl    i386_raw + RAW_CANARY_AT, %eax
        movl    0(%eax), %edx
        movl    %edx, i386_raw + RAW_OUT_CANARY + 0
        movl    4(%eax), %edx
        movl    %edx, i386_raw + RAW_OUT_CANARY + 4
        movl    8(%eax), %edx
        movl    %edx, i386_raw + RAW_OUT_CANARY + 8
        movl    12(%eax), %edx
        movl    %edx, i386_raw + RAW_OUT_CANARY + 12

        movl    i386_raw + RAW_SAVED_ESP, %esp
        .cfi_restore_state
        popl    %edi
        .cfi_adjust_cfa_offset -4
        .cfi_restore %edi
        popl    %esi
        .cfi_adjust_cfa_offset -4
        .cfi_restore %esi
        popl    %ebx
        .cfi_adjust_cfa_offset -4
        .cfi_restore %ebx
        popl    %ebp
        .cfi_adjust_cfa_offset -4
        .cfi_restore %ebp
        ret
        .cfi_endproc
        .size   i386_raw_call, . - i386_raw_call

/*
 * Two wrong callees for `i386_callers --self-test`, which proves that
 * every check of i386_raw_call's caller can fail. Called with one stack
 * word by i386_raw_call (no CFI needed: leaf functions that only return).
 *
 * i386_bad_callee_regs: clobbers ebx and ebp, leaves a value on the x87
 * stack, sets the direction flag and pops its word (a cdecl callee must
 * not).
 */
        .globl  i386_bad_callee_regs
        .type   i386_bad_callee_regs, @function
i386_bad_callee_regs:
        movl    $1, %ebx
        movl    $2, %ebp
        fldz
        std
        ret     $4
        .size   i386_bad_callee_regs, . - i386_bad_callee_regs

/* i386_bad_callee_stack: writes its argument (allowed) and the word above
 * it (not allowed: the caller's). */
        .globl  i386_bad_callee_stack
        .type   i386_bad_callee_stack, @function
i386_bad_callee_stack:
        movl    $7, 4(%esp)
        movl    $0x99, 8(%esp)
        ret
        .size   i386_bad_callee_stack, . - i386_bad_callee_stack

        .section .note.GNU-stack, "", @progbits
