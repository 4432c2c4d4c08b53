//! Binary PostgreSQL values → sample values and label strings.
//!
//! tokio-postgres asks for binary results, so every type we accept is decoded
//! here by hand: `numeric` and `interval` have no `f64` conversion in the
//! driver, and labels must be printable whatever the column type.
//! Pure functions, no I/O; every branch has a unit test.

use std::error::Error;
use std::fmt::Write;

use tokio_postgres::types::{FromSql, Kind, Type};

type BoxError = Box<dyn Error + Sync + Send>;

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_UNIX_SECONDS: f64 = 946_684_800.0;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_UNIX_DAYS: i64 = 10_957;

/// A sample value decoded from a value column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample(pub f64);

impl<'a> FromSql<'a> for Sample {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        sample(ty, raw).map(Sample)
    }

    fn accepts(_: &Type) -> bool {
        // Unsupported types are refused in `from_sql` with a message that names the type.
        true
    }
}

fn sample(ty: &Type, raw: &[u8]) -> Result<f64, BoxError> {
    if let Kind::Domain(inner) = ty.kind() {
        return sample(inner, raw);
    }
    Ok(match *ty {
        Type::BOOL => f64::from(u8::from(bool::from_sql(ty, raw)?)),
        Type::INT2 => f64::from(i16::from_sql(ty, raw)?),
        Type::INT4 => f64::from(i32::from_sql(ty, raw)?),
        Type::INT8 => i64::from_sql(ty, raw)? as f64,
        Type::OID => f64::from(u32::from_sql(ty, raw)?),
        Type::FLOAT4 => f64::from(f32::from_sql(ty, raw)?),
        Type::FLOAT8 => f64::from_sql(ty, raw)?,
        Type::NUMERIC => numeric_to_f64(raw)?,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => match i64::from_sql(&Type::INT8, raw)? {
            i64::MAX => f64::INFINITY,
            i64::MIN => f64::NEG_INFINITY,
            micros => micros as f64 / 1e6 + PG_EPOCH_UNIX_SECONDS,
        },
        Type::DATE => match i32::from_sql(&Type::INT4, raw)? {
            i32::MAX => f64::INFINITY,
            i32::MIN => f64::NEG_INFINITY,
            days => (i64::from(days) + PG_EPOCH_UNIX_DAYS) as f64 * 86_400.0,
        },
        Type::INTERVAL => interval_seconds(raw)?,
        _ => return Err(format!("a {ty} column cannot hold a sample value; cast it to float8 or numeric").into()),
    })
}

/// Decodes binary `numeric` (ndigits, weight, sign, dscale, base-10000 digits) to `f64`.
pub fn numeric_to_f64(raw: &[u8]) -> Result<f64, BoxError> {
    let n = Numeric::parse(raw)?;
    Ok(match n.sign {
        NumericSign::NaN => f64::NAN,
        NumericSign::PosInf => f64::INFINITY,
        NumericSign::NegInf => f64::NEG_INFINITY,
        NumericSign::Pos | NumericSign::Neg => {
            // Accumulate from the most significant digit; powi keeps it exact for
            // the integer part up to 2^53, which is all a metric needs.
            let mut v = 0f64;
            for (i, d) in n.digits.iter().enumerate() {
                // Zero digits are skipped: past f64's range 10000^w is +Inf, and 0 * Inf would be NaN.
                if *d != 0 {
                    v += f64::from(*d) * 10000f64.powi(n.weight - i as i32);
                }
            }
            if n.sign == NumericSign::Neg { -v } else { v }
        }
    })
}

