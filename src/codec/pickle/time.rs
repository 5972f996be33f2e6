//! `datetime.datetime` and `datetime.date` in their pickled state (CPython's `__reduce__`
//! bytes), and the session values msgspec gives the same Python objects in MessagePack.

use rmpv::Value;

use super::PickleError;
use crate::civil::{civil_from_days, days_from_civil, days_in_month};
use crate::codec::json::{MAX_SECS, MIN_SECS, timestamp_parts};

const MICROS: i64 = 1_000_000;

/// The MessagePack timestamp extension type.
pub(super) const TIMESTAMP_EXT: i8 = -1;

/// A date and wall-clock time as `datetime` holds it.
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micro: i64,
}

impl Civil {
    /// The fields of a 10-byte `datetime` state: year (big-endian u16), month (its top bit is
    /// `fold`, ignored), day, hour, minute, second, microsecond (big-endian u24).
    fn of_datetime(state: &[u8]) -> Option<Self> {
        let [yh, yl, month, day, hour, minute, second, u2, u1, u0] =
            <[u8; 10]>::try_from(state).ok()?;
        let civil = Civil {
            year: i64::from(u16::from_be_bytes([yh, yl])),
            month: i64::from(month & 0x7f),
            day: i64::from(day),
            hour: i64::from(hour),
            minute: i64::from(minute),
            second: i64::from(second),
            micro: i64::from(u32::from_be_bytes([0, u2, u1, u0])),
        };
        civil.is_valid().then_some(civil)
    }

    /// The fields of a 4-byte `date` state: year (big-endian u16), month, day.
    fn of_date(state: &[u8]) -> Option<Self> {
        let [yh, yl, month, day] = <[u8; 4]>::try_from(state).ok()?;
        let civil = Civil {
            year: i64::from(u16::from_be_bytes([yh, yl])),
            month: i64::from(month),
            day: i64::from(day),
            hour: 0,
            minute: 0,
            second: 0,
            micro: 0,
        };
        civil.is_valid().then_some(civil)
    }

    /// The UTC date and time `secs` seconds and `micro` microseconds after the epoch.
    fn of_utc(secs: i64, micro: i64) -> Self {
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let time = secs.rem_euclid(86_400);
        Civil {
            year,
            month,
            day,
            hour: time / 3600,
            minute: time % 3600 / 60,
            second: time % 60,
            micro,
        }
    }

    /// Whether `datetime` would accept these fields.
    fn is_valid(&self) -> bool {
        (1..=9999).contains(&self.year)
            && (1..=12).contains(&self.month)
            && (1..=days_in_month(self.year, self.month)).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
            && self.micro < MICROS
    }

    /// Microseconds since the epoch of this wall-clock time read as UTC.
    fn micros(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400 + self.hour * 3600 + self.minute * 60 + self.second;
        secs * MICROS + self.micro
    }

