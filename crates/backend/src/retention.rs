//! Object Lock over time: the clock locks are measured against, a lock period and when
//! a file's lock is due to be extended, and [`Retaining`], the wrapper through which a
//! repository created with `init --lock-days` stores every file locked.

use std::sync::Arc;

use crate::{
    Backend, BackendError, ErrorKind, LockMode, ObjectInfo, RangeSource, Retention, Transactions,
    Version, WriteOptions,
};

/// Now, in milliseconds since the epoch. Test builds move this clock with
/// `CAIRN_TEST_CLOCK_OFFSET_SECS`, in step with the emulator's `/emulator/clock`, so a
/// test can let locks age; release builds ignore it.
pub fn now_millis() -> i64 {
    let offset = if cfg!(debug_assertions) {
        std::env::var("CAIRN_TEST_CLOCK_OFFSET_SECS")
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    } else {
        0
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    now + offset.saturating_mul(1000)
}

/// A moment as users read it in messages: `2026-12-31 23:59 UTC`.
pub fn show_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// How long every file is locked, and how: `ship --lock-days`, or a repository's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockPeriod {
    pub mode: LockMode,
    pub days: u32,
}

impl LockPeriod {
    pub const DAY_MS: i64 = 24 * 3600 * 1000;

    /// The retention a file stored at `now` gets.
    pub fn retention(self, now: i64) -> Retention {
        Retention {
            mode: self.mode,
            until_millis: now + i64::from(self.days) * Self::DAY_MS,
        }
    }

    /// A file still in use is locked again when less than a third of the period (at
    /// least a day) is left: each file is extended about every two thirds of it, and a
    /// daily run never lets a lock run out.
    pub fn due(self, now: i64, until: Option<i64>) -> bool {
        let margin = (i64::from(self.days) * Self::DAY_MS / 3).max(Self::DAY_MS);
        until.is_none_or(|u| u < now + margin)
    }
}

/// How a repository stores through Object Lock. With a period, every new file is
/// stored under its retention, except names under `exempt` (a repository's lock files,
/// which must be removable the moment a command ends). With or without one, a removal
/// the store refuses because the file is locked (a repository of its own lock period,
/// or a copy `ship --lock-days` locked) becomes a hide: listings stop showing it, the
/// locked version stays until its lock ends, and a later prune deletes it (see
/// [`Backend::purge_hidden`]).
pub struct Retaining {
    inner: Arc<dyn Backend>,
    period: Option<LockPeriod>,
    exempt: &'static [&'static str],
    /// The store's answer to [`Backend::lock_refused`], asked once (on B2 it is a
    /// bucket lookup).
    refused: std::sync::OnceLock<Option<String>>,
}

impl Retaining {
    pub fn new(
        inner: Arc<dyn Backend>,
        period: Option<LockPeriod>,
        exempt: &'static [&'static str],
    ) -> Retaining {
        Retaining {
            inner,
            period,
            exempt,
            refused: std::sync::OnceLock::new(),
        }
    }

    pub fn period(&self) -> Option<LockPeriod> {
        self.period
    }

    fn is_exempt(&self, name: &str) -> bool {
        self.exempt.iter().any(|p| name.starts_with(p))
    }

    fn locked(&self, name: &str, opts: &WriteOptions) -> WriteOptions {
        let mut o = opts.clone();
        if let Some(p) = self.period.filter(|_| !self.is_exempt(name)) {
            o.retention = Some(p.retention(now_millis()));
        }
        o
    }

    /// The store must be able to lock, or nothing is written: an unlocked file in a
    /// repository that promises every file is locked would be a silent gap. Exempt
    /// names (locks) are written anywhere, so a copy on a plain disk can still be read.
    fn can_lock(&self, name: &str) -> Result<(), BackendError> {
        if self.period.is_none() || self.is_exempt(name) {
            return Ok(());
        }
        match self.refused.get_or_init(|| self.inner.lock_refused()) {
            Some(why) => Err(BackendError::new(
                ErrorKind::PermissionDenied,
                name,
                format!("this repository locks every file it stores (init --lock-days), but {why}"),
            )),
            None => Ok(()),
        }
    }
}

impl Backend for Retaining {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<(), BackendError> {
        self.inner.create()
    }

    fn exists(&self) -> Result<bool, BackendError> {
        self.inner.exists()
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list(prefix)
    }

