//! The one epoch every date in an image derives from.
//!
//! isoforge never reads the clock. The caller gives an [`Epoch`] (`--epoch`, else
//! `SOURCE_DATE_EPOCH`, else [`Epoch::NIX_DEFAULT`]); every volume descriptor date, directory
//! record date, Rock Ridge timestamp, FAT date, disk signature and derived GUID comes from it.

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
    /// offset byte (0 = UTC). Years outside 1..=9999 are clamped to that range.
    pub fn iso_dec_datetime(self) -> [u8; 17] {
        let c = self.civil();
        let year = c.year.clamp(1, 9999);
        let s = format!("{:04}{:02}{:02}{:02}{:02}{:02}00", year, c.month, c.day, c.hour, c.minute, c.second);
        let mut out = [0u8; 17];
        out[..16].copy_from_slice(s.as_bytes());
        out
    }

    /// ECMA-119 9.1.5 "recording date and time": years since 1900, month, day, hour, minute,
    /// second, time zone offset (0 = UTC). Years outside 1900..=2155 are clamped.
    pub fn iso_dir_datetime(self) -> [u8; 7] {
        let c = self.civil();
        if c.year < 1900 {
            return [0, 1, 1, 0, 0, 0, 0];
        }
        if c.year > 2155 {
            return [255, 12, 31, 23, 59, 59, 0];
        }
        [(c.year - 1900) as u8, c.month, c.day, c.hour, c.minute, c.second, 0]
    }

    /// The epoch as an unsigned 32-bit timestamp, clamped (squashfs and Rock Ridge long form).
    pub fn as_u32_clamped(self) -> u32 {
        self.0.clamp(0, i64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_default_is_1980() {
        let c = Epoch::NIX_DEFAULT.civil();
        assert_eq!((c.year, c.month, c.day, c.hour), (1980, 1, 1, 0));
        assert_eq!(&Epoch::NIX_DEFAULT.iso_dec_datetime()[..16], b"1980010100000000");
        assert_eq!(Epoch::NIX_DEFAULT.iso_dir_datetime(), [80, 1, 1, 0, 0, 0, 0]);
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
}
