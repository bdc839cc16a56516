//! The report's charts, drawn as inline SVG on this side: the page needs no script
//! library, no network and nothing but a browser to show them. Every point is an
//! element with a class and a `<title>` (the browser's tooltip), so a test can count
//! them and a reader can hover them.

use std::fmt::Write;

use super::escape;

const WIDTH: f64 = 900.0;
const LEFT: f64 = 230.0;
const RIGHT: f64 = 20.0;

/// One point of a chart: when, how much, and the tooltip.
pub struct Point {
    /// Unix milliseconds.
    pub t: i64,
    pub y: f64,
    pub title: String,
}

/// The x position of time `t` within `[min, max]`.
fn x_of(t: i64, min: i64, max: i64) -> f64 {
    let span = (max - min).max(1) as f64;
    LEFT + (t - min) as f64 / span * (WIDTH - LEFT - RIGHT)
}

/// Rows of dots on one time axis: a row per (host, paths), a dot per snapshot.
pub fn timeline(rows: &[(String, Vec<Point>)], class: &str) -> String {
    let (min, max) = bounds(rows.iter().flat_map(|(_, p)| p));
    let row_h = 30.0;
    let height = 40.0 + row_h * rows.len() as f64;
    let mut s = svg_open(height, "Snapshots over time, one row per host and paths");
    for (i, (label, points)) in rows.iter().enumerate() {
        let y = 20.0 + row_h * (i as f64 + 0.5);
        let _ = write!(
            s,
            r#"<text x="4" y="{y:.1}" class="label">{}</text><line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" class="axis"/>"#,
            escape(label),
            WIDTH - RIGHT
        );
        for p in points {
            let _ = write!(
                s,
                r#"<circle class="{class}" cx="{:.1}" cy="{y:.1}" r="5"><title>{}</title></circle>"#,
                x_of(p.t, min, max),
                escape(&p.title)
            );
        }
    }
    axis_dates(&mut s, min, max, height - 6.0);
    s.push_str("</svg>");
    s
}

/// A line through `points` (in time order) with a dot per point; `unit` formats the
/// y axis labels.
pub fn line(points: &[Point], class: &str, caption: &str, unit: &dyn Fn(f64) -> String) -> String {
    let height = 220.0;
    let (top, bottom) = (16.0, height - 30.0);
    let (min, max) = bounds(points.iter());
    let ymax = points
        .iter()
        .map(|p| p.y)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let y_of = |v: f64| bottom - v / ymax * (bottom - top);
    let mut s = svg_open(height, caption);
    let _ = write!(
        s,
        r#"<line x1="{LEFT}" x2="{LEFT}" y1="{top}" y2="{bottom}" class="axis"/><line x1="{LEFT}" x2="{:.1}" y1="{bottom}" y2="{bottom}" class="axis"/>"#,
        WIDTH - RIGHT
    );
    for frac in [0.0, 0.5, 1.0] {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y_of(ymax * frac) + 4.0,
            escape(&unit(ymax * frac))
        );
    }
    let path: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x_of(p.t, min, max), y_of(p.y)))
        .collect();
    if points.len() > 1 {
        let _ = write!(s, r#"<polyline class="line" points="{}"/>"#, path.join(" "));
    }
    for (p, xy) in points.iter().zip(&path) {
        let (x, y) = xy.split_once(',').unwrap_or(("0", "0"));
        let _ = write!(
            s,
            r#"<circle class="{class}" cx="{x}" cy="{y}" r="4"><title>{}</title></circle>"#,
            escape(&p.title)
        );
    }
    axis_dates(&mut s, min, max, height - 8.0);
    s.push_str("</svg>");
    s
}

fn svg_open(height: f64, caption: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0}" width="100%" role="img" aria-label="{}">"#,
        escape(caption)
    )
}

fn bounds<'a>(points: impl Iterator<Item = &'a Point>) -> (i64, i64) {
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for p in points {
        min = min.min(p.t);
        max = max.max(p.t);
    }
    if min > max {
        (0, 1)
    } else if min == max {
        (min - 1, max + 1)
    } else {
        (min, max)
    }
}

/// The first and last dates under the x axis.
fn axis_dates(s: &mut String, min: i64, max: i64, y: f64) {
    let day = |t: i64| {
        chrono::DateTime::from_timestamp_millis(t)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="{y:.1}" class="tick">{}</text><text x="{:.1}" y="{y:.1}" class="tick" text-anchor="end">{}</text>"#,
        day(min),
        WIDTH - RIGHT,
        day(max)
    );
}

/// `s` cut to its last `n` characters, marked as cut.
pub fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let tail: String = s
        .chars()
        .rev()
        .take(n - 1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}
