/* The closure entry of the i386 cross-check: saves eax, edx, ecx and the
   address of the first stack argument in the statictramp frame layout
   (abi/src/i386/frame.rs), calls simulate(frame), loads the return value
   as the runtime's entries do (eax:edx, or flds/fldl/fldt from the buffer
   whose address is in the eax return slot), and returns popping the
   Plan's callee_pop bytes (cur_pop, set by simulate). Not reentrant. */
    .text
    .globl entry_i386
    .type entry_i386, @function
entry_i386:
    pushl %ebp
    movl %esp, %ebp            /* 8(%ebp): the first stack argument */
    subl $48, %esp
    andl $-16, %esp            /* frame at 16(%esp), 32 bytes */
    movl %eax, 16+0(%esp)
    movl %edx, 16+4(%esp)
    movl %ecx, 16+8(%esp)
    leal 8(%ebp), %eax
    movl %eax, 16+12(%esp)
    leal 16(%esp), %eax
    movl %eax, (%esp)
    call simulate              /* returns the RetKind */
    cmpl $1, %eax
    je 1f
    cmpl $3, %eax
    je 3f
    cmpl $4, %eax
    je 4f
    movl 16+16(%esp), %eax
    movl 16+24(%esp), %edx
    jmp 9f
1:  movl 16+16(%esp), %ecx
    fldt (%ecx)
    jmp 9f
3:  movl 16+16(%esp), %ecx
    flds (%ecx)
    jmp 9f
4:  movl 16+16(%esp), %ecx
    fldl (%ecx)
9:  leave
    popl ret_addr
    addl cur_pop, %esp
    jmp *ret_addr
    .size entry_i386, .-entry_i386

    .bss
    .p2align 2
ret_addr:
    .long 0
    .section .note.GNU-stack,"",@progbits
