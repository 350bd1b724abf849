//! The one epoch every date in an image derives from.
//!
//! isoforge never reads the clock. The caller gives an [`Epoch`] (`--epoch`, else
//! `SOURCE_DATE_EPOCH`, else [`Epoch::NIX_DEFAULT`]); every volume descriptor date, directory
//! record date, Rock Ridge timestamp, FAT date, disk signature and derived GUID comes from it.
//!
//! Every structure that stores a date has a range ([`DateField`]); an epoch outside the range
//! of a structure the image has is an error ([`EpochError`]), never clamped. The builders check
//! it before they read inputs or create output ([`Epoch::check_all`]).

use std::borrow::Cow;
use std::fmt;
use std::ops::RangeInclusive;

/// Seconds since 1970-01-01T00:00:00Z, the source of every date, GUID and serial in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub i64);

/// A calendar date and time in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Full year, e.g. 1980.
    pub year: i64,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59.
    pub second: u8,
}

impl Epoch {
    /// 1980-01-01T00:00:00Z: the date Nix gives store paths' images when no
    /// `SOURCE_DATE_EPOCH` is set, and the earliest date FAT can store.
    pub const NIX_DEFAULT: Epoch = Epoch(315_532_800);

    /// The epoch from an explicit value, else `SOURCE_DATE_EPOCH` as given by the caller,
    /// else [`Epoch::NIX_DEFAULT`].
    ///
    /// The environment is read by the caller (the CLI), not here: the library has no
    /// ambient inputs.
    pub fn resolve(explicit: Option<i64>, source_date_epoch: Option<&str>) -> Result<Epoch, String> {
        if let Some(v) = explicit {
            return Ok(Epoch(v));
        }
        match source_date_epoch {
            Some(s) => s
                .trim()
                .parse::<i64>()
                .map(Epoch)
                .map_err(|_| format!("SOURCE_DATE_EPOCH is not a whole number of seconds: {s:?}")),
            None => Ok(Epoch::NIX_DEFAULT),
        }
    }

    /// The epoch as a UTC calendar date (proleptic Gregorian).
    pub fn civil(self) -> Civil {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        // Days-from-civil inverse (Howard Hinnant's algorithm, public domain description).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month: month as u8,
            day: day as u8,
            hour: (secs / 3600) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
        }
    }

    /// ECMA-119 8.4.26.1 "dec-datetime": 16 ASCII digits `YYYYMMDDHHMMSScc` and a time zone
    /// offset byte (0 = UTC). Years outside 1..=9999 are an error
    /// ([`DateField::IsoVolumeDescriptor`]).
    pub fn iso_dec_datetime(self) -> Result<[u8; 17], EpochError> {
        self.check(DateField::IsoVolumeDescriptor)?;
        let c = self.civil();
        let s =
            format!("{:04}{:02}{:02}{:02}{:02}{:02}00", c.year, c.month, c.day, c.hour, c.minute, c.second);
        let mut out = [0u8; 17];
        out[..16].copy_from_slice(s.as_bytes());
        Ok(out)
    }

    /// ECMA-119 9.1.5 "recording date and time": years since 1900, month, day, hour, minute,
    /// second, time zone offset (0 = UTC). Years outside 1900..=2155 are an error
    /// ([`DateField::IsoDirectoryRecord`]).
    pub fn iso_dir_datetime(self) -> Result<[u8; 7], EpochError> {
        self.check(DateField::IsoDirectoryRecord)?;
        let c = self.civil();
        let years = u8::try_from(c.year - 1900).map_err(|_| self.error(DateField::IsoDirectoryRecord))?;
        Ok([years, c.month, c.day, c.hour, c.minute, c.second, 0])
    }

    /// The epoch as squashfs's unsigned 32-bit seconds (superblock `mkfs_time`, inode
    /// `mtime`); before 1970 or after 2106-02-07T06:28:15Z is an error ([`DateField::Squashfs`]).
    pub fn squashfs_seconds(self) -> Result<u32, EpochError> {
        u32::try_from(self.0).map_err(|_| self.error(DateField::Squashfs))
    }

    /// Whether `field` can hold this epoch: `Ok`, or an error naming the field and its range.
    pub fn check(self, field: DateField) -> Result<(), EpochError> {
        if field.range().contains(&self.0) {
            Ok(())
        } else {
            Err(self.error(field))
        }
    }

    /// Checks `fields` in order and returns the error of the first that cannot hold this
    /// epoch.
    pub fn check_all(self, fields: &[DateField]) -> Result<(), EpochError> {
        fields.iter().try_for_each(|&f| self.check(f))
    }

    fn error(self, field: DateField) -> EpochError {
        EpochError::new(self, field)
    }
}

