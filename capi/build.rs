//! Linker arguments of the C library (libstatictramp.so), per target, from
//! the runtime's build.rs table (its `links` metadata).
//!
//! x86_64: `-z shstk` marks the library for CET shadow stacks
//! (GNU_PROPERTY_X86_FEATURE_1_SHSTK). The linker ANDs the feature bits of
//! its inputs and the Rust objects carry none, so the note in our assembly
//! (asm/x86_64/notes.h) cannot do it, and an unmarked library turns shadow
//! stacks off for the whole process that loads it. Every call in it is
//! matched by a ret. Not IBT: Rust code has no endbr64 landing pads
//! (-Zcf-protection is unstable and std is built without it). GNU ld, lld
//! and mold accept `-z shstk`. (scripts/build-preload gives the preload
//! library the same option.)

fn main() {
    let args = std::env::var("DEP_STATICTRAMP_ASM_CDYLIB_LINK_ARGS").unwrap_or_default();
    for arg in args.split_whitespace() {
        println!("cargo:rustc-cdylib-link-arg={arg}");
    }
    println!("cargo:rerun-if-env-changed=DEP_STATICTRAMP_ASM_CDYLIB_LINK_ARGS");
}
