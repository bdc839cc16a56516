//! `cairn report`: one self-contained HTML page about a repository, to open in a
//! browser. No server, no network, no external script or font: a Content Security
//! Policy in the page forbids loading anything, and the charts are inline SVG. It
//! shows what the repository and this machine's records say (snapshots, sizes, ships,
//! drills, checks), never a file's contents nor anything secret.

mod chart;

use std::fmt::Write;

use chrono::{DateTime, FixedOffset};

use cairn_format::DrillRecord;
use cairn_repo::SnapshotRef;

use crate::output::size;
use chart::Point;

/// Everything the page shows, gathered by the command.
pub struct Report {
    pub location: String,
    pub repository_id: String,
    pub generated: DateTime<FixedOffset>,
    /// Oldest first.
    pub snapshots: Vec<SnapshotRef>,
    pub stats: cairn_ops::stats::Stats,
    pub ships: crate::shipped::Ships,
    pub drills: Vec<DrillRecord>,
    pub last_check: Option<crate::checked::LastCheck>,
    /// Per location: packs whose content was last read back intact there, and when
    /// the least recently verified of them was (ms).
    pub verified: Vec<(String, usize, Option<i64>)>,
    pub packs: usize,
    /// Ages beyond which the page warns (as `snapshots` does).
    pub warn_ship_age: chrono::TimeDelta,
    pub warn_drill_age: chrono::TimeDelta,
}

/// Text for HTML (element content and quoted attributes alike).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A moment as a `<time>` the page's one script shows in the reader's time zone.
fn time(t: &DateTime<FixedOffset>) -> String {
    format!(
        r#"<time datetime="{}">{}</time>"#,
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        t.format("%Y-%m-%d %H:%M %:z")
    )
}