    /// `date.isoformat()`: `2030-01-02`.
    fn date_text(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// msgspec's text of a naive datetime: `2030-01-02T03:04:05`, with `.ffffff` when the
    /// microseconds are not zero.
    fn naive_text(&self) -> String {
        let fraction = match self.micro {
            0 => String::new(),
            us => format!(".{us:06}"),
        };
        format!(
            "{}T{:02}:{:02}:{:02}{fraction}",
            self.date_text(),
            self.hour,
            self.minute,
            self.second
        )
    }

    /// The 10-byte `datetime` state of these fields (valid by construction).
    fn datetime_state(&self) -> [u8; 10] {
        let [_, _, yh, yl] = (self.year as u32).to_be_bytes();
        let [_, u2, u1, u0] = (self.micro as u32).to_be_bytes();
        let byte = |n: i64| n as u8; // each field is below 256
        [
            yh,
            yl,
            byte(self.month),
            byte(self.day),
            byte(self.hour),
            byte(self.minute),
            byte(self.second),
            u2,
            u1,
            u0,
        ]
    }
}

/// The session value of a pickled `datetime`: `offset` is its UTC offset in microseconds, or
/// `None` for a naive one.
pub(super) fn datetime(state: &[u8], offset: Option<i64>) -> Result<Value, PickleError> {
    let civil = Civil::of_datetime(state).ok_or(PickleError::InvalidDateTime)?;
    let Some(offset) = offset else {
        return Ok(Value::from(civil.naive_text()));
    };
    // |offset| < 24 h and the fields are within the years 1 to 9999: no overflow.
    let utc = civil.micros() - offset;
    let (secs, micro) = (utc.div_euclid(MICROS), utc.rem_euclid(MICROS));
    if !(MIN_SECS..=MAX_SECS).contains(&secs) {
        return Err(PickleError::InvalidDateTime);
    }
    let nanos = micro as u32 * 1000; // below 10^9
    Ok(Value::Ext(TIMESTAMP_EXT, timestamp(secs, nanos)))
}

/// The session value of a pickled `date`: its ISO text, as msgspec writes a date.
pub(super) fn date(state: &[u8]) -> Result<Value, PickleError> {
    let civil = Civil::of_date(state).ok_or(PickleError::InvalidDateTime)?;
    Ok(Value::from(civil.date_text()))
}

/// A timestamp extension payload in the layout msgspec writes (the MessagePack spec's
/// smallest): 32 bit for whole seconds in `0..2^32`, 64 bit for `0..2^34`, else 96 bit.
fn timestamp(secs: i64, nanos: u32) -> Vec<u8> {
    match u64::try_from(secs) {
        Ok(s) if nanos == 0 && s <= u64::from(u32::MAX) => (s as u32).to_be_bytes().to_vec(),
        Ok(s) if s >> 34 == 0 => ((u64::from(nanos) << 34) | s).to_be_bytes().to_vec(),
        _ => {
            let mut data = nanos.to_be_bytes().to_vec();
            data.extend_from_slice(&secs.to_be_bytes());
            data
        }
    }
}

/// The `datetime` state of the UTC time in a timestamp extension payload (any layout).
pub(super) fn utc_state(data: &[u8]) -> Result<[u8; 10], PickleError> {
    let (secs, nanos) = timestamp_parts(data).ok_or(PickleError::InvalidTimestamp)?;
    if !nanos.is_multiple_of(1000) || !(MIN_SECS..=MAX_SECS).contains(&secs) {
        return Err(PickleError::InvalidTimestamp);
    }
    Ok(Civil::of_utc(secs, i64::from(nanos / 1000)).datetime_state())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &[u8; 10] = b"\x07\xee\x01\x02\x03\x04\x05\x01\xe2\x40"; // 2030-01-02 03:04:05.123456

    fn ext(value: Value) -> Vec<u8> {
        match value {
            Value::Ext(TIMESTAMP_EXT, data) => data,
            other => panic!("not a timestamp: {other:?}"),
        }
    }

    #[test]
    fn naive_datetimes_and_dates_are_msgspec_text() {
        assert_eq!(
            datetime(STATE, None).unwrap(),
            Value::from("2030-01-02T03:04:05.123456")
        );
        let whole = b"\x00\x05\x81\x02\x03\x04\x05\x00\x00\x00"; // year 5, fold set
        assert_eq!(
            datetime(whole, None).unwrap(),
            Value::from("0005-01-02T03:04:05")
        );
        assert_eq!(
            date(b"\x07\xee\x01\x02").unwrap(),
            Value::from("2030-01-02")
        );
    }

    #[test]
    fn aware_datetimes_are_utc_timestamps_in_msgspec_layout() {
        // The vectors' `dt_us`: d7 ff 1d6f2800 70dd5525.
        assert_eq!(
            ext(datetime(STATE, Some(0)).unwrap()),
            b"\x1d\x6f\x28\x00\x70\xdd\x55\x25"
        );
        let whole = b"\x07\xee\x01\x02\x03\x04\x05\x00\x00\x00";
        assert_eq!(ext(datetime(whole, Some(0)).unwrap()), b"\x70\xdd\x55\x25");
        // +02:00 is two hours earlier in UTC (msgspec: d6ff 70dd3905).
        let two_hours = 2 * 3600 * MICROS;
        assert_eq!(
            ext(datetime(whole, Some(two_hours)).unwrap()),
            b"\x70\xdd\x39\x05"
        );
        // Before the epoch: 96 bit (msgspec: c70cff 3b9ac618 ffffffffffffffff).
        let before = b"\x07\xb1\x0c\x1f\x17\x3b\x3b\x0f\x42\x3f"; // 1969-12-31 23:59:59.999999
        let data = ext(datetime(before, Some(0)).unwrap());
        assert_eq!(data, b"\x3b\x9a\xc6\x18\xff\xff\xff\xff\xff\xff\xff\xff");
        assert_eq!(utc_state(&data).unwrap(), *before);
    }

    #[test]
    fn out_of_range_and_impossible_fields_are_errors() {
        let first = b"\x00\x01\x01\x01\x00\x00\x00\x00\x00\x00"; // 0001-01-01 00:00
        assert!(datetime(first, Some(0)).is_ok());
        assert_eq!(
            datetime(first, Some(MICROS)),
            Err(PickleError::InvalidDateTime)
        );
        for bad in [
            &b"\x07\xee\x0d\x02\x03\x04\x05\x00\x00\x00"[..], // month 13
            b"\x07\xee\x02\x1e\x03\x04\x05\x00\x00\x00",      // February 30
            b"\x07\xee\x01\x02\x18\x04\x05\x00\x00\x00",      // hour 24
            b"\x07\xee\x01\x02\x03\x04\x05\x0f\x42\x40",      // 10^6 microseconds
            b"\x00\x00\x01\x02\x03\x04\x05\x00\x00\x00",      // year 0
            b"\x07\xee\x01\x02",                              // a date state
        ] {
            assert_eq!(
                datetime(bad, None),
                Err(PickleError::InvalidDateTime),
                "{bad:?}"
            );
        }
        assert!(date(b"\x07\xee\x81\x02").is_err());
    }

    #[test]
    fn timestamps_convert_back_to_the_utc_state() {
        for data in [
            &b"\x70\xdd\x55\x25"[..],
            b"\x1d\x6f\x28\x00\x70\xdd\x55\x25",
        ] {
            let state = utc_state(data).unwrap();
            assert_eq!(ext(datetime(&state, Some(0)).unwrap()), data);
        }
        assert_eq!(utc_state(b"\x70\xdd\x55\x25").unwrap()[..7], STATE[..7]);
        // 5 ns is finer than a datetime; malformed; beyond 9999.
        let mut fine = 5_u32.to_be_bytes().to_vec();
        fine.extend_from_slice(&0_i64.to_be_bytes());
        assert_eq!(utc_state(&fine), Err(PickleError::InvalidTimestamp));
        assert_eq!(utc_state(b"\x01\x02"), Err(PickleError::InvalidTimestamp));
        let mut late = 0_u32.to_be_bytes().to_vec();
        late.extend_from_slice(&(MAX_SECS + 1).to_be_bytes());
        assert_eq!(utc_state(&late), Err(PickleError::InvalidTimestamp));
    }
}
