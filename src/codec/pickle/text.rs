//! Integers in pickle's two forms (little-endian two's complement, decimal text) and the text
//! opcodes' other payloads (raw-unicode-escape strings, floats).

use rmpv::{Integer, Value};

use super::{Pickle, PickleError};

/// CPython's limit on the decimal digits of an integer it converts from text
/// (`sys.int_info.default_max_str_digits`): longer text cannot be read there either.
const MAX_INT_DIGITS: usize = 4300;

/// The session value of the integer whose little-endian two's complement is `bytes` (empty is
/// zero): an `Integer` when `i64` or `u64` holds it, else a [`Pickle::BIG_INT_EXT`] extension
/// holding the same bytes in their shortest form.
pub(super) fn int_from_le(bytes: &[u8]) -> Value {
    let bytes = shortest(bytes);
    let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
    if bytes.len() <= 8 {
        let mut word = [if negative { 0xff } else { 0 }; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        return Value::from(i64::from_le_bytes(word));
    }
    if let (9, Some(0)) = (bytes.len(), bytes.last()) {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[..8]);
        return Value::from(u64::from_le_bytes(word));
    }
    Value::Ext(Pickle::BIG_INT_EXT, bytes.to_vec())
}

/// `bytes` without the top bytes that only repeat the sign (at least one byte is kept).
fn shortest(mut bytes: &[u8]) -> &[u8] {
    while let [.., below, top] = bytes {
        let sign_only = (*top == 0 && below & 0x80 == 0) || (*top == 0xff && below & 0x80 != 0);
        if !sign_only {
            break;
        }
        bytes = &bytes[..bytes.len() - 1];
    }
    bytes
}

/// The little-endian two's complement of `n` in its fewest bytes (what `LONG1` holds).
pub(super) fn le_of_integer(n: Integer) -> Vec<u8> {
    let wide = match (n.as_i64(), n.as_u64()) {
        (Some(n), _) => i128::from(n),
        (None, Some(n)) => i128::from(n),
        (None, None) => 0, // rmpv integers are always one of the two
    };
    shortest(&wide.to_le_bytes()).to_vec()
}

/// The integer of an `INT` or `LONG` line: optional sign and decimal digits (CPython writes
/// nothing else), at most [`MAX_INT_DIGITS`] of them.
pub(super) fn int_from_decimal(text: &[u8]) -> Result<Value, PickleError> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(PickleError::Malformed("an integer line is not decimal"));
    }
    if digits.len() > MAX_INT_DIGITS {
        return Err(PickleError::IntTooLong);
    }
    let mut bytes = magnitude_le(digits);
    bytes.push(0); // room for the sign bit
    if negative {
        negate(&mut bytes);
    }
    Ok(int_from_le(&bytes))
}

/// The little-endian bytes of the unsigned decimal `digits`, nine digits at a time.
fn magnitude_le(digits: &[u8]) -> Vec<u8> {
    let mut limbs: Vec<u32> = Vec::new();
    for chunk in digits.chunks(9) {
        let scale = 10_u64.pow(chunk.len() as u32); // at most 10^9
        let mut carry = chunk
            .iter()
            .fold(0_u64, |n, d| n * 10 + u64::from(d - b'0'));
        for limb in &mut limbs {
            let wide = u64::from(*limb) * scale + carry;
            *limb = wide as u32; // the low 32 bits; the rest carries
            carry = wide >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32); // below 2^32: at most (2^32 * 10^9) >> 32
        }
    }
    limbs.iter().flat_map(|limb| limb.to_le_bytes()).collect()
}

/// Two's complement negation in place (`bytes` little-endian, with room for the sign).
fn negate(bytes: &mut [u8]) {
    let mut carry = true;
    for byte in bytes {
        let (sum, overflow) = (!*byte).overflowing_add(u8::from(carry));
        *byte = sum;
        carry = overflow;
    }
}

/// The float of a `FLOAT` line (`repr(float)`: `1.5`, `1e+300`, `inf`, `nan`).
pub(super) fn float_from_text(text: &[u8]) -> Result<f64, PickleError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or(PickleError::Malformed("a float line is not a number"))
}

/// The str of a `UNICODE` line, in Python's raw-unicode-escape: bytes are Latin-1 characters,
/// except that `\uXXXX` and `\UXXXXXXXX` after an odd number of backslashes are escapes.
pub(super) fn raw_unicode_escape(line: &[u8]) -> Result<String, PickleError> {
    let mut out = String::with_capacity(line.len());
    let mut at = 0;
    while let Some(&byte) = line.get(at) {
        if byte != b'\\' {
            out.push(char::from(byte));
            at += 1;
            continue;
        }
        let run = line[at..].iter().take_while(|&&b| b == b'\\').count();
        let after = at + run;
        let width = match line.get(after) {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => 0,
        };
        out.extend(std::iter::repeat_n(
            '\\',
            if width == 0 { run } else { run - 1 },
        ));
        at = after;
        if width > 0 {
            out.push(escaped_char(line.get(after + 1..after + 1 + width))?);
            at += 1 + width;
        }
    }
    Ok(out)
}

