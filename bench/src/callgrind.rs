//! Instruction counts: the driver's call loop under valgrind's callgrind,
//! collected only inside `measure_loop`.

use super::backend::Backend;
use super::driver::{Driver, first_line};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `valgrind --version`, or None if valgrind cannot be run.
pub(super) fn valgrind_version() -> Option<String> {
    first_line(&["valgrind".into()], "--version")
}

impl Driver {
    /// Checks that the backend under valgrind is the one `info` saw. Under
    /// callgrind, the tool that counts: valgrind's default, memcheck, stops
    /// on a 32-bit program unless libc6-dbg:i386 is installed (it needs
    /// ld.so's symbols to redirect strlen); callgrind does not.
    pub(super) fn check_under_valgrind(&self, b: &Backend) -> Result<(), String> {
        let out = self
            .work
            .join(format!("callgrind-{}-info.out", b.which.name()));
        let prefix: Vec<OsString> = vec![
            "valgrind".into(),
            "-q".into(),
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}", out.display()).into(),
        ];
        let l = self.run_with(b, &prefix, &["info".into()])?;
        for key in ["closure_api_provider", "trampoline"] {
            if l.text(key).as_ref() != b.info.get(key) {
                return Err(format!(
                    "{}: under valgrind, {key} is {:?}, not {:?}",
                    b.which.name(),
                    l.text(key),
                    b.info.get(key)
                ));
            }
        }
        Ok(())
    }

    /// Instructions per iteration of `measure_loop` for every signature
    /// (NaN for those the backend skips; the floor skips none): one
    /// callgrind run, one dump per signature measured (--dump-after).
    pub(super) fn callgrind(&self, b: &Backend, floor: bool, n: u64) -> Result<Vec<f64>, String> {
        let name = format!(
            "callgrind-{}{}.out",
            b.which.name(),
            if floor { "-floor" } else { "" }
        );
        let file = self.work.join(&name);
        for k in 0..=self.sigs.len() {
            let _ = std::fs::remove_file(dump_file(&file, k));
        }
        let prefix: Vec<OsString> = vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            "--toggle-collect=measure_loop".into(),
            "--dump-after=measure_loop".into(),
            format!("--callgrind-out-file={}", file.display()).into(),
        ];
        let sub = if floor { "floorloop" } else { "loop" };
        self.run_with(b, &prefix, &[sub.into(), "all".into(), n.to_string()])?;
        let mut v = vec![f64::NAN; self.sigs.len()];
        let measured = v
            .iter_mut()
            .zip(self.sigs)
            .filter(|(_, s)| floor || !b.skip.contains(&s.key))
            .map(|(slot, _)| slot);
        for (k, slot) in measured.enumerate() {
            let f = dump_file(&file, k + 1);
            let text = std::fs::read_to_string(&f)
                .map_err(|e| format!("callgrind output {}: {e}", f.display()))?;
            let total: f64 = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("totals:")
                        .or_else(|| l.strip_prefix("summary:"))
                })
                .and_then(|t| t.split_whitespace().next())
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("no totals in {}", f.display()))?;
            *slot = total / n as f64;
        }
        Ok(v)
    }
}

/// callgrind's dump files: F.1, F.2, ... (F itself is the rest at exit).
fn dump_file(file: &Path, k: usize) -> PathBuf {
    if k == 0 {
        return file.to_path_buf();
    }
    let mut s = file.as_os_str().to_owned();
    s.push(format!(".{k}"));
    PathBuf::from(s)
}
