//! Kubernetes resource quantities (`100m`, `1Gi`, `1.5`, `2e3`).
//!
//! Validation compares container requests with limits, and the scheduler
//! sums requests per node; both only need the value, so a quantity is parsed
//! straight into milli-units (`1` → 1000, `100m` → 100, `1Ki` → 1 024 000),
//! rounding fractions of a milli-unit up as Kubernetes' `MilliValue` does.

/// Why a string is not a quantity; messages are Kubernetes' own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text does not have the shape `<number><suffix>`.
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    /// The number has more than one decimal point.
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The number is followed by an unknown suffix.
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value does not fit in skiff's 128-bit milli-unit representation.
    #[error("quantity is too large")]
    TooLarge,
}

/// A suffix as a multiplier `10^exp10 * 2^exp2`.
struct Scale {
    exp10: i32,
    exp2: u32,
}

/// Parse a quantity into milli-units (thousandths of the base unit).
pub fn parse_quantity(s: &str) -> Result<i128, QuantityError> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_len = rest
        .bytes()
        .take_while(|c| c.is_ascii_digit() || *c == b'.')
        .count();
    let (number, suffix) = rest.split_at(num_len);
    let (mantissa, frac_digits) = parse_number(number)?;
    let scale = parse_suffix(suffix)?;
    let milli = scale_to_milli(mantissa, scale.exp10 - frac_digits, scale.exp2)?;
    Ok(if negative { -milli } else { milli })
}

/// Digits of `12.50` as (1250, 2): the integer mantissa and how many of its
/// digits follow the decimal point.
fn parse_number(number: &str) -> Result<(i128, i32), QuantityError> {
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(QuantityError::Format);
    }
    if frac_part.contains('.') {
        return Err(QuantityError::Numeric);
    }
    let mut mantissa: i128 = 0;
    for c in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(c - b'0')))
            .ok_or(QuantityError::TooLarge)?;
    }
    let frac = i32::try_from(frac_part.len()).map_err(|_| QuantityError::TooLarge)?;
    Ok((mantissa, frac))
}

fn parse_suffix(suffix: &str) -> Result<Scale, QuantityError> {
    let decimal = |exp10| Ok(Scale { exp10, exp2: 0 });
    let binary = |exp2| Ok(Scale { exp10: 0, exp2 });
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => parse_exponent(suffix),
    }
}

/// `e3`, `E-2`, `e+6`: a decimal exponent.
fn parse_exponent(suffix: &str) -> Result<Scale, QuantityError> {
    let exp = suffix
        .strip_prefix(['e', 'E'])
        .ok_or_else(|| suffix_error(suffix))?;
    let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(suffix_error(suffix));
    }
    let exp10: i32 = exp.parse().map_err(|_| QuantityError::TooLarge)?;
    Ok(Scale { exp10, exp2: 0 })
}

/// Text outside the quantity alphabet is a format error, known letters in a
/// wrong order are a suffix error, as in Kubernetes.
fn suffix_error(suffix: &str) -> QuantityError {
    let alphabet = |c: char| "eEinumkKMGTP+-0123456789".contains(c);
    if suffix.chars().all(alphabet) {
        QuantityError::Suffix
    } else {
        QuantityError::Format
    }
}

/// `mantissa * 10^(exp10+3) * 2^exp2`, rounded up (away from zero).
fn scale_to_milli(mantissa: i128, exp10: i32, exp2: u32) -> Result<i128, QuantityError> {
    let too_large = QuantityError::TooLarge;
    let mut value = mantissa.checked_mul(1i128.checked_shl(exp2).ok_or(too_large.clone())?);
    let exp = exp10 + 3;
    if exp >= 0 {
        let factor = 10i128
            .checked_pow(exp.unsigned_abs())
            .ok_or(too_large.clone())?;
        value = value.and_then(|v| v.checked_mul(factor));
        return value.ok_or(too_large);
    }
    let value = value.ok_or(too_large)?;
    // Anything below 10^-38 of a milli-unit rounds to the smallest step.
    let Some(divisor) = 10i128.checked_pow(exp.unsigned_abs()) else {
        return Ok(i128::from(value != 0));
    };
    let quotient = value / divisor;
    Ok(if value % divisor == 0 {
        quotient
    } else {
        quotient + 1
    })
}

/// The number of whole base units in a quantity, rounded up (Kubernetes'
/// `Quantity.Value`), e.g. bytes of memory.
pub fn quantity_value(s: &str) -> Result<i128, QuantityError> {
    let milli = parse_quantity(s)?;
    let whole = milli / 1000;
    Ok(if milli % 1000 > 0 { whole + 1 } else { whole })
}