    fn stat(&self, name: &str) -> Result<ObjectInfo, BackendError> {
        self.inner.stat(name)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        self.inner.read(name)
    }

    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> Result<(), BackendError> {
        self.inner.read_into(name, buf)
    }

    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        self.inner.read_range(name, offset, length)
    }

    fn write(&self, name: &str, data: &[u8], opts: &WriteOptions) -> Result<(), BackendError> {
        self.can_lock(name)?;
        self.inner.write(name, data, &self.locked(name, opts))
    }

    fn write_bytes(
        &self,
        name: &str,
        data: bytes::Bytes,
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        self.can_lock(name)?;
        self.inner.write_bytes(name, data, &self.locked(name, opts))
    }

    fn write_parts(
        &self,
        name: &str,
        parts: &[&[u8]],
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        self.can_lock(name)?;
        self.inner
            .write_parts(name, parts, &self.locked(name, opts))
    }

    fn write_stream(
        &self,
        name: &str,
        size: u64,
        source: &RangeSource<'_>,
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        self.can_lock(name)?;
        self.inner
            .write_stream(name, size, source, &self.locked(name, opts))
    }

    /// `write_new` carries no options, so the lock follows at once.
    fn write_new(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.can_lock(name)?;
        self.inner.write_new(name, data)?;
        if let Some(r) = self.locked(name, &WriteOptions::default()).retention {
            self.inner.set_retention(name, &r)?;
        }
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<(), BackendError> {
        match self.inner.remove(name) {
            Err(e) if e.kind == ErrorKind::Locked => match self.inner.hide(name)? {
                true => Ok(()),
                false => Err(e),
            },
            r => r,
        }
    }

    crate::forward_store_properties!();

    fn delete_refused(&self) -> Option<String> {
        self.inner.delete_refused()
    }

    fn lock_refused(&self) -> Option<String> {
        self.inner.lock_refused()
    }

    fn purge_hidden(
        &self,
        prefix: &str,
        chosen: &dyn Fn(&str) -> bool,
    ) -> Result<u64, BackendError> {
        self.inner.purge_hidden(prefix, chosen)
    }

    fn set_retention(&self, name: &str, retention: &Retention) -> Result<bool, BackendError> {
        self.inner.set_retention(name, retention)
    }

    fn hide(&self, name: &str) -> Result<bool, BackendError> {
        self.inner.hide(name)
    }

    fn versions(&self, prefix: &str) -> Result<Option<Vec<Version>>, BackendError> {
        self.inner.versions(prefix)
    }

    fn read_version(&self, v: &Version) -> Result<Vec<u8>, BackendError> {
        self.inner.read_version(v)
    }

    /// The version brought back is a new file, so it is locked like any other.
    fn restore_version(&self, v: &Version) -> Result<(), BackendError> {
        self.can_lock(&v.name)?;
        self.inner.restore_version(v)?;
        if let Some(r) = self.locked(&v.name, &WriteOptions::default()).retention {
            self.inner.set_retention(&v.name, &r)?;
        }
        Ok(())
    }

    fn transactions(&self) -> Option<Transactions> {
        self.inner.transactions()
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        self.inner.as_any()
    }

    fn list_partial(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list_partial(prefix)
    }

    fn remove_partial(&self, name: &str) -> Result<(), BackendError> {
        self.inner.remove_partial(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_read_as_dates() {
        assert_eq!(show_millis(0), "1970-01-01 00:00 UTC");
        assert_eq!(show_millis(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(show_millis(1_798_761_599_000), "2026-12-31 23:59 UTC");
    }

    #[test]
    fn a_lock_is_extended_only_near_its_end() {
        let lock = LockPeriod {
            mode: LockMode::Governance,
            days: 30,
        };
        let day = LockPeriod::DAY_MS;
        assert!(lock.due(0, None));
        assert!(lock.due(0, Some(9 * day)));
        assert!(!lock.due(0, Some(11 * day)));
        let short = LockPeriod { days: 1, ..lock };
        assert!(short.due(0, Some(day - 1)));
        assert_eq!(lock.retention(5).until_millis, 5 + 30 * day);
    }

    /// A store that cannot lock gets nothing written: a repository that promises every
    /// file is locked must not gain an unlocked one.
    #[test]
    fn a_store_that_cannot_lock_gets_nothing() {
        let d = tempfile::tempdir().unwrap();
        let local: Arc<dyn Backend> = Arc::new(crate::LocalBackend::new(d.path().join("r")));
        local.create().unwrap();
        let period = LockPeriod {
            mode: LockMode::Governance,
            days: 7,
        };
        let r = Retaining::new(Arc::clone(&local), Some(period), &["locks/"]);
        let e = r
            .write("data/x", b"x", &WriteOptions::default())
            .unwrap_err();
        assert!(e.message.contains("init --lock-days"), "{e}");
        assert!(local.list("").unwrap().is_empty());
        assert!(r.write_new("config", b"c").is_err());
        assert!(local.list("").unwrap().is_empty());
        r.write("locks/l", b"l", &WriteOptions::default()).unwrap();
    }
}