impl fmt::Display for Civil {
    /// RFC 3339 in UTC: `1980-01-01T00:00:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// An on-disk structure that stores a date derived from the epoch, and the range it can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DateField {
    /// The squashfs superblock's `mkfs_time` and every inode's `mtime`: unsigned 32-bit
    /// seconds since 1970, 1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z.
    Squashfs,
    /// ECMA-119 9.1.5 directory record dates (also Rock Ridge `TF`, which uses the same
    /// 7-byte form): years since 1900 in one byte, 1900-01-01 to 2155-12-31 (UTC).
    IsoDirectoryRecord,
    /// ECMA-119 8.4.26.1 volume descriptor dates: four decimal digits of year, 0001-01-01 to
    /// 9999-12-31 (UTC). Every ISO image also has directory records, whose range is narrower.
    IsoVolumeDescriptor,
    /// FAT directory entry dates: years since 1980 in 7 bits, 1980-01-01 to 2107-12-31.
    Fat,
}

impl DateField {
    /// The epochs (seconds since 1970) the field can hold.
    pub fn range(self) -> RangeInclusive<i64> {
        match self {
            DateField::Squashfs => 0..=i64::from(u32::MAX),
            // 1900-01-01T00:00:00Z ..= 2155-12-31T23:59:59Z
            DateField::IsoDirectoryRecord => -2_208_988_800..=5_869_583_999,
            // 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z
            DateField::IsoVolumeDescriptor => -62_135_596_800..=253_402_300_799,
            // 1980-01-01T00:00:00Z ..= 2107-12-31T23:59:59Z
            DateField::Fat => 315_532_800..=4_354_819_199,
        }
    }

    /// What stores the date and how, for messages ("the squashfs superblock and inodes store
    /// unsigned 32-bit seconds").
    pub fn description(self) -> &'static str {
        match self {
            DateField::Squashfs => "the squashfs superblock and inodes store unsigned 32-bit seconds",
            DateField::IsoDirectoryRecord => {
                "ISO 9660 directory records (ECMA-119 9.1.5) and Rock Ridge TF entries store the year \
                 as years since 1900 in one byte"
            }
            DateField::IsoVolumeDescriptor => {
                "ISO 9660 volume descriptor dates (ECMA-119 8.4.26.1) store the year in four digits"
            }
            DateField::Fat => "FAT directory entries store the year as years since 1980 in 7 bits",
        }
    }
}

/// An epoch that a structure of the requested image cannot hold. Its message names the value
/// (with where it came from), the structure and the structure's range as dates and seconds:
///
/// ```text
/// --epoch 32503680000 (3000-01-01T00:00:00Z): the squashfs superblock and inodes store
/// unsigned 32-bit seconds, 1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z (0 to 4294967295)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{origin} {} ({}): {}, {} to {} ({} to {})",
    epoch.0,
    epoch.civil(),
    field.description(),
    Epoch(*field.range().start()).civil(),
    Epoch(*field.range().end()).civil(),
    field.range().start(),
    field.range().end()
)]
pub struct EpochError {
    /// The epoch.
    pub epoch: Epoch,
    /// The structure that cannot hold it.
    pub field: DateField,
    /// Where the value came from, as the message names it: `epoch` by default; the CLI sets
    /// `--epoch`, `SOURCE_DATE_EPOCH` or the spec file's key ([`EpochError::with_origin`]).
    pub origin: Cow<'static, str>,
}

impl EpochError {
    /// `epoch` does not fit `field`; the message calls the value `epoch`.
    pub fn new(epoch: Epoch, field: DateField) -> EpochError {
        EpochError { epoch, field, origin: Cow::Borrowed("epoch") }
    }

