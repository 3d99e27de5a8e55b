//! ID tokens made and signed here (ES256, a key made per test), and every way one is
//! refused. RS256 is checked against a real provider in the browser test.

use super::*;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::json;

struct Signer {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Signer {
    fn new() -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Signer { pair, rng }
    }

    fn jwk(&self, kid: &str) -> Jwk {
        let point = self.pair.public_key().as_ref();
        Jwk {
            kty: "EC".into(),
            kid: Some(kid.into()),
            alg: Some("ES256".into()),
            use_: Some("sig".into()),
            n: None,
            e: None,
            crv: Some("P-256".into()),
            x: Some(B64.encode(&point[1..33])),
            y: Some(B64.encode(&point[33..65])),
        }
    }

    fn token(&self, header: Value, claims: Value) -> String {
        let signed = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self.pair.sign(&self.rng, signed.as_bytes()).unwrap();
        format!("{signed}.{}", B64.encode(sig.as_ref()))
    }
}

const NOW: i64 = 1_780_000_000;
const ISS: &str = "https://login.council.example";

fn claims() -> Value {
    json!({ "iss": ISS, "aud": "callvault", "sub": "s-1", "exp": NOW + 300, "iat": NOW - 5,
            "nonce": "n-1", "preferred_username": "olive", "groups": ["cc-managers"],
            "callvault_services": ["Parking"], "amr": ["pwd", "mfa"] })
}

fn expect() -> Expect<'static> {
    Expect {
        issuer: ISS,
        client_id: "callvault",
        nonce: "n-1",
    }
}

fn header() -> Value {
    json!({ "alg": "ES256", "kid": "k1" })
}

#[test]
fn a_token_signed_by_the_providers_key_for_this_sign_in_holds() {
    let s = Signer::new();
    let got = verify_id_token(&s.token(header(), claims()), &[s.jwk("k1")], &expect(), NOW);
    assert_eq!(got.unwrap()["preferred_username"], "olive");
    // one key and no kid: that key
    let got = verify_id_token(
        &s.token(json!({ "alg": "ES256" }), claims()),
        &[s.jwk("k1")],
        &expect(),
        NOW,
    );
    assert!(got.is_ok());
}

#[test]
fn every_forgery_and_mismatch_is_refused() {
    let s = Signer::new();
    let other = Signer::new();
    let keys = [s.jwk("k1")];
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        c
    };
    let cases: Vec<(String, TokenError)> = vec![
        (other.token(header(), claims()), TokenError::Signature),
        (
            other.token(json!({ "alg": "ES256", "kid": "k9" }), claims()),
            TokenError::UnknownKey,
        ),
        (
            s.token(json!({ "alg": "none" }), claims()),
            TokenError::Algorithm("none".into()),
        ),
        (
            s.token(json!({ "alg": "HS256", "kid": "k1" }), claims()),
            TokenError::Algorithm("HS256".into()),
        ),
        (
            s.token(header(), with("iss", json!("https://evil.example"))),
            TokenError::Issuer("https://evil.example".into()),
        ),
        (
            s.token(header(), with("aud", json!("another-app"))),
            TokenError::Audience,
        ),
        (
            s.token(header(), with("aud", json!(["callvault", "another-app"]))),
            TokenError::Audience,
        ),
        (
            s.token(header(), with("exp", json!(NOW - 600))),
            TokenError::Time,
        ),
        (
            s.token(header(), with("iat", json!(NOW + 600))),
            TokenError::Time,
        ),
        (
            s.token(header(), with("nbf", json!(NOW + 600))),
            TokenError::Time,
        ),
        (
            s.token(header(), with("nonce", json!("n-2"))),
            TokenError::Nonce,
        ),
        (
            s.token(header(), {
                let mut c = claims();
                c.as_object_mut().unwrap().remove("nonce");
                c
            }),
            TokenError::Nonce,
        ),
        ("a.b".into(), TokenError::Malformed),
        ("!!.!!.!!".into(), TokenError::Malformed),
        ("x".repeat(40_000), TokenError::Malformed),
    ];
    for (token, want) in cases {
        assert_eq!(
            verify_id_token(&token, &keys, &expect(), NOW).unwrap_err(),
            want,
            "{}",
            &token[..token.len().min(80)]
        );
    }
    // the claims changed after signing
    let good = s.token(header(), claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = B64.encode(with("preferred_username", json!("adam")).to_string());
    parts[1] = &forged;
    assert_eq!(
        verify_id_token(&parts.join("."), &keys, &expect(), NOW).unwrap_err(),
        TokenError::Signature
    );
    // several audiences with this one as the authorised party
    let mut c = with("aud", json!(["callvault", "another-app"]));
    c["azp"] = json!("callvault");
    assert!(verify_id_token(&s.token(header(), c), &keys, &expect(), NOW).is_ok());
}

fn section() -> OidcSection {
    let text = r#"
        issuer = "https://login.council.example"
        client_id = "callvault"
        services_claim = "callvault_services"
        extension_claim = "ext"
        [roles]
        cc-managers = "manager"
        data-protection = "dpo"
        it-admins = "admin"
        cc-staff = "staff"
    "#;
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap()
}

#[test]
fn groups_give_one_role_and_claims_give_services() {
    let cfg = section();
    let c = claims();
    let id = identity(c.as_object().unwrap(), &cfg).unwrap();
    assert_eq!(
        id,
        Identity {
            subject: format!("{ISS} s-1"),
            username: "olive".into(),
            role: Role::Manager,
            services: Some(vec!["Parking".into()]),
            extension: None,
            strong: true,
        }
    );
    let mut c = claims();
    c["groups"] = json!(["finance"]);
    assert_eq!(
        identity(c.as_object().unwrap(), &cfg).unwrap_err(),
        MappingError::NoRole
    );
    c["groups"] = json!(["cc-managers", "it-admins"]);
    assert!(matches!(
        identity(c.as_object().unwrap(), &cfg).unwrap_err(),
        MappingError::ManyRoles(_)
    ));
    c["groups"] = json!(["cc-staff"]);
    c["ext"] = json!("2001");
    c["amr"] = json!(["pwd"]);
    let id = identity(c.as_object().unwrap(), &cfg).unwrap();
    assert_eq!(
        (id.role, id.extension.as_deref(), id.strong, id.services),
        (Role::Staff, Some("2001"), false, Some(vec![]))
    );
    c.as_object_mut().unwrap().remove("preferred_username");
    assert!(matches!(
        identity(c.as_object().unwrap(), &cfg).unwrap_err(),
        MappingError::NoUsername(_)
    ));
}

#[test]
fn a_sign_in_in_progress_survives_its_cookie_and_nothing_else_does() {
    let p = Pending::new();
    assert_eq!(Pending::from_cookie(&p.cookie_value()), Some(p.clone()));
    assert!(p.state_is(&p.state) && !p.state_is("x"));
    assert_eq!(p.challenge().len(), 43);
    for bad in ["", "a.b.c", &format!("{}.x", p.cookie_value())] {
        assert!(Pending::from_cookie(bad).is_none(), "{bad}");
    }
}