/// The character of the hex digits of a `\u` or `\U` escape.
fn escaped_char(hex: Option<&[u8]>) -> Result<char, PickleError> {
    let hex = hex
        .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
        .ok_or(PickleError::Malformed("a truncated \\u escape"))?;
    let code = hex.iter().fold(0_u32, |n, &d| {
        n * 16 + char::from(d).to_digit(16).unwrap_or(0)
    });
    char::from_u32(code).ok_or(PickleError::InvalidUtf8)
}

/// The str of a `BINSTRING` or `SHORT_BINSTRING` (a Python 2 `str`), read as Python 3 reads it
/// by default: ASCII, else an error.
pub(super) fn ascii_string(bytes: &[u8]) -> Result<String, PickleError> {
    if !bytes.is_ascii() {
        return Err(PickleError::Malformed("a Python 2 str is not ASCII"));
    }
    Ok(bytes.iter().map(|&b| char::from(b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(bytes: &[u8]) -> Value {
        Value::Ext(Pickle::BIG_INT_EXT, bytes.to_vec())
    }

    #[test]
    fn integers_become_the_narrowest_value() {
        assert_eq!(int_from_le(b""), Value::from(0));
        assert_eq!(int_from_le(b"\xff"), Value::from(-1));
        assert_eq!(int_from_le(b"\x00\x01\x00\x00"), Value::from(256));
        assert_eq!(int_from_le(&[0xff; 8]), Value::from(-1));
        let mut u64_max = vec![0xff; 8];
        u64_max.push(0);
        assert_eq!(int_from_le(&u64_max), Value::from(u64::MAX));
        let i64_min = [0, 0, 0, 0, 0, 0, 0, 0x80];
        assert_eq!(int_from_le(&i64_min), Value::from(i64::MIN));
        // i64::MIN - 1, with redundant sign bytes.
        let below = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
        ];
        assert_eq!(int_from_le(&below), big(&below[..9]));
        let two_64 = [0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(int_from_le(&two_64), big(&two_64));
    }

    #[test]
    fn integer_bytes_are_the_shortest() {
        assert_eq!(le_of_integer(Integer::from(0)), [0]);
        assert_eq!(le_of_integer(Integer::from(255)), [0xff, 0]);
        assert_eq!(le_of_integer(Integer::from(-129)), [0x7f, 0xff]);
        assert_eq!(
            le_of_integer(Integer::from(u64::MAX)),
            [0xff; 8].iter().chain(&[0]).copied().collect::<Vec<_>>()
        );
    }

    #[test]
    fn decimal_text_of_any_size() {
        assert_eq!(int_from_decimal(b"-5").unwrap(), Value::from(-5));
        assert_eq!(
            int_from_decimal(b"+18446744073709551615").unwrap(),
            Value::from(u64::MAX)
        );
        assert_eq!(
            int_from_decimal(b"-9223372036854775808").unwrap(),
            Value::from(i64::MIN)
        );
        // 2**70 and -(2**70)
        assert_eq!(
            int_from_decimal(b"1180591620717411303424").unwrap(),
            big(&[0, 0, 0, 0, 0, 0, 0, 0, 0x40])
        );
        assert_eq!(
            int_from_decimal(b"-1180591620717411303424").unwrap(),
            big(&[0, 0, 0, 0, 0, 0, 0, 0, 0xc0])
        );
        assert_eq!(
            int_from_decimal(b"-18446744073709551616").unwrap(),
            big(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff])
        );
        for bad in [&b""[..], b"-", b"1.5", b"0x10", b" 1"] {
            assert!(int_from_decimal(bad).is_err(), "{bad:?}");
        }
        assert!(int_from_decimal(&[b'7'; MAX_INT_DIGITS]).is_ok());
        assert_eq!(
            int_from_decimal(&[b'7'; MAX_INT_DIGITS + 1]),
            Err(PickleError::IntTooLong)
        );
    }

    #[test]
    fn raw_unicode_escape_as_python_reads_it() {
        assert_eq!(raw_unicode_escape(b"caf\xe9").unwrap(), "café");
        assert_eq!(
            raw_unicode_escape(b"\\u005c\\u000a\\u2603\\U0001f600").unwrap(),
            "\\\n☃😀"
        );
        // An even run of backslashes is literal, and so is a backslash before anything else.
        assert_eq!(
            raw_unicode_escape(b"\\\\u0041 \\x").unwrap(),
            "\\\\u0041 \\x"
        );
        assert_eq!(raw_unicode_escape(b"\\\\\\u0041").unwrap(), "\\\\A");
        assert!(raw_unicode_escape(b"\\u12").is_err());
        assert!(raw_unicode_escape(b"\\u+123").is_err());
        assert_eq!(
            raw_unicode_escape(b"\\ud800"),
            Err(PickleError::InvalidUtf8)
        );
        assert_eq!(
            raw_unicode_escape(b"\\U00110000"),
            Err(PickleError::InvalidUtf8)
        );
    }

    #[test]
    fn floats_and_python_2_strings() {
        assert_eq!(float_from_text(b"1.5").unwrap(), 1.5);
        assert_eq!(float_from_text(b"1e+300").unwrap(), 1e300);
        assert!(float_from_text(b"nan").unwrap().is_nan());
        assert_eq!(float_from_text(b"-inf").unwrap(), f64::NEG_INFINITY);
        assert!(float_from_text(b"one").is_err());
        assert_eq!(ascii_string(b"abc").unwrap(), "abc");
        assert!(ascii_string(b"\xe9").is_err());
    }
}
