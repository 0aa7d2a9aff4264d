//! The three backends: where libffi 3.6 is, and the check that `info`
//! found in each configuration the closure API we meant to measure.

use super::{Which, exe_target_dir};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A backend: the environment the driver runs in, and what `info` said.
pub(super) struct Backend {
    pub(super) which: Which,
    pub(super) env: Vec<(&'static str, OsString)>,
    pub(super) info: BTreeMap<String, String>,
    /// Signatures whose closures this backend cannot run (BENCH_SKIP).
    pub(super) skip: Vec<&'static str>,
}

/// The libffi 3.6 install prefix: --libffi36, $STATICTRAMP_LIBFFI36, else
/// target/`dir` (where scripts/build-libffi36 puts it: libffi-3.6, or
/// libffi-3.6-i686 for --target i686-unknown-linux-gnu) beside this
/// binary's target directory or this source tree's.
pub(super) fn find_libffi36(explicit: Option<&Path>, dir: &str) -> Result<PathBuf, String> {
    let env = std::env::var_os("STATICTRAMP_LIBFFI36")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let candidates: Vec<(PathBuf, &str)> = match (explicit, env) {
        (Some(p), _) => vec![(p.to_path_buf(), "--libffi36")],
        (None, Some(p)) => vec![(p, "$STATICTRAMP_LIBFFI36")],
        (None, None) => {
            let mut v = Vec::new();
            if let Some(t) = exe_target_dir() {
                v.push((t.join(dir), "beside the binary's target directory"));
            }
            // This crate sits one level below the workspace root.
            if let Some(root) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
                v.push((root.join("target").join(dir), "the source tree"));
            }
            v
        }
    };
    for (p, _) in &candidates {
        if p.join("lib/libffi.so.8").is_file() {
            return Ok(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
        }
    }
    let looked: Vec<String> = candidates
        .iter()
        .map(|(p, how)| format!("    {}/lib/libffi.so.8 ({how})", p.display()))
        .collect();
    Err(format!(
        "libffi 3.6 was not found; looked for:\n{}\nbuild it with scripts/build-libffi36 [--target \
         TRIPLE] (from the source vendored in libffi-sys), or name its prefix with --libffi36 PREFIX or \
         STATICTRAMP_LIBFFI36=PREFIX",
        looked.join("\n")
    ))
}

/// Checks that `info` shows the backend we meant to measure.
pub(super) fn verify_info(b: &Backend, prefix36: &Path, preload: &Path) -> Result<(), String> {
    let i = &b.info;
    let get = |k: &str| i.get(k).map(String::as_str).unwrap_or("?");
    let provider = get("closure_api_provider");
    let fail = |why: String| {
        Err(format!(
            "{}: {why} (closure API from {provider}, libffi {}, trampoline {})",
            b.which.name(),
            get("libffi"),
            get("trampoline")
        ))
    };
    let lib36 = prefix36.join("lib");
    match b.which {
        Which::System => {
            if Path::new(provider).starts_with(&lib36) || get("statictramp_owns_code") != "absent" {
                return fail("the system configuration is not served by the system libffi".into());
            }
            if provider != get("libffi") {
                return fail(
                    "ffi_closure_alloc and ffi_prep_cif come from different objects".into(),
                );
            }
        }
        Which::Libffi36 => {
            if !Path::new(provider).starts_with(&lib36) {
                return fail(format!(
                    "ffi_closure_alloc is not bound to libffi 3.6 in {}",
                    lib36.display()
                ));
            }
            if get("trampoline") != "static" {
                return fail(
                    "libffi 3.6 does not use static trampolines here (was it configured \
                     without them?)"
                        .into(),
                );
            }
        }
        Which::Statictramp => {
            if Path::new(provider) != preload || get("statictramp_owns_code") != "1" {
                return fail(format!(
                    "the closure API is not served by the preload library {}",
                    preload.display()
                ));
            }
            if get("trampoline") != "static" {
                return fail("the closure code is not in a static trampoline".into());
            }
        }
    }
    Ok(())
}
