//! The C driver bench.c (beside this crate's Cargo.toml): compiling it (once per source and
//! compiler), running it in a backend's environment, and reading its
//! `key value...` output lines.

use super::arch::Arch;
use super::backend::Backend;
use super::{Sig, create_dir, exe_target_dir};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The driver, compiled on first use (and whenever it changes).
const SOURCE: &str = include_str!("../bench.c");

/// The driver's output: one `key value...` line per fact.
pub(super) struct Lines(pub(super) Vec<Vec<String>>);

impl Lines {
    pub(super) fn parse(text: &str) -> Lines {
        Lines(
            text.lines()
                .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .filter(|v| !v.is_empty())
                .collect(),
        )
    }
    fn all(&self, key: &str) -> impl Iterator<Item = &[String]> {
        self.0.iter().filter(move |l| l[0] == key).map(|l| &l[1..])
    }
    fn get(&self, key: &str) -> Option<&[String]> {
        self.all(key).next()
    }
    pub(super) fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| v.join(" "))
    }
    pub(super) fn num(&self, key: &str) -> Result<f64, String> {
        self.get(key)
            .and_then(|v| v.first())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("the driver printed no number for {key}"))
    }
    /// `KEY SIG VALUE` lines, in `sigs` order; the signatures in `skip`
    /// are not measured (NaN), every other one must be there.
    pub(super) fn per_sig(
        &self,
        key: &str,
        sigs: &[Sig],
        skip: &[&str],
    ) -> Result<Vec<f64>, String> {
        let mut v = vec![f64::NAN; sigs.len()];
        for l in self.all(key) {
            if let (Some(k), Some(x)) = (sigs.iter().position(|s| s.key == l[0]), l.get(1)) {
                v[k] = x
                    .parse()
                    .map_err(|_| format!("bad number in {key} {l:?}"))?;
            }
        }
        let missing = v
            .iter()
            .zip(sigs)
            .find(|(x, s)| x.is_nan() && !skip.contains(&s.key));
        match missing {
            Some((_, s)) => Err(format!("the driver printed no {key} for {}", s.key)),
            None => Ok(v),
        }
    }
}

/// The compiled driver and where its outputs go.
pub(super) struct Driver {
    exe: PathBuf,
    /// The signatures it measures.
    pub(super) sigs: &'static [Sig],
    pub(super) work: PathBuf,
    reps: u32,
}

fn describe_status(out: &Output) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (out.status.code(), out.status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("crashed: signal {s}"),
        _ => "failed".into(),
    }
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl Driver {
    /// The compiled driver.
    pub(super) fn exe(&self) -> &std::path::Path {
        &self.exe
    }

    fn command(&self, b: &Backend, prefix: &[OsString], args: &[String]) -> Command {
        let mut c = match prefix.split_first() {
            Some((p, rest)) => {
                let mut c = Command::new(p);
                c.args(rest).arg(&self.exe);
                c
            }
            None => Command::new(&self.exe),
        };
        c.args(args)
            .env_remove("LD_PRELOAD")
            .env_remove("LD_LIBRARY_PATH")
            .env("BENCH_REPS", self.reps.to_string());
        for (k, v) in &b.env {
            c.env(k, v);
        }
        if !b.skip.is_empty() {
            c.env("BENCH_SKIP", b.skip.join(","));
        }
        c
    }

    pub(super) fn run_with(
        &self,
        b: &Backend,
        prefix: &[OsString],
        args: &[String],
    ) -> Result<Lines, String> {
        let shown = format!("{} bench {}", b.which.name(), args.join(" "));
        let out = self
            .command(b, prefix, args)
            .output()
            .map_err(|e| format!("{shown}: cannot run the driver: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{shown}: {}\n{}",
                describe_status(&out),
                tail(&out.stderr, 20)
            ));
        }
        Ok(Lines::parse(&String::from_utf8_lossy(&out.stdout)))
    }

    pub(super) fn run(&self, b: &Backend, args: &[&str]) -> Result<Lines, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        self.run_with(b, &[], &args)
    }
}

/// The cache directory: `statictramp-bench` in the cargo target directory
/// this binary was built in, else in $TMPDIR (per user).
fn cache_dir() -> PathBuf {
    if let Some(target) = exe_target_dir().filter(|t| t.join("CACHEDIR.TAG").is_file()) {
        return target.join("statictramp-bench");
    }
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    std::env::temp_dir().join(format!("statictramp-bench-{uid}"))
}

/// The target's C compiler (may carry arguments): `$CC` or `cc` for the
/// host, `$CC_i686_unknown_linux_gnu` or `i686-linux-gnu-gcc` for i686.
pub(super) fn compiler(arch: &Arch) -> Vec<String> {
    let cc = std::env::var(arch.cc_var)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| arch.cc_default.into());
    cc.split_whitespace().map(str::to_string).collect()
}

pub(super) fn first_line(cmd: &[String], arg: &str) -> Option<String> {
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg(arg)
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let s = if s.trim().is_empty() {
        String::from_utf8_lossy(&out.stderr).into_owned()
    } else {
        s.into_owned()
    };
    s.lines().next().map(|l| l.trim().to_string())
}

/// Compiles the driver into the cache (keyed by source and compiler).
pub(super) fn build_driver(cc: &[String], arch: &Arch, reps: u32) -> Result<Driver, String> {
    use std::hash::{Hash, Hasher};
    let version = first_line(cc, "--version").ok_or_else(|| {
        format!(
            "no C compiler for {}: `{}` cannot be run ({})",
            arch.triple,
            cc.join(" "),
            install_hint(arch)
        )
    })?;
    let dir = cache_dir();
    create_dir(&dir)?;
    let mut h = std::hash::DefaultHasher::new();
    (SOURCE, cc, &version).hash(&mut h);
    let exe = dir.join(format!("bench-{:016x}", h.finish()));
    if !exe.is_file() {
        // Kept beside the binary, so that callgrind_annotate can show it.
        let src = dir.join(format!("bench-{:016x}.c", h.finish()));
        let tmp = dir.join(format!("bench.{}.tmp", std::process::id()));
        let src_tmp = dir.join(format!("bench.{}.c", std::process::id()));
        std::fs::write(&src_tmp, SOURCE)
            .and_then(|()| std::fs::rename(&src_tmp, &src))
            .map_err(|e| format!("{}: {e}", src.display()))?;
        let out = Command::new(&cc[0])
            .args(&cc[1..])
            .args(["-O2", "-g", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src)
            .args(["-lffi", "-lpthread", "-ldl"])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", cc[0]))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!(
                "compiling the benchmark driver with `{}` failed (needs libffi's header and \
                 library: {}):\n{}",
                cc.join(" "),
                install_hint(arch),
                tail(&out.stderr, 20)
            ));
        }
        std::fs::rename(&tmp, &exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    }
    let work = dir.join(if arch.is_host() {
        "last-run".to_string()
    } else {
        format!("last-run-{}", arch.triple)
    });
    create_dir(&work)?;
    Ok(Driver {
        exe,
        sigs: arch.sigs,
        work,
        reps,
    })
}

/// How to get the target's compiler and libffi.
fn install_hint(arch: &Arch) -> &'static str {
    if arch.is_host() {
        "`apt-get install gcc libffi-dev`, or set CC"
    } else {
        "scripts/lib/cross-target i686-unknown-linux-gnu installs i686-linux-gnu-gcc and \
         libffi-dev:i386; or set CC_i686_unknown_linux_gnu"
    }
}
