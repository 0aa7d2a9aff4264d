//! Records the target the helpers are built for, so that C programs are
//! compiled for it too (see `c_compiler` in src/lib.rs).
fn main() {
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=STATICTRAMP_TESTKIT_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