    /// The same error, naming the value's origin (`--epoch`, `SOURCE_DATE_EPOCH`, ...).
    pub fn with_origin(mut self, origin: impl Into<Cow<'static, str>>) -> EpochError {
        self.origin = origin.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_default_is_1980() {
        let c = Epoch::NIX_DEFAULT.civil();
        assert_eq!((c.year, c.month, c.day, c.hour), (1980, 1, 1, 0));
        assert_eq!(&Epoch::NIX_DEFAULT.iso_dec_datetime().unwrap()[..16], b"1980010100000000");
        assert_eq!(Epoch::NIX_DEFAULT.iso_dir_datetime().unwrap(), [80, 1, 1, 0, 0, 0, 0]);
        assert_eq!(Epoch::NIX_DEFAULT.squashfs_seconds().unwrap(), 315_532_800);
    }

    #[test]
    fn known_dates() {
        // 2024-02-29T12:34:56Z
        let c = Epoch(1_709_210_096).civil();
        assert_eq!((c.year, c.month, c.day, c.hour, c.minute, c.second), (2024, 2, 29, 12, 34, 56));
        let c = Epoch(-1).civil();
        assert_eq!((c.year, c.month, c.day, c.hour, c.minute, c.second), (1969, 12, 31, 23, 59, 59));
    }

    #[test]
    fn resolve_order() {
        assert_eq!(Epoch::resolve(Some(5), Some("7")).unwrap(), Epoch(5));
        assert_eq!(Epoch::resolve(None, Some("7")).unwrap(), Epoch(7));
        assert_eq!(Epoch::resolve(None, None).unwrap(), Epoch::NIX_DEFAULT);
        assert!(Epoch::resolve(None, Some("x")).is_err());
    }

    #[test]
    fn ranges_are_the_dates_they_claim() {
        let date = |t: i64| Epoch(t).civil().to_string();
        let cases = [
            (DateField::Squashfs, "1970-01-01T00:00:00Z", "2106-02-07T06:28:15Z"),
            (DateField::IsoDirectoryRecord, "1900-01-01T00:00:00Z", "2155-12-31T23:59:59Z"),
            (DateField::IsoVolumeDescriptor, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
            (DateField::Fat, "1980-01-01T00:00:00Z", "2107-12-31T23:59:59Z"),
        ];
        for (field, first, last) in cases {
            let r = field.range();
            assert_eq!(
                (date(*r.start()), date(*r.end())),
                (first.to_string(), last.to_string()),
                "{field:?}"
            );
            assert!(Epoch(*r.start()).check(field).is_ok() && Epoch(*r.end()).check(field).is_ok());
            assert!(Epoch(*r.start() - 1).check(field).is_err(), "{field:?}");
            assert!(Epoch(*r.end() + 1).check(field).is_err(), "{field:?}");
        }
    }

    #[test]
    fn encoders_at_the_edges() {
        assert_eq!(Epoch(-2_208_988_800).iso_dir_datetime().unwrap(), [0, 1, 1, 0, 0, 0, 0]);
        assert_eq!(Epoch(5_869_583_999).iso_dir_datetime().unwrap(), [255, 12, 31, 23, 59, 59, 0]);
        assert!(Epoch(5_869_584_000).iso_dir_datetime().is_err());
        assert_eq!(&Epoch(-62_135_596_800).iso_dec_datetime().unwrap()[..16], b"0001010100000000");
        assert_eq!(&Epoch(253_402_300_799).iso_dec_datetime().unwrap()[..16], b"9999123123595900");
        assert!(Epoch(253_402_300_800).iso_dec_datetime().is_err());
        assert!(Epoch(-62_135_596_801).iso_dec_datetime().is_err());
        assert_eq!(Epoch(0).squashfs_seconds().unwrap(), 0);
        assert_eq!(Epoch(i64::from(u32::MAX)).squashfs_seconds().unwrap(), u32::MAX);
        assert!(Epoch(-1).squashfs_seconds().is_err());
        assert!(Epoch(i64::MAX).squashfs_seconds().is_err());
        // Extreme values still format (no overflow in the calendar arithmetic).
        let _ = Epoch(i64::MAX).civil().to_string();
        let _ = Epoch(i64::MIN).civil().to_string();
    }

    #[test]
    fn error_messages() {
        let e = Epoch(32_503_680_000).squashfs_seconds().unwrap_err().with_origin("--epoch");
        assert_eq!(
            e.to_string(),
            "--epoch 32503680000 (3000-01-01T00:00:00Z): the squashfs superblock and inodes store \
             unsigned 32-bit seconds, 1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z (0 to 4294967295)"
        );
        let e = Epoch(-5).check(DateField::Fat).unwrap_err();
        assert_eq!(
            e.to_string(),
            "epoch -5 (1969-12-31T23:59:55Z): FAT directory entries store the year as years since 1980 \
             in 7 bits, 1980-01-01T00:00:00Z to 2107-12-31T23:59:59Z (315532800 to 4354819199)"
        );
        let e = Epoch(0).check_all(&[DateField::Squashfs, DateField::Fat, DateField::Squashfs]).unwrap_err();
        assert_eq!(e.field, DateField::Fat);
    }
}
