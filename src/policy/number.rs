//! Telephone numbers as they appear in config files and SIP headers, normalised to E.164.
//!
//! The table of countries is deliberately small: it holds what number normalisation needs
//! (calling code, trunk and international prefixes, national number lengths), not a full
//! numbering plan. An unknown or odd number is returned as such, never guessed into a listed one.

use std::fmt;

/// Numbering facts for one country.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Country {
    pub iso: &'static str,
    pub calling_code: &'static str,
    /// Prefix dialled before a national number ("0" in GB), empty where there is none.
    pub trunk_prefix: &'static str,
    /// Prefix dialled before an international number ("00" in GB).
    pub international_prefix: &'static str,
    /// Lengths of the national significant number (without the trunk prefix).
    pub nsn_min: usize,
    pub nsn_max: usize,
}

impl Country {
    pub const GB: Country = Country {
        iso: "GB",
        calling_code: "44",
        trunk_prefix: "0",
        international_prefix: "00",
        nsn_min: 10,
        nsn_max: 10,
    };

    const ALL: &'static [Country] = &[
        Country::GB,
        Country {
            iso: "IE",
            calling_code: "353",
            trunk_prefix: "0",
            international_prefix: "00",
            nsn_min: 7,
            nsn_max: 10,
        },
        Country {
            iso: "US",
            calling_code: "1",
            trunk_prefix: "1",
            international_prefix: "011",
            nsn_min: 10,
            nsn_max: 10,
        },
        Country {
            iso: "CA",
            calling_code: "1",
            trunk_prefix: "1",
            international_prefix: "011",
            nsn_min: 10,
            nsn_max: 10,
        },
        Country {
            iso: "FR",
            calling_code: "33",
            trunk_prefix: "0",
            international_prefix: "00",
            nsn_min: 9,
            nsn_max: 9,
        },
        Country {
            iso: "DE",
            calling_code: "49",
            trunk_prefix: "0",
            international_prefix: "00",
            nsn_min: 6,
            nsn_max: 13,
        },
        Country {
            iso: "NL",
            calling_code: "31",
            trunk_prefix: "0",
            international_prefix: "00",
            nsn_min: 9,
            nsn_max: 9,
        },
        Country {
            iso: "BE",
            calling_code: "32",
            trunk_prefix: "0",
            international_prefix: "00",
            nsn_min: 8,
            nsn_max: 9,
        },
        Country {
            iso: "ES",
            calling_code: "34",
            trunk_prefix: "",
            international_prefix: "00",
            nsn_min: 9,
            nsn_max: 9,
        },
        Country {
            iso: "IT",
            calling_code: "39",
            trunk_prefix: "",
            international_prefix: "00",
            nsn_min: 6,
            nsn_max: 11,
        },
        Country {
            iso: "AU",
            calling_code: "61",
            trunk_prefix: "0",
            international_prefix: "0011",
            nsn_min: 9,
            nsn_max: 9,
        },
        Country {
            iso: "NZ",
            calling_code: "64",
            trunk_prefix: "0",
            international_prefix: "00",
            nsn_min: 8,
            nsn_max: 10,
        },
    ];

    pub fn from_iso(iso: &str) -> Option<Country> {
        Country::ALL
            .iter()
            .copied()
            .find(|c| c.iso.eq_ignore_ascii_case(iso.trim()))
    }

    pub fn supported_list() -> String {
        Country::ALL
            .iter()
            .map(|c| c.iso)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a number turned out to be.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Number {
    /// A full international number, "+442087483020".
    E164(String),
    /// A short internal number, "4711".
    Extension(String),
    /// Anything else ("anonymous", "*99", a number of impossible length): kept as written.
    Unknown(String),
}

impl Number {
    pub fn e164(&self) -> Option<&str> {
        match self {
            Number::E164(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_extension(&self) -> bool {
        matches!(self, Number::Extension(_))
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::E164(s) | Number::Extension(s) | Number::Unknown(s) => f.write_str(s),
        }
    }
}

/// Why a configured number could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("empty number")]
    Empty,
    #[error("unexpected character {0:?} in a phone number")]
    BadCharacter(char),
    #[error("{digits} digits is not a valid length for a number in this country")]
    WrongLength { digits: usize },
    #[error("this is an internal extension, not a public number")]
    Extension,
}

/// The user part of a SIP/tel URI or a number as written: scheme, host and parameters removed,
/// `%2B` unescaped.
pub fn user_part(raw: &str) -> &str {
    let mut s = raw.trim();
    for scheme in ["sip:", "sips:", "tel:"] {
        // `get` (not indexing): the text may hold multi-byte characters at any position
        if s.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        {
            s = &s[scheme.len()..];
        }
    }
    if let Some(at) = s.find('@') {
        s = &s[..at];
    }
    if let Some(semi) = s.find(';') {
        s = &s[..semi];
    }
    s
}

/// Digits of a dialled string with visual separators removed; `None` if anything but digits,
/// separators and a leading `+` appears.
fn digits_of(user: &str) -> Result<(bool, String), NumberError> {
    let mut plus = false;
    let mut digits = String::with_capacity(user.len());
    let mut rest = user;
    if let Some(r) = rest
        .strip_prefix("%2B")
        .or_else(|| rest.strip_prefix("%2b"))
    {
        plus = true;
        rest = r;
    }
    for (i, c) in rest.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 && !plus => plus = true,
            ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
            other => return Err(NumberError::BadCharacter(other)),
        }
    }
    if digits.is_empty() {
        return Err(NumberError::Empty);
    }
    Ok((plus, digits))
}

