/* Closure entries for the cross-check: save the argument registers in the
   statictramp frame layout (abi/src/x86_64/frame.rs), call simulate(frame),
   then load the return registers (or the x87 stack) as the runtime would. */
    .text
    .globl entry_sysv, entry_win64
entry_sysv:
    push %rbp
    mov %rsp, %rbp
    sub $160, %rsp
    and $-16, %rsp
    mov %rdi, 0(%rsp)
    mov %rsi, 8(%rsp)
    mov %rdx, 16(%rsp)
    mov %rcx, 24(%rsp)
    mov %r8, 32(%rsp)
    mov %r9, 40(%rsp)
    movq %xmm0, 48(%rsp)
    movq %xmm1, 56(%rsp)
    movq %xmm2, 64(%rsp)
    movq %xmm3, 72(%rsp)
    movq %xmm4, 80(%rsp)
    movq %xmm5, 88(%rsp)
    movq %xmm6, 96(%rsp)
    movq %xmm7, 104(%rsp)
    lea 16(%rbp), %rax
    mov %rax, 144(%rsp)
    jmp common
entry_win64:
    push %rbp
    mov %rsp, %rbp
    sub $160, %rsp
    and $-16, %rsp
    mov %rcx, 0(%rsp)
    mov %rdx, 8(%rsp)
    mov %r8, 16(%rsp)
    mov %r9, 24(%rsp)
    movq %xmm0, 48(%rsp)
    movq %xmm1, 56(%rsp)
    movq %xmm2, 64(%rsp)
    movq %xmm3, 72(%rsp)
    lea 16(%rbp), %rax
    mov %rax, 144(%rsp)
common:
    mov %rsp, %rdi
    call simulate
    cmp $1, %eax
    je 1f
    cmp $2, %eax
    je 2f
    mov 112(%rsp), %rax
    mov 120(%rsp), %rdx
    movq 128(%rsp), %xmm0
    movq 136(%rsp), %xmm1
    leave
    ret
1:  mov 112(%rsp), %rax
    fldt (%rax)
    leave
    ret
2:  mov 112(%rsp), %rax
    fldt 16(%rax)
    fldt (%rax)
    leave
    ret
    .section .note.GNU-stack,"",@progbits
