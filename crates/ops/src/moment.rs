//! Moments as users write them on the command line (`repair versions --before`,
//! `find --oldest/--newest`).

/// A moment: RFC 3339 (`2026-11-30T08:00:00Z`), a local date and time
/// (`2026-11-30 08:00`), a local date (its midnight), or a duration before now (`3d`).
/// Returns ms since the epoch.
pub fn parse_moment(s: &str, now_millis: i64) -> Result<i64, String> {
    use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone};
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let local = |n: NaiveDateTime| {
        Local
            .from_local_datetime(&n)
            .earliest()
            .map(|t| t.timestamp_millis())
    };
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Some(t) = NaiveDateTime::parse_from_str(s, f).ok().and_then(local) {
            return Ok(t);
        }
    }
    if let Some(t) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(local)
    {
        return Ok(t);
    }
    let d = crate::forget::Duration::parse(s).map_err(|_| {
        format!("invalid moment {s:?}: expected 2026-11-30, \"2026-11-30 08:00\", an RFC 3339 time, or a duration before now such as 3d")
    })?;
    let now = chrono::DateTime::from_timestamp_millis(now_millis)
        .ok_or_else(|| format!("invalid moment {s:?}"))?
        .fixed_offset();
    Ok(d.before(now).timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::parse_moment;

    #[test]
    fn moments_in_every_spelling() {
        let now = 1_800_000_000_000;
        assert_eq!(
            parse_moment("2026-11-30T08:00:00Z", now),
            Ok(1_796_025_600_000)
        );
        assert_eq!(parse_moment("3d", now), Ok(now - 3 * 86_400_000));
        assert!(parse_moment("2026-11-30", now).is_ok());
        assert!(parse_moment("2026-11-30 08:00", now).is_ok());
        assert!(parse_moment("yesterday", now)
            .unwrap_err()
            .contains("invalid moment"));
    }
}
