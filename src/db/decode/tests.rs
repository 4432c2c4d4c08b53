use super::*;

/// Binary numeric from its parts.
fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [digits.len() as u16, weight as u16, sign, dscale] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    for d in digits {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

#[test]
fn numeric_values() {
    // 12345.678 = [1, 2345, 6780] with weight 1.
    assert_eq!(numeric_to_f64(&numeric(1, 0, 3, &[1, 2345, 6780])).unwrap(), 12345.678);
    assert_eq!(numeric_to_f64(&numeric(-1, 0x4000, 3, &[10])).unwrap(), -0.001);
    assert_eq!(numeric_to_f64(&numeric(0, 0, 0, &[])).unwrap(), 0.0);
    assert!(numeric_to_f64(&numeric(0, 0xC000, 0, &[])).unwrap().is_nan());
    assert_eq!(numeric_to_f64(&numeric(0, 0xD000, 0, &[])).unwrap(), f64::INFINITY);
    assert_eq!(numeric_to_f64(&numeric(0, 0xF000, 0, &[])).unwrap(), f64::NEG_INFINITY);
    assert_eq!(numeric_to_f64(&numeric(4, 0, 0, &[1])).unwrap(), 1e16);
}

#[test]
fn numeric_text_is_exact() {
    let text = |raw: Vec<u8>| Numeric::parse(&raw).unwrap().to_text();
    assert_eq!(text(numeric(1, 0, 3, &[1, 2345, 6780])), "12345.678");
    assert_eq!(text(numeric(-1, 0x4000, 3, &[10])), "-0.001");
    assert_eq!(text(numeric(2, 0, 0, &[12, 0, 5])), "1200000005");
    assert_eq!(text(numeric(0, 0, 2, &[7])), "7.00");
    assert_eq!(text(numeric(0, 0xC000, 0, &[])), "NaN");
}

#[test]
fn malformed_numerics_are_errors_not_panics() {
    assert!(numeric_to_f64(&[0, 1]).is_err());
    let mut short = numeric(0, 0, 0, &[1, 2]);
    short.pop();
    assert!(numeric_to_f64(&short).is_err());
    assert!(numeric_to_f64(&numeric(0, 0x1234, 0, &[1])).is_err());
    assert!(numeric_to_f64(&numeric(0, 0, 0, &[10000])).is_err());
}

#[test]
fn intervals_count_like_extract_epoch() {
    let iv = |micros: i64, days: i32, months: i32| {
        let mut v = micros.to_be_bytes().to_vec();
        v.extend_from_slice(&days.to_be_bytes());
        v.extend_from_slice(&months.to_be_bytes());
        interval_seconds(&v).unwrap()
    };
    assert_eq!(iv(1_500_000, 0, 0), 1.5);
    assert_eq!(iv(0, 2, 0), 172_800.0);
    assert_eq!(iv(0, 0, 1), 2_592_000.0);
    assert_eq!(iv(0, 0, 12), 31_557_600.0);
    assert_eq!(iv(-1_000_000, 0, 0), -1.0);
    assert!(interval_seconds(&[0; 15]).is_err());
}

#[test]
fn samples_from_every_accepted_type() {
    let s = |ty: &Type, raw: &[u8]| sample(ty, raw).unwrap();
    assert_eq!(s(&Type::BOOL, &[1]), 1.0);
    assert_eq!(s(&Type::INT2, &(-3i16).to_be_bytes()), -3.0);
    assert_eq!(s(&Type::INT8, &(1i64 << 40).to_be_bytes()), (1u64 << 40) as f64);
    assert_eq!(s(&Type::OID, &u32::MAX.to_be_bytes()), f64::from(u32::MAX));
    assert_eq!(s(&Type::FLOAT4, &0.25f32.to_be_bytes()), 0.25);
    // 2000-01-01 + 1 s; infinity maps to +Inf.
    assert_eq!(s(&Type::TIMESTAMPTZ, &1_000_000i64.to_be_bytes()), 946_684_801.0);
    assert_eq!(s(&Type::TIMESTAMP, &i64::MAX.to_be_bytes()), f64::INFINITY);
    assert_eq!(s(&Type::DATE, &1i32.to_be_bytes()), 946_771_200.0);
    let err = sample(&Type::TEXT, b"12").unwrap_err().to_string();
    assert!(err.contains("text") && err.contains("cast"), "{err}");
}

#[test]
fn labels_from_non_text_types() {
    let l = |ty: &Type, raw: &[u8]| label(ty, raw).unwrap();
    assert_eq!(l(&Type::NAME, b"ignition"), "ignition");
    assert_eq!(l(&Type::INT8, &42i64.to_be_bytes()), "42");
    assert_eq!(l(&Type::BOOL, &[0]), "false");
    assert_eq!(l(&Type::CHAR, b"r"), "r");
    assert_eq!(l(&Type::UUID, &[0x12; 16]), "12121212-1212-1212-1212-121212121212");
    assert_eq!(l(&Type::INET, &[2, 32, 0, 4, 127, 0, 0, 1]), "127.0.0.1");
    assert_eq!(l(&Type::CIDR, &[2, 8, 1, 4, 10, 0, 0, 0]), "10.0.0.0/8");
    assert_eq!(l(&Type::DATE, &0i32.to_be_bytes()), "2000-01-01");
    assert_eq!(l(&Type::DATE, &(-1i32).to_be_bytes()), "1999-12-31");
    assert_eq!(l(&Type::TIMESTAMPTZ, &1_500_000i64.to_be_bytes()), "2000-01-01T00:00:01.500000Z");
    assert_eq!(l(&Type::TIMESTAMP, &(86_400_000_000i64 * 366).to_be_bytes()), "2001-01-01T00:00:00");
    assert_eq!(l(&Type::JSONB, b"\x01{\"a\":1}"), "{\"a\":1}");
    assert_eq!(l(&Type::NUMERIC, &numeric(0, 0, 1, &[3, 5000])), "3.5");
    let err = label(&Type::BYTEA, b"\x00").unwrap_err().to_string();
    assert!(err.contains("::text"), "{err}");
}

#[test]
fn civil_dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    assert_eq!(civil_from_days(19_723 + 59), (2024, 2, 29));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
}