/// Seconds in an interval, counting a month as 30 days and a year as 365.25 days, as PostgreSQL's `EXTRACT(EPOCH ...)` does.
pub fn interval_seconds(raw: &[u8]) -> Result<f64, BoxError> {
    if raw.len() != 16 {
        return Err("invalid interval: expected 16 bytes".into());
    }
    let micros = i64::from_be_bytes(raw[0..8].try_into()?);
    let days = i32::from_be_bytes(raw[8..12].try_into()?);
    let months = i32::from_be_bytes(raw[12..16].try_into()?);
    let years = f64::from(months / 12);
    let rest_months = f64::from(months % 12);
    Ok(years * 365.25 * 86_400.0 + rest_months * 30.0 * 86_400.0 + f64::from(days) * 86_400.0 + micros as f64 / 1e6)
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum NumericSign {
    Pos,
    Neg,
    NaN,
    PosInf,
    NegInf,
}

struct Numeric {
    weight: i32,
    sign: NumericSign,
    dscale: u16,
    digits: Vec<u16>,
}

impl Numeric {
    fn parse(raw: &[u8]) -> Result<Numeric, BoxError> {
        let word = |i: usize| -> Result<u16, BoxError> {
            let bytes = raw.get(i..i + 2).ok_or("invalid numeric: truncated")?;
            Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
        };
        let ndigits = word(0)? as usize;
        let weight = i32::from(word(2)? as i16);
        let sign = match word(4)? {
            0x0000 => NumericSign::Pos,
            0x4000 => NumericSign::Neg,
            0xC000 => NumericSign::NaN,
            0xD000 => NumericSign::PosInf,
            0xF000 => NumericSign::NegInf,
            other => return Err(format!("invalid numeric: sign word {other:#x}").into()),
        };
        let dscale = word(6)?;
        if raw.len() != 8 + 2 * ndigits {
            return Err("invalid numeric: length does not match digit count".into());
        }
        let digits = (0..ndigits).map(|i| word(8 + 2 * i)).collect::<Result<Vec<_>, _>>()?;
        if digits.iter().any(|d| *d > 9999) {
            return Err("invalid numeric: digit out of range".into());
        }
        Ok(Numeric { weight, sign, dscale, digits })
    }

    /// Exact decimal text with `dscale` fractional digits, as `numeric_out` prints it.
    fn to_text(&self) -> String {
        match self.sign {
            NumericSign::NaN => return "NaN".into(),
            NumericSign::PosInf => return "Infinity".into(),
            NumericSign::NegInf => return "-Infinity".into(),
            _ => {}
        }
        let mut out = String::new();
        if self.sign == NumericSign::Neg {
            out.push('-');
        }
        let digit = |i: i32| -> u16 { if i >= 0 { self.digits.get(i as usize).copied().unwrap_or(0) } else { 0 } };
        // Integer part: groups for weights weight..=0.
        if self.weight < 0 {
            out.push('0');
        } else {
            for i in 0..=self.weight {
                let d = digit(i);
                if i == 0 {
                    let _ = write!(out, "{d}");
                } else {
                    let _ = write!(out, "{d:04}");
                }
            }
        }
        if self.dscale > 0 {
            out.push('.');
            let mut frac = String::new();
            let mut i = self.weight + 1;
            while frac.len() < usize::from(self.dscale) {
                let _ = write!(frac, "{:04}", digit(i));
                i += 1;
            }
            frac.truncate(usize::from(self.dscale));
            out.push_str(&frac);
        }
        out
    }
}

/// A label value decoded from a label column; NULL is handled by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(pub String);

impl<'a> FromSql<'a> for Label {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        label(ty, raw).map(Label)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn label(ty: &Type, raw: &[u8]) -> Result<String, BoxError> {
    match ty.kind() {
        Kind::Domain(inner) => return label(inner, raw),
        Kind::Enum(_) => return Ok(std::str::from_utf8(raw)?.to_owned()),
        _ => {}
    }
    if ty.name() == "citext" {
        return Ok(std::str::from_utf8(raw)?.to_owned());
    }
    Ok(match *ty {
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON | Type::XML => {
            std::str::from_utf8(raw)?.to_owned()
        }
        Type::JSONB => match raw.split_first() {
            Some((1, rest)) => std::str::from_utf8(rest)?.to_owned(),
            _ => return Err("invalid jsonb: unknown version".into()),
        },
        Type::CHAR => char::from(i8::from_sql(ty, raw)? as u8).to_string(),
        Type::BOOL => bool::from_sql(ty, raw)?.to_string(),
        Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
        Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
        Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
        Type::OID => u32::from_sql(ty, raw)?.to_string(),
        Type::FLOAT4 => f32::from_sql(ty, raw)?.to_string(),
        Type::FLOAT8 => f64::from_sql(ty, raw)?.to_string(),
        Type::NUMERIC => Numeric::parse(raw)?.to_text(),
        Type::UUID => uuid_text(raw)?,
        Type::INET | Type::CIDR => inet_text(raw)?,
        Type::DATE => match i32::from_sql(&Type::INT4, raw)? {
            i32::MAX => "infinity".into(),
            i32::MIN => "-infinity".into(),
            days => {
                let (y, m, d) = civil_from_days(i64::from(days) + PG_EPOCH_UNIX_DAYS);
                format!("{y:04}-{m:02}-{d:02}")
            }
        },
        Type::TIMESTAMP | Type::TIMESTAMPTZ => match i64::from_sql(&Type::INT8, raw)? {
            i64::MAX => "infinity".into(),
            i64::MIN => "-infinity".into(),
            micros => timestamp_text(micros, *ty == Type::TIMESTAMPTZ),
        },
        _ => return Err(format!("a {ty} column cannot be a label; cast it with ::text").into()),
    })
}

fn uuid_text(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() != 16 {
        return Err("invalid uuid".into());
    }
    let mut out = String::with_capacity(36);
    for (i, b) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

fn inet_text(raw: &[u8]) -> Result<String, BoxError> {
    let [family, bits, is_cidr, len, addr @ ..] = raw else { return Err("invalid inet".into()) };
    let ip: std::net::IpAddr = match (*family, *len, addr.len()) {
        (2, 4, 4) => std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).into(),
        (3, 16, 16) => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(addr)?).into(),
        _ => return Err("invalid inet".into()),
    };
    let full = if ip.is_ipv4() { 32 } else { 128 };
    Ok(if *is_cidr != 0 || *bits != full { format!("{ip}/{bits}") } else { ip.to_string() })
}

fn timestamp_text(micros: i64, utc: bool) -> String {
    let total_secs = micros.div_euclid(1_000_000) + PG_EPOCH_UNIX_DAYS * 86_400;
    let frac = micros.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(total_secs.div_euclid(86_400));
    let s = total_secs.rem_euclid(86_400);
    let mut out = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60);
    if frac != 0 {
        let _ = write!(out, ".{frac:06}");
    }
    if utc {
        out.push('Z');
    }
    out
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests;