/// Normalises a number seen on the wire (Request-URI user, From user, Diversion...).
pub fn normalise(raw: &str, country: Country, extension_max_digits: usize) -> Number {
    let user = user_part(raw);
    let Ok((plus, digits)) = digits_of(user) else {
        return Number::Unknown(user.to_owned());
    };
    let e164 = |national: &str| Number::E164(format!("+{}{}", country.calling_code, national));
    let nsn_ok = |n: &str| (country.nsn_min..=country.nsn_max).contains(&n.len());
    if plus {
        return if (8..=15).contains(&digits.len()) {
            Number::E164(format!("+{digits}"))
        } else {
            Number::Unknown(digits)
        };
    }
    if let Some(intl) = digits.strip_prefix(country.international_prefix)
        && (8..=15).contains(&intl.len())
    {
        return Number::E164(format!("+{intl}"));
    }
    if digits.len() <= extension_max_digits {
        return Number::Extension(digits);
    }
    if !country.trunk_prefix.is_empty()
        && let Some(national) = digits.strip_prefix(country.trunk_prefix)
        && nsn_ok(national)
    {
        return e164(national);
    }
    // Carriers often send the country code without the '+'.
    if let Some(national) = digits.strip_prefix(country.calling_code)
        && nsn_ok(national)
        && !nsn_ok(&digits)
    {
        return e164(national);
    }
    // Some PBXs strip the trunk prefix before routing.
    if nsn_ok(&digits) {
        return e164(&digits);
    }
    Number::Unknown(digits)
}

/// Reads a number from the configuration, strictly: it must be a public number.
pub fn parse_listed_number(raw: &str, country: Country) -> Result<String, NumberError> {
    let user = user_part(raw);
    let (_, digits) = digits_of(user)?;
    match normalise(raw, country, 6) {
        Number::E164(e) => Ok(e),
        Number::Extension(_) => Err(NumberError::Extension),
        Number::Unknown(_) => Err(NumberError::WrongLength {
            digits: digits.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gb(s: &str) -> Number {
        normalise(s, Country::GB, 6)
    }

    #[test]
    fn the_ways_people_write_one_number_are_one_number() {
        let want = Number::E164("+442087483020".into());
        for s in [
            "020 8748 3020",
            "+44 20 8748 3020",
            "02087483020",
            "+442087483020",
            "00442087483020",
            "442087483020",
            "2087483020",
            "(020) 8748-3020",
            "sip:02087483020@10.0.0.1;user=phone",
            "sip:%2B442087483020@pbx",
            "tel:+44-20-8748-3020;phone-context=example.org",
        ] {
            assert_eq!(gb(s), want, "{s}");
        }
    }

    #[test]
    fn freephone_numbers() {
        assert_eq!(gb("0800 145 6095"), Number::E164("+448001456095".into()));
        assert_eq!(gb("0800 023 4499"), Number::E164("+448000234499".into()));
    }

    #[test]
    fn multibyte_characters_never_panic() {
        for s in ["abcé", "sipé:1", "é", "tel:é", "sip:abc\u{e9}@x", "ü1234"] {
            let _ = gb(s);
            let _ = parse_listed_number(s, Country::GB);
        }
    }

    #[test]
    fn extensions_and_oddities() {
        assert_eq!(gb("4711"), Number::Extension("4711".into()));
        assert_eq!(gb("sip:4711@pbx.local"), Number::Extension("4711".into()));
        assert_eq!(gb("anonymous"), Number::Unknown("anonymous".into()));
        assert_eq!(gb("*99"), Number::Unknown("*99".into()));
        assert_eq!(
            gb("0208748302099999"),
            Number::Unknown("0208748302099999".into())
        );
    }

    #[test]
    fn other_countries() {
        let us = Country::from_iso("us").unwrap();
        assert_eq!(
            normalise("(212) 555-0100", us, 5),
            Number::E164("+12125550100".into())
        );
        assert_eq!(
            normalise("1 212 555 0100", us, 5),
            Number::E164("+12125550100".into())
        );
        assert_eq!(
            normalise("011 44 20 8748 3020", us, 5),
            Number::E164("+442087483020".into())
        );
    }

    #[test]
    fn listed_numbers_must_be_public_numbers() {
        assert_eq!(
            parse_listed_number("020 7371 5678", Country::GB).unwrap(),
            "+442073715678"
        );
        assert_eq!(
            parse_listed_number("4711", Country::GB),
            Err(NumberError::Extension)
        );
        assert_eq!(
            parse_listed_number("", Country::GB),
            Err(NumberError::Empty)
        );
        assert_eq!(
            parse_listed_number("020 x", Country::GB),
            Err(NumberError::BadCharacter('x'))
        );
        assert!(matches!(
            parse_listed_number("020 7371 56", Country::GB),
            Err(NumberError::WrongLength { .. })
        ));
    }
}
