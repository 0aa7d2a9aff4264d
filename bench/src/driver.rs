//! The C driver bench.c (beside this crate's Cargo.toml): compiling it (once per source and
//! compiler), running it in a backend's environment, and reading its
//! `key value...` output lines.

use super::backend::Backend;
use super::{NSIGS, SIGS, create_dir, exe_target_dir};
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
    /// `KEY SIG VALUE` lines, in SIGS order.
    pub(super) fn per_sig(&self, key: &str) -> Result<[f64; NSIGS], String> {
        let mut v = [f64::NAN; NSIGS];
        for l in self.all(key) {
            if let (Some(k), Some(x)) = (SIGS.iter().position(|s| s.key == l[0]), l.get(1)) {
                v[k] = x
                    .parse()
                    .map_err(|_| format!("bad number in {key} {l:?}"))?;
            }
        }
        match v.iter().position(|x| x.is_nan()) {
            Some(k) => Err(format!("the driver printed no {key} for {}", SIGS[k].key)),
            None => Ok(v),
        }
    }
}

/// The compiled driver and where its outputs go.
pub(super) struct Driver {
    exe: PathBuf,
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

/// The C compiler: `$CC` (may carry arguments) or `cc`.
pub(super) fn compiler() -> Vec<String> {
    let cc = std::env::var("CC")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "cc".into());
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
pub(super) fn build_driver(cc: &[String], reps: u32) -> Result<Driver, String> {
    use std::hash::{Hash, Hasher};
    let version = first_line(cc, "--version").ok_or_else(|| {
        format!(
            "no C compiler: `{}` cannot be run (install one, e.g. `apt-get install gcc \
             libffi-dev`, or set CC)",
            cc.join(" ")
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
                 library: `apt-get install libffi-dev`):\n{}",
                cc.join(" "),
                tail(&out.stderr, 20)
            ));
        }
        std::fs::rename(&tmp, &exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    }
    let work = dir.join("last-run");
    create_dir(&work)?;
    Ok(Driver { exe, work, reps })
}
