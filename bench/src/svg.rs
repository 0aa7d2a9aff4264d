//! The chart (bench.svg): instructions and nanoseconds per call, grouped by
//! signature.

use super::report::Report;
use super::{Sig, Which};
use std::fmt::Write as _;

/// XML text escaping.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const COLORS: [(&str, &str); 4] = [
    ("floor (no closure)", "#9e9e9e"),
    ("system libffi", "#d95f02"),
    ("libffi 3.6", "#7570b3"),
    ("statictramp", "#1b9e77"),
];

/// A "nice" axis maximum and tick step for values up to `max`.
pub(super) fn axis(max: f64) -> (f64, f64) {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// One panel of grouped bars: per signature, floor and the three backends.
fn svg_panel(
    s: &mut String,
    y0: f64,
    (title, unit, decimals): (&str, &str, usize),
    sigs: &[Sig],
    data: &[Vec<f64>; 4],
) {
    let (left, width, height) = (70.0, 840.0, 260.0);
    let vmax = data
        .iter()
        .flat_map(|d| d.iter())
        .copied()
        .filter(|x| x.is_finite())
        .fold(0.0, f64::max);
    let (top, step) = axis(vmax);
    let base = y0 + 40.0 + height;
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        y0 + 22.0,
        xml(title)
    );
    let mut tick = 0.0;
    while tick <= top + step * 0.01 {
        let y = base - tick / top * height;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            left + width,
            left - 6.0,
            y + 4.0,
            if step >= 1.0 {
                format!("{tick:.0}")
            } else {
                format!("{tick:.1}")
            }
        );
        tick += step;
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" font-size="12" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
        base - height / 2.0,
        base - height / 2.0,
        xml(unit)
    );
    let group = width / sigs.len() as f64;
    let bar = (group - 24.0) / 4.0;
    for (k, sig) in sigs.iter().enumerate() {
        let gx = left + group * k as f64 + 12.0;
        for (j, (_, color)) in COLORS.iter().enumerate() {
            let v = data[j][k];
            if !v.is_finite() {
                continue;
            }
            let h = v / top * height;
            let x = gx + bar * j as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                base - h,
                bar - 2.0,
                x + (bar - 2.0) / 2.0,
                base - h - 3.0,
                if v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.decimals$}")
                }
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            gx + bar * 2.0,
            base + 18.0,
            xml(sig.short)
        );
    }
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{base:.1}" x2="{}" y2="{base:.1}" stroke="black"/>"#,
        left + width
    );
}

pub(super) fn svg(rep: &Report) -> String {
    let mut panels: Vec<(&str, &str, usize, [Vec<f64>; 4])> = Vec::new();
    if let Some(fl) = rep.floor_ir.clone() {
        panels.push((
            "Instructions per closure call (callgrind; lower is better)",
            "instructions per call",
            0,
            [
                fl,
                rep.ir(Which::System),
                rep.ir(Which::Libffi36),
                rep.ir(Which::Statictramp),
            ],
        ));
    }
    panels.push((
        "Nanoseconds per closure call (best of all runs; lower is better)",
        "ns per call",
        1,
        [
            rep.floor_ns(),
            rep.r(Which::System).call_ns.clone(),
            rep.r(Which::Libffi36).call_ns.clone(),
            rep.r(Which::Statictramp).call_ns.clone(),
        ],
    ));
    let panel_h = 340.0;
    let legend_y = 30.0 + panel_h * panels.len() as f64;
    let total_h = legend_y + 60.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="940" height="{total_h:.0}" viewBox="0 0 940 {total_h:.0}" font-family="DejaVu Sans, Verdana, sans-serif">"#
    );
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="white"/><text x="470" y="20" font-size="13" text-anchor="middle" fill="#444">{}</text>"##,
        xml(&format!(
            "statictramp-bench: {} ({})",
            rep.machine
                .iter()
                .find(|(k, _)| k == "date")
                .map_or("", |(_, v)| v.as_str()),
            rep.machine.first().map_or("", |(_, v)| v.as_str())
        ))
    );
    for (k, (title, unit, decimals, data)) in panels.iter().enumerate() {
        svg_panel(
            &mut s,
            30.0 + panel_h * k as f64,
            (title, unit, *decimals),
            rep.arch.sigs,
            data,
        );
    }
    for (j, (name, color)) in COLORS.iter().enumerate() {
        let x = 70.0 + 200.0 * j as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{legend_y}" width="14" height="14" fill="{color}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
            x + 20.0,
            legend_y + 12.0,
            xml(name)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="70" y="{}" font-size="11" fill="#444">s16 = struct{{long,long}} in and out by value; s40 = struct{{5 long}} by value; d/i/l = double/int/long arguments.</text>"##,
        legend_y + 40.0
    );
    s.push_str("</svg>\n");
    s
}
