//! Retention policies for `forget`, with restic's semantics.
//!
//! Within one group, snapshots are visited newest first. Each `keep-<period> N` rule
//! keeps the newest snapshot of each of the N most recent periods (hour, day, ISO week,
//! month, year) that have one; `keep-last N` keeps the N newest; `keep-within D` keeps
//! every snapshot younger than D relative to the group's newest; `keep-tag T` keeps
//! every snapshot tagged T. A snapshot kept by several rules counts against each of
//! them and lists every reason. A negative count means "unlimited".

use chrono::{DateTime, Datelike, FixedOffset, Months, Timelike};

use cairn_repo::SnapshotRef;

/// `1y6m2d12h`-style durations: calendar years and months, then days and hours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Duration {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl Duration {
    pub fn parse(s: &str) -> Result<Duration, String> {
        let bad = || format!("invalid duration {s:?}: expected e.g. 1y6m2d, 90d or 12h");
        let mut d = Duration::default();
        let mut num = String::new();
        let mut any = false;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: u32 = num.parse().map_err(|_| bad())?;
            num.clear();
            match c {
                'y' => d.years += n,
                'm' => d.months += n,
                'd' => d.days += n,
                'h' => d.hours += n,
                _ => return Err(bad()),
            }
            any = true;
        }
        if !num.is_empty() || !any {
            return Err(bad());
        }
        Ok(d)
    }

    /// For a profile's `keep_within = "1y"`: the same text as the flag.
    pub fn deserialize_opt<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = serde::Deserialize::deserialize(d)?;
        text.map(|t| Duration::parse(&t).map_err(serde::de::Error::custom))
            .transpose()
    }

    /// The moment this long before `t` (calendar arithmetic for years and months).
    pub fn before(&self, t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        let months = self.years * 12 + self.months;
        let t = t.checked_sub_months(Months::new(months)).unwrap_or(t);
        t - chrono::Duration::days(i64::from(self.days))
            - chrono::Duration::hours(i64::from(self.hours))
    }
}

/// As it is written: `1y6m`, `7d` (zero parts left out).
impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ];
        let mut any = false;
        for (n, unit) in parts.into_iter().filter(|(n, _)| *n > 0) {
            write!(f, "{n}{unit}")?;
            any = true;
        }
        if !any {
            write!(f, "0h")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default)]
pub struct RetentionPolicy {
    pub last: i64,
    pub hourly: i64,
    pub daily: i64,
    pub weekly: i64,
    pub monthly: i64,
    pub yearly: i64,
    pub within: Option<Duration>,
    pub tags: Vec<String>,
}

