//! Time-based one-time passwords (TOTP, RFC 6238 over RFC 4226's HOTP): the second factor
//! of local accounts that may hear recordings.
//!
//! Owns the codes (HMAC-SHA-1, 30-second steps, 6 digits: what every authenticator app
//! reads), the check of a typed code against a secret (the step before and after allowed for
//! clock drift; a step already used refused, so a code is good once), new secrets and the
//! `otpauth://` setup text. Pure: the time and the randomness come from the caller. It keeps
//! nothing; the secret and the last step used are `people`'s.

use ring::hmac;

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;

/// The HOTP value of `secret` at counter `step`, as 6 digits.
pub fn code_at(secret: &[u8], step: u64) -> u32 {
    // SHA-1 is what RFC 6238 and the apps use; as an HMAC it is not broken
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let word = mac
        .get(offset..offset + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    (word & 0x7fff_ffff) % 1_000_000
}

/// The step a typed code matches at `now_s` (seconds since 1970): this step, the one before
/// or the one after, later than `last_used`. None: wrong, malformed or already used.
pub fn check(secret: &[u8], typed: &str, now_s: u64, last_used: Option<u64>) -> Option<u64> {
    let typed: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if typed.len() != 6 || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u32 = typed.parse().ok()?;
    let now = now_s / STEP_SECONDS;
    [now.saturating_sub(1), now, now + 1]
        .into_iter()
        .filter(|s| last_used.is_none_or(|l| *s > l))
        .find(|s| code_at(secret, *s) == value)
}

/// RFC 4648 base32 without padding: how apps take a secret typed in. (Ten lines here rather
/// than a crate for the one direction needed.)
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The setup text an authenticator app reads (as a link or a QR code).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let issuer = utf8_percent_encode(issuer, NON_ALPHANUMERIC).to_string();
    let account = utf8_percent_encode(account, NON_ALPHANUMERIC).to_string();
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits=6&period={STEP_SECONDS}",
        base32(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B (SHA-1), the last 6 of its 8 digits.
    #[test]
    fn codes_are_rfc_6238s() {
        let secret = b"12345678901234567890";
        for (t, want) in [
            (59u64, 287_082u32),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
            (20_000_000_000, 353_130),
        ] {
            assert_eq!(code_at(secret, t / STEP_SECONDS), want, "T = {t}");
        }
    }

    #[test]
    fn a_code_is_good_for_its_step_and_its_neighbours_once() {
        let secret = b"12345678901234567890";
        let now = 1_234_567_890;
        let code = format!("{:06}", code_at(secret, now / 30));
        assert_eq!(check(secret, &code, now, None), Some(now / 30));
        assert_eq!(
            check(secret, &code, now + 30, None),
            Some(now / 30),
            "drift"
        );
        assert_eq!(check(secret, &code, now + 90, None), None, "too old");
        assert_eq!(check(secret, &code, now, Some(now / 30)), None, "used");
        assert_eq!(check(secret, "12345", now, None), None);
        assert_eq!(check(secret, "abcdef", now, None), None);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(check(secret, &spaced, now, None).is_some());
    }

    #[test]
    fn base32_is_rfc_4648s() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b""), "");
    }
}
