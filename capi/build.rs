//! Linker arguments of the C library (libstatictramp.so).
//!
//! x86: mark it for CET shadow stacks (GNU_PROPERTY_X86_FEATURE_1_SHSTK).
//! The linker ANDs the feature bits of its inputs and the Rust objects carry
//! none, so the note in our assembly (asm/common.h) cannot do it, and an
//! unmarked library turns shadow stacks off for the whole process that
//! loads it. Every call in it is matched by a ret. Not IBT: Rust code has
//! no endbr64 landing pads (-Zcf-protection is unstable and std is built
//! without it). GNU ld, lld and mold accept `-z shstk`. (The preload
//! library gets the same option in scripts/build-preload.)

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch == "x86_64" || arch == "x86" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,shstk");
    }
}