impl RetentionPolicy {
    /// A policy with no rule would forget everything; callers refuse it.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// A snapshot the policy keeps, and the rules that keep it.
#[derive(Clone, Debug)]
pub struct Kept {
    pub snapshot: SnapshotRef,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ForgetPlan {
    /// Newest first.
    pub keep: Vec<Kept>,
    /// Newest first.
    pub remove: Vec<SnapshotRef>,
}

type Bucket = fn(&DateTime<FixedOffset>) -> i64;

fn hour(t: &DateTime<FixedOffset>) -> i64 {
    (i64::from(t.year()) * 10_000 + i64::from(t.ordinal())) * 100 + i64::from(t.hour())
}
fn day(t: &DateTime<FixedOffset>) -> i64 {
    i64::from(t.year()) * 1000 + i64::from(t.ordinal())
}
fn week(t: &DateTime<FixedOffset>) -> i64 {
    let w = t.iso_week();
    i64::from(w.year()) * 100 + i64::from(w.week())
}
fn month(t: &DateTime<FixedOffset>) -> i64 {
    i64::from(t.year()) * 100 + i64::from(t.month())
}
fn year(t: &DateTime<FixedOffset>) -> i64 {
    i64::from(t.year())
}

/// One `--keep-<period>` rule as it is applied: how many more it may keep, and the
/// period of the last snapshot it kept.
struct Rule {
    name: &'static str,
    left: i64,
    bucket: Bucket,
    last: Option<i64>,
}

/// Applies `policy` to one group of snapshots (any order).
pub fn apply(group: &[SnapshotRef], policy: &RetentionPolicy) -> ForgetPlan {
    let mut snaps = group.to_vec();
    snaps.sort_by(|a, b| b.snapshot.time.cmp(&a.snapshot.time).then(b.id.cmp(&a.id)));
    let newest = snaps.first().map(|s| s.snapshot.time);
    let cutoff = policy.within.zip(newest).map(|(d, t)| d.before(t));

    // keep-last uses a bucket that is different for every snapshot.
    let table: [(&'static str, i64, Bucket); 6] = [
        ("last snapshot", policy.last, |_| 0),
        ("hourly snapshot", policy.hourly, hour),
        ("daily snapshot", policy.daily, day),
        ("weekly snapshot", policy.weekly, week),
        ("monthly snapshot", policy.monthly, month),
        ("yearly snapshot", policy.yearly, year),
    ];
    let mut rules = table.map(|(name, left, bucket)| Rule {
        name,
        left,
        bucket,
        last: None,
    });
    let mut plan = ForgetPlan::default();
    for (i, s) in snaps.into_iter().enumerate() {
        let t = s.snapshot.time;
        let mut reasons = Vec::new();
        for r in rules.iter_mut() {
            if r.left == 0 {
                continue;
            }
            let b = if r.name == "last snapshot" {
                i as i64
            } else {
                (r.bucket)(&t)
            };
            if r.last != Some(b) {
                r.last = Some(b);
                r.left -= 1;
                reasons.push(r.name.to_string());
            }
        }
        if cutoff.is_some_and(|c| t >= c) {
            reasons.push("within".to_string());
        }
        for tag in &policy.tags {
            if s.snapshot.tags.contains(tag) {
                reasons.push(format!("tag {tag}"));
            }
        }
        if reasons.is_empty() {
            plan.remove.push(s);
        } else {
            plan.keep.push(Kept {
                snapshot: s,
                reasons,
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_format::{BlobId, Snapshot, SnapshotId};
    use chrono::TimeZone;

    /// Warnings quote the duration back as the user wrote it.
    #[test]
    fn durations_print_as_they_are_written() {
        for s in ["7d", "13m", "1y6m2d12h", "12h", "1y"] {
            assert_eq!(Duration::parse(s).unwrap().to_string(), s);
        }
        assert!(Duration::parse("7x").is_err());
    }

    fn snap(i: u8, t: DateTime<FixedOffset>, tags: &[&str]) -> SnapshotRef {
        SnapshotRef {
            id: SnapshotId([i; 32]),
            snapshot: Snapshot {
                tags: tags.iter().map(|s| s.to_string()).collect(),
                ..Snapshot::new(t, BlobId([0; 32]), vec!["/".into()], "h".into())
            },
        }
    }

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    /// A year of snapshots: daily at 03:00 from 2025-01-01 to 2025-12-31, plus two
    /// extra on 2025-12-31 (12:00 and 18:00). Ids are the day of the year (mod 256 is
    /// enough to tell them apart in the expectations below, which use times).
    fn year_of_snapshots() -> Vec<SnapshotRef> {
        let mut v = Vec::new();
        let start = utc().with_ymd_and_hms(2025, 1, 1, 3, 0, 0).unwrap();
        for d in 0..365 {
            let t = start + chrono::Duration::days(d);
            let tags: &[&str] = if d == 100 { &["keep-me"] } else { &[] };
            v.push(snap((d % 250) as u8, t, tags));
        }
        v.push(snap(
            251,
            utc().with_ymd_and_hms(2025, 12, 31, 12, 0, 0).unwrap(),
            &[],
        ));
        v.push(snap(
            252,
            utc().with_ymd_and_hms(2025, 12, 31, 18, 0, 0).unwrap(),
            &[],
        ));
        v
    }

    fn kept_times(plan: &ForgetPlan) -> Vec<String> {
        plan.keep
            .iter()
            .map(|k| k.snapshot.snapshot.time.format("%Y-%m-%d %H").to_string())
            .collect()
    }

    fn policy() -> RetentionPolicy {
        RetentionPolicy::default()
    }

    #[test]
    fn table_of_policies_over_a_year() {
        let snaps = year_of_snapshots();
        let cases: Vec<(&str, RetentionPolicy, Vec<&str>)> = vec![
            (
                "keep-last 3",
                RetentionPolicy {
                    last: 3,
                    ..policy()
                },
                vec!["2025-12-31 18", "2025-12-31 12", "2025-12-31 03"],
            ),
            // Hourly: three distinct hours, newest of each.
            (
                "keep-hourly 2",
                RetentionPolicy {
                    hourly: 2,
                    ..policy()
                },
                vec!["2025-12-31 18", "2025-12-31 12"],
            ),
            // Daily: the newest of each day, so 18:00 on the 31st, then the 30th and 29th.
            (
                "keep-daily 3",
                RetentionPolicy {
                    daily: 3,
                    ..policy()
                },
                vec!["2025-12-31 18", "2025-12-30 03", "2025-12-29 03"],
            ),
            // ISO weeks: 2025-12-31 is a Wednesday in week 2026-W01 (Mon 29th..); the
            // previous week's newest is Sunday 28th, the one before Sunday 21st.
            (
                "keep-weekly 3",
                RetentionPolicy {
                    weekly: 3,
                    ..policy()
                },
                vec!["2025-12-31 18", "2025-12-28 03", "2025-12-21 03"],
            ),
            (
                "keep-monthly 3",
                RetentionPolicy {
                    monthly: 3,
                    ..policy()
                },
                vec!["2025-12-31 18", "2025-11-30 03", "2025-10-31 03"],
            ),
            // Only 2025 exists: one yearly snapshot, even when asked for five.
            (
                "keep-yearly 5",
                RetentionPolicy {
                    yearly: 5,
                    ..policy()
                },
                vec!["2025-12-31 18"],
            ),
            // Within 2 days of the newest (2025-12-31 18:00): from 2025-12-29 18:00 on.
            (
                "keep-within 2d",
                RetentionPolicy {
                    within: Some(Duration::parse("2d").unwrap()),
                    ..policy()
                },
                vec![
                    "2025-12-31 18",
                    "2025-12-31 12",
                    "2025-12-31 03",
                    "2025-12-30 03",
                ],
            ),
            (
                "keep-tag",
                RetentionPolicy {
                    tags: vec!["keep-me".into()],
                    ..policy()
                },
                vec!["2025-04-11 03"],
            ),
            // Rules overlap: the newest counts for both last and daily.
            (
                "keep-last 1 + keep-daily 2",
                RetentionPolicy {
                    last: 1,
                    daily: 2,
                    ..policy()
                },
                vec!["2025-12-31 18", "2025-12-30 03"],
            ),
            (
                "keep-monthly unlimited",
                RetentionPolicy {
                    monthly: -1,
                    ..policy()
                },
                vec![
                    "2025-12-31 18",
                    "2025-11-30 03",
                    "2025-10-31 03",
                    "2025-09-30 03",
                    "2025-08-31 03",
                    "2025-07-31 03",
                    "2025-06-30 03",
                    "2025-05-31 03",
                    "2025-04-30 03",
                    "2025-03-31 03",
                    "2025-02-28 03",
                    "2025-01-31 03",
                ],
            ),
        ];
        for (name, p, expected) in cases {
            let plan = apply(&snaps, &p);
            assert_eq!(kept_times(&plan), expected, "{name}");
            assert_eq!(plan.keep.len() + plan.remove.len(), snaps.len(), "{name}");
        }
    }

    #[test]
    fn reasons_are_listed_per_rule() {
        let snaps = year_of_snapshots();
        let plan = apply(
            &snaps,
            &RetentionPolicy {
                last: 1,
                daily: 1,
                monthly: 1,
                ..policy()
            },
        );
        assert_eq!(plan.keep.len(), 1);
        assert_eq!(
            plan.keep[0].reasons,
            vec!["last snapshot", "daily snapshot", "monthly snapshot"]
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            Duration::parse("1y6m2d").unwrap(),
            Duration {
                years: 1,
                months: 6,
                days: 2,
                hours: 0
            }
        );
        assert_eq!(Duration::parse("90d").unwrap().days, 90);
        for bad in ["", "5", "1x", "d"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
        let t = utc().with_ymd_and_hms(2025, 3, 31, 0, 0, 0).unwrap();
        assert_eq!(
            Duration::parse("1m").unwrap().before(t),
            utc().with_ymd_and_hms(2025, 2, 28, 0, 0, 0).unwrap()
        );
    }
}
