//! Single sign-on's reading of what the provider sends: an ID token (a JSON Web Token) checked
//! against the provider's keys, and the claims read into a callvault identity.
//! Invariants: never panics; no token is accepted without a signature of the provider's key
//! (the fuzzer holds none); an identity read has one role and a user name of at most 64
//! characters.
#![no_main]

use callvault::catalogue::config::OidcSection;
use callvault::catalogue::oidc::{Expect, Jwk, identity, verify_id_token};
use libfuzzer_sys::fuzz_target;

fn key() -> Jwk {
    serde_json::from_value(serde_json::json!({
        "kty": "RSA", "kid": "k1", "alg": "RS256", "e": "AQAB",
        "n": "xwQ72P9z9OYshiQ-ntDYaPnnfwG6u9JAdLMZ5o0dmjlcyrvwQRdoFIKPnO65Q8mh6F_LDSxjxa2Yzo_wdjhbPZLjfUJXgCzm54cClXzT5twzo7lzoAfaJlkTsoZc2HFWqmcri0BuzmTFLZx2Q7wYBm0pXHmQKF0V-C1O6NWfd4mfBhbM-I1tHYSpAMgarSm22WDMDx-WWI7TEzy2QhaBVaENW9BKaKkJklocAZCxk18WhR0fckIGiWiSM5FcU1PY2jfGsTmX505Ub7P5Dz75Ygqrutd5tFrcqyPAtPTFDk8X1InxkkUwpQ"
    }))
    .unwrap()
}

fn section() -> OidcSection {
    serde_json::from_value(serde_json::json!({
        "issuer": "https://login.council.example", "client_id": "callvault",
        "services_claim": "callvault_services", "extension_claim": "ext",
        "roles": { "cc-managers": "manager", "it": "admin", "dpo": "dpo" }
    }))
    .unwrap()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let expect = Expect {
        issuer: "https://login.council.example",
        client_id: "callvault",
        nonce: "n",
    };
    assert!(verify_id_token(&text, &[key()], &expect, 1_780_000_000).is_err());
    if let Ok(serde_json::Value::Object(claims)) = serde_json::from_slice(data)
        && let Ok(who) = identity(&claims, &section())
    {
        assert!(!who.username.is_empty() && who.username.chars().count() <= 64);
    }
});
