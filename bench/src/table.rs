//! Tables (printed as aligned text, written as Markdown) and the formatting
//! of the numbers in them.

use super::{MILLION, SIXTEEN_M};
use std::fmt::Write as _;

/// A table printed as aligned text and written as Markdown.
pub(super) struct Table {
    title: String,
    pub(super) note: String,
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(title: impl Into<String>, note: impl Into<String>, head: &[&str]) -> Table {
        Table {
            title: title.into(),
            note: note.into(),
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }
    pub(super) fn row(&mut self, r: Vec<String>) {
        self.rows.push(r);
    }
    /// Columns of numbers (right-aligned; text is left-aligned).
    fn numeric(&self) -> Vec<bool> {
        (0..self.head.len())
            .map(|k| {
                k > 0
                    && self.rows.iter().all(|r| {
                        r[k].is_empty()
                            || r[k] == "n/a"
                            || r[k].starts_with(|c: char| c.is_ascii_digit() || c == '-')
                    })
            })
            .collect()
    }
    pub(super) fn text(&self) -> String {
        let mut w: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (k, c) in r.iter().enumerate() {
                w[k] = w[k].max(c.chars().count());
            }
        }
        let numeric = self.numeric();
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (k, c) in cells.iter().enumerate() {
                let pad = " ".repeat(w[k] - c.chars().count());
                if k > 0 {
                    s.push_str("  ");
                }
                if numeric[k] {
                    s.push_str(&pad);
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&pad);
                }
            }
            s.trim_end().to_string()
        };
        let mut s = format!("\n== {}\n", self.title);
        if !self.note.is_empty() {
            s.push_str(&self.note);
            s.push('\n');
        }
        s.push_str(&line(&self.head));
        s.push('\n');
        for r in &self.rows {
            s.push_str(&line(r));
            s.push('\n');
        }
        s
    }
    pub(super) fn markdown(&self) -> String {
        let esc = |c: &String| c.replace('|', "\\|");
        let mut s = format!("## {}\n\n", self.title);
        if !self.note.is_empty() {
            s.push_str(&self.note);
            s.push_str("\n\n");
        }
        let cells: Vec<String> = self.head.iter().map(esc).collect();
        let _ = writeln!(s, "| {} |", cells.join(" | "));
        let align: Vec<&str> = self
            .numeric()
            .iter()
            .map(|&n| if n { "---:" } else { "---" })
            .collect();
        let _ = writeln!(s, "|{}|", align.join("|"));
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(esc).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s.push('\n');
        s
    }
}

/// A number with a precision that suits its size.
pub(super) fn num(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

pub(super) fn ratio(x: f64, base: f64) -> String {
    if x.is_finite() && base.is_finite() && base > 0.0 {
        format!("{:.2}x", x / base)
    } else {
        "n/a".into()
    }
}

pub(super) fn count(n: u64) -> String {
    if n >= MILLION && n % MILLION == 0 {
        format!("{} M", n / MILLION)
    } else if n == SIXTEEN_M {
        "16 M".into()
    } else if n >= MILLION && n % 100_000 == 0 {
        format!("{}.{} M", n / MILLION, n % MILLION / 100_000)
    } else if n >= 1000 && n % 1000 == 0 {
        format!("{} k", n / 1000)
    } else {
        n.to_string()
    }
}
