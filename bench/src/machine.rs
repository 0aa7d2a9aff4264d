//! Facts about the machine, for the report.

use super::callgrind::valgrind_version;
use super::driver::first_line;
use std::process::Command;
use std::time::SystemTime;

pub(super) fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// UTC date and time, without a date library.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Facts about the machine for the report.
pub(super) fn machine(cc: &[String], callgrind: bool) -> Vec<(String, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut v = vec![
        ("CPU".to_string(), format!("{cpu} ({cores} CPUs available)")),
        (
            "kernel".into(),
            read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
        ),
        (
            "vm.max_map_count".into(),
            read_trim("/proc/sys/vm/max_map_count").unwrap_or_else(|| "unknown".into()),
        ),
        ("date".into(), utc_now()),
        (
            "C compiler".into(),
            first_line(cc, "--version").unwrap_or_default(),
        ),
    ];
    if callgrind {
        v.push(("valgrind".into(), valgrind_version().unwrap_or_default()));
    }
    if let Some(rev) = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
    {
        v.push(("commit (of the current directory)".into(), rev));
    }
    v
}