fn ms_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| time(&t.fixed_offset()))
        .unwrap_or_default()
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:960px;padding:0 1em;color:#222}\
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}\
.sub{color:#666}.cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:10em}\
.card b{display:block;font-size:1.3em}table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25em .6em;border-bottom:1px solid #eee}\
td.n,th.n{text-align:right}.warn{color:#a40;font-weight:600}.ok{color:#174}\
svg .axis{stroke:#bbb}svg .line{fill:none;stroke:#37a;stroke-width:2}svg circle{fill:#37a}svg .snap{fill:#2a7}\
svg text{font-size:12px;fill:#444}";

/// Shows every `<time>` in the reader's own time zone (the page is made on one machine
/// and may be read on another).
const SCRIPT: &str = "document.querySelectorAll('time[datetime]').forEach(function(t){\
var d=new Date(t.getAttribute('datetime'));if(!isNaN(d.getTime())){t.textContent=d.toLocaleString();t.setAttribute('data-local','1');}});";

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"><meta name="viewport" content="width=device-width"><title>cairn report: {loc}</title><style>{STYLE}</style></head><body>
<h1>cairn report</h1><p class="sub">{loc} · repository {id} · made {made} by cairn {ver}</p>"#,
        loc = escape(&r.location),
        id = escape(r.repository_id.get(..8).unwrap_or(&r.repository_id)),
        made = time(&r.generated),
        ver = env!("CARGO_PKG_VERSION"),
    );
    cards(&mut h, r);
    health(&mut h, r);
    charts(&mut h, r);
    added(&mut h, r);
    let _ = writeln!(h, "<script>{SCRIPT}</script></body></html>");
    h
}

fn cards(h: &mut String, r: &Report) {
    let s = &r.stats;
    let card = |h: &mut String, label: &str, value: String| {
        let _ = write!(
            h,
            r#"<div class="card">{label}<b>{}</b></div>"#,
            escape(&value)
        );
    };
    h.push_str(r#"<div class="cards">"#);
    card(h, "Snapshots", s.snapshots.to_string());
    card(h, "Stored", size(s.stored_size));
    card(h, "Restore size of all", size(s.restore_size));
    card(h, "Deduplication", format!("{:.2}x", s.deduplication_ratio));
    card(h, "Compression", format!("{:.2}x", s.compression_ratio));
    card(h, "Packs", r.packs.to_string());
    h.push_str("</div>");
}

/// Ships, drills and checks: whether the copies exist and have been proved readable.
fn health(h: &mut String, r: &Report) {
    let now = r.generated;
    h.push_str("<h2>Offsite copies</h2>");
    if r.ships.is_empty() && crate::location::is_remote(&r.location) {
        h.push_str("<p>This repository is itself an offsite copy.</p>");
    } else if r.ships.is_empty() {
        h.push_str(r#"<p class="warn">Never shipped from this machine.</p>"#);
    } else {
        h.push_str(r#"<table><tr><th>Destination</th><th>Last complete ship</th><th class="n">Files</th><th class="n">Uploaded</th><th>Verified after</th></tr>"#);
        for (dest, e) in &r.ships {
            let old = now - e.time > r.warn_ship_age;
            let _ = write!(
                h,
                r#"<tr class="ship"><td>{}</td><td{}>{}{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
                escape(dest),
                if old { r#" class="warn""# } else { "" },
                time(&e.time),
                if old { " (old)" } else { "" },
                e.files_uploaded,
                size(e.bytes_uploaded),
                if e.verified { "yes" } else { "no" }
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Restore drills</h2>");
    let passing = r.drills.iter().filter(|d| d.ok).max_by_key(|d| d.time);
    match passing {
        Some(d) if now - d.time <= r.warn_drill_age => {
            let _ = write!(h, r#"<p class="ok">Last passing drill {}: {} files, {} checked.</p>"#, time(&d.time), d.files_checked, size(d.bytes_checked));
        }
        Some(d) => {
            let _ = write!(h, r#"<p class="warn">The last passing drill was {}: run <code>cairn drill</code>.</p>"#, time(&d.time));
        }
        None => h.push_str(r#"<p class="warn">No drill has passed: run <code>cairn drill</code> to prove these backups can be read back.</p>"#),
    }
    if let Some(d) = r.drills.iter().filter(|d| !d.ok).max_by_key(|d| d.time) {
        let _ = write!(
            h,
            r#"<p class="warn">A drill failed {}:</p><ul>"#,
            time(&d.time)
        );
        for f in d.failures.iter().take(20) {
            let _ = write!(h, "<li>{}</li>", escape(f));
        }
        h.push_str("</ul>");
    }
    h.push_str("<h2>Checks</h2>");
    match &r.last_check {
        Some(c) if c.errors == 0 => {
            let _ = write!(
                h,
                r#"<p class="ok">Last check from this machine {}: no errors.</p>"#,
                time(&c.time)
            );
        }
        Some(c) => {
            let _ = write!(
                h,
                r#"<p class="warn">Last check from this machine {}: {} errors. Run <code>cairn check</code> for details.</p>"#,
                time(&c.time),
                c.errors
            );
        }
        None => h.push_str("<p>No check recorded on this machine.</p>"),
    }
    if !r.verified.is_empty() {
        h.push_str(r#"<table><tr><th>Packs read back intact at</th><th class="n">Packs</th><th>Least recently</th></tr>"#);
        for (loc, n, oldest) in &r.verified {
            let _ = write!(
                h,
                r#"<tr class="verified"><td>{}</td><td class="n">{n} of {}</td><td>{}</td></tr>"#,
                escape(loc),
                r.packs,
                oldest.map(ms_time).unwrap_or_default()
            );
        }
        h.push_str("</table>");
    }
}

fn charts(h: &mut String, r: &Report) {
    let label = |s: &SnapshotRef| {
        format!(
            "{} {} {}",
            s.id.short(),
            s.snapshot.time.format("%Y-%m-%d %H:%M"),
            s.snapshot.tags.join(",")
        )
    };
    // Rows per host and paths, in the order their first snapshot appears.
    let mut keys: Vec<(&str, &[String])> = Vec::new();
    let mut rows: Vec<(String, Vec<Point>)> = Vec::new();
    for s in &r.snapshots {
        let key = (s.snapshot.hostname.as_str(), s.snapshot.paths.as_slice());
        let p = Point {
            t: s.snapshot.time.timestamp_millis(),
            y: 0.0,
            title: label(s),
        };
        match keys.iter().position(|k| *k == key) {
            Some(i) => rows[i].1.push(p),
            None => {
                keys.push(key);
                // The host whole; the paths' ends, where they differ.
                let room = 34usize.saturating_sub(key.0.chars().count()).max(12);
                let label = format!("{}: {}", key.0, chart::shorten(&key.1.join(", "), room));
                rows.push((label, vec![p]));
            }
        }
    }
    h.push_str("<h2>Snapshots over time</h2>");
    h.push_str(&chart::timeline(&rows, "snap"));
    // Growth and ratio from the snapshots' own summaries (what each backup added):
    // no tree needs to be read, and the points are the snapshots that carry one.
    let (mut stored, mut processed) = (0u64, 0u64);
    let mut growth = Vec::new();
    let mut ratio = Vec::new();
    for s in &r.snapshots {
        let Some(sum) = &s.snapshot.summary else {
            continue;
        };
        stored += sum.data_added_packed;
        processed += sum.total_bytes_processed;
        let t = s.snapshot.time.timestamp_millis();
        growth.push(Point {
            t,
            y: stored as f64,
            title: format!("{}: {} stored so far", label(s), size(stored)),
        });
        let x = processed as f64 / stored.max(1) as f64;
        ratio.push(Point {
            t,
            y: x,
            title: format!("{}: {x:.2} bytes backed up per byte stored", label(s)),
        });
    }
    h.push_str("<h2>Repository size over time</h2><p class=\"sub\">What the backups added, as stored (compressed and encrypted), before any prune.</p>");
    h.push_str(&chart::line(
        &growth,
        "size-point",
        "Stored bytes over time",
        &|v| size(v as u64),
    ));
    h.push_str("<h2>Deduplication and compression over time</h2><p class=\"sub\">Bytes read by all backups so far for each byte they stored.</p>");
    h.push_str(&chart::line(
        &ratio,
        "ratio-point",
        "Bytes backed up per byte stored",
        &|v| format!("{v:.1}x"),
    ));
}

/// What each snapshot added, newest first.
fn added(h: &mut String, r: &Report) {
    h.push_str(r#"<h2>What each snapshot added</h2><table><tr><th>Snapshot</th><th>Time</th><th>Host</th><th>Paths</th><th class="n">New files</th><th class="n">Changed</th><th class="n">Added (stored)</th></tr>"#);
    for s in r.snapshots.iter().rev() {
        let sn = &s.snapshot;
        let (new, changed, stored) = sn
            .summary
            .as_ref()
            .map(|x| {
                (
                    x.files_new.to_string(),
                    x.files_changed.to_string(),
                    size(x.data_added_packed),
                )
            })
            .unwrap_or_default();
        let _ = write!(
            h,
            r#"<tr class="added"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class="n">{new}</td><td class="n">{changed}</td><td class="n">{stored}</td></tr>"#,
            s.id.short(),
            time(&sn.time),
            escape(&sn.hostname),
            escape(&sn.paths.join(", ")),
        );
    }
    h.push_str("</table>");
}
