//! Single sign-on with OpenID Connect: the authorization code flow with PKCE (OpenID Connect
//! Core 1.0 §3.1, RFC 7636), for councils that sign their staff in with their directory.
//!
//! Owns what a sign-in in progress carries ([`Pending`]: state, nonce and PKCE verifier, in
//! a short-lived cookie), the address people are sent to, checking an ID token
//! ([`verify_id_token`]: RS256 or ES256 by one of the provider's keys, issuer, audience,
//! times, nonce) and reading who it names ([`identity`]: user name, role from groups,
//! services, extension, whether a second factor was used). These are pure. [`Provider`] is the
//! shell: it reads the provider's metadata and keys (again when a token names a key it has not
//! seen: key rotation) and exchanges a code for tokens over HTTPS.
//!
//! It does not open sessions or keep accounts (the store's `directory_sign_in` does), and it
//! trusts nothing a browser brings back but the code, which only the provider can turn into
//! a token, and only with the verifier the browser never saw.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::OidcSection;
use super::people::Role;

/// The cookie holding a sign-in in progress.
pub const PENDING_COOKIE: &str = "cv_oidc";
/// An ID token longer than this is refused unread (a real one is 1 to 4 KiB; groups
/// overage makes Entra send a link instead of a longer token).
const MAX_TOKEN: usize = 32 * 1024;
/// Clocks of the provider and the catalogue may differ by this much.
const SKEW_S: i64 = 120;

/// A sign-in in progress: what the provider must send back (state), what the ID token must
/// carry (nonce), and the PKCE verifier the code is exchanged with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

fn random_b64() -> String {
    let mut raw = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut raw) {
        tracing::error!("the system's random generator failed: {e}");
        std::process::abort();
    }
    B64.encode(raw)
}

impl Pending {
    pub fn new() -> Pending {
        Pending {
            state: random_b64(),
            nonce: random_b64(),
            verifier: random_b64(),
        }
    }

    /// As the cookie holds it.
    pub fn cookie_value(&self) -> String {
        format!("{}.{}.{}", self.state, self.nonce, self.verifier)
    }

    pub fn from_cookie(v: &str) -> Option<Pending> {
        let mut parts = v.split('.');
        let (state, nonce, verifier) = (parts.next()?, parts.next()?, parts.next()?);
        let ok = |p: &str| p.len() == 43 && B64.decode(p).is_ok();
        (parts.next().is_none() && ok(state) && ok(nonce) && ok(verifier)).then(|| Pending {
            state: state.into(),
            nonce: nonce.into(),
            verifier: verifier.into(),
        })
    }

    /// The PKCE challenge (S256) of the verifier.
    pub fn challenge(&self) -> String {
        B64.encode(Sha256::digest(self.verifier.as_bytes()))
    }

    /// Whether `state` is the one sent (compared in constant time).
    pub fn state_is(&self, state: &str) -> bool {
        bool::from(self.state.as_bytes().ct_eq(state.as_bytes()))
    }
}

impl Default for Pending {
    fn default() -> Self {
        Pending::new()
    }
}

/// What the catalogue reads of the provider's `/.well-known/openid-configuration`.
#[derive(Clone, Debug, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// A public key of the provider (RFC 7517), RSA or EC P-256.
#[derive(Clone, Debug, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// The address that sends a browser to the provider's sign-in.
pub fn authorization_url(
    meta: &Metadata,
    cfg: &OidcSection,
    redirect: &str,
    p: &Pending,
) -> String {
    let scope = if cfg.scopes.iter().any(|s| s == "openid") {
        cfg.scopes.join(" ")
    } else {
        format!("openid {}", cfg.scopes.join(" "))
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &cfg.client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", scope.trim())
        .append_pair("state", &p.state)
        .append_pair("nonce", &p.nonce)
        .append_pair("code_challenge", &p.challenge())
        .append_pair("code_challenge_method", "S256")
        .finish();
    let sep = if meta.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{}{sep}{query}", meta.authorization_endpoint)
}

/// What an ID token must say.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
}

/// Why an ID token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the ID token is not a signed JSON Web Token")]
    Malformed,
    #[error("the ID token is signed with {0:?}: only RS256 and ES256 are accepted")]
    Algorithm(String),
    #[error("the ID token names a key the provider does not publish")]
    UnknownKey,
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("the ID token is from {0:?}, not the configured issuer")]
    Issuer(String),
    #[error("the ID token is not for this catalogue (audience)")]
    Audience,
    #[error("the ID token has expired or is not yet valid")]
    Time,
    #[error("the ID token's nonce is not this sign-in's (a replayed or injected token)")]
    Nonce,
}

impl TokenError {
    /// Whether fetching the provider's keys again may help (a key rotated in).
    pub fn wants_new_keys(&self) -> bool {
        *self == TokenError::UnknownKey
    }
}

/// Checks an ID token against the provider's keys and what this sign-in expects; its claims
/// when it holds.
pub fn verify_id_token(
    token: &str,
    keys: &[Jwk],
    expect: &Expect<'_>,
    now_s: i64,
) -> Result<Map<String, Value>, TokenError> {
    use TokenError::*;
    if token.len() > MAX_TOKEN {
        return Err(Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed);
    };
    let header: Map<String, Value> =
        serde_json::from_slice(&B64.decode(h).map_err(|_| Malformed)?).map_err(|_| Malformed)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&B64.decode(p).map_err(|_| Malformed)?).map_err(|_| Malformed)?;
    let sig = B64.decode(sig).map_err(|_| Malformed)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let kty = match alg {
        "RS256" => "RSA",
        "ES256" => "EC",
        other => return Err(Algorithm(other.to_owned())),
    };
    let kid = header.get("kid").and_then(Value::as_str);
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| k.kty == kty)
        .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == alg))
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .collect();
    // without a kid, only a provider with one key of the kind can be told apart
    let key = match (kid, candidates.as_slice()) {
        (_, [one]) => *one,
        _ => return Err(UnknownKey),
    };
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    if !signature_holds(key, alg, signed, &sig) {
        return Err(Signature);
    }
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss != expect.issuer {
        return Err(Issuer(iss.to_owned()));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expect.client_id) {
        return Err(Audience);
    }
    // several audiences: the party it was issued to must be this one (Core §3.1.3.7)
    if audiences.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(expect.client_id) {
        return Err(Audience);
    }
    let time = |k: &str| claims.get(k).and_then(Value::as_i64);
    let exp = time("exp").ok_or(Time)?;
    if exp <= now_s - SKEW_S
        || time("iat").is_none_or(|iat| iat > now_s + SKEW_S)
        || time("nbf").is_some_and(|nbf| nbf > now_s + SKEW_S)
    {
        return Err(Time);
    }
    let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if !bool::from(nonce.as_bytes().ct_eq(expect.nonce.as_bytes())) {
        return Err(Nonce);
    }
    Ok(claims)
}

fn signature_holds(key: &Jwk, alg: &str, signed: &[u8], sig: &[u8]) -> bool {
    use ring::signature;
    let b = |v: &Option<String>| v.as_deref().and_then(|s| B64.decode(s).ok());
    match alg {
        "RS256" => {
            let (Some(n), Some(e)) = (b(&key.n), b(&key.e)) else {
                return false;
            };
            signature::RsaPublicKeyComponents { n: &n, e: &e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, sig)
                .is_ok()
        }
        "ES256" => {
            let (Some(x), Some(y)) = (b(&key.x), b(&key.y)) else {
                return false;
            };
            if key.crv.as_deref() != Some("P-256") || x.len() != 32 || y.len() != 32 {
                return false;
            }
            let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, sig)
                .is_ok()
        }
        _ => false,
    }
}

/// Who an ID token names, as callvault reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// "<issuer> <sub>": the person, however their user name changes.
    pub subject: String,
    pub username: String,
    pub role: Role,
    /// A manager's services from the services claim (None: no claim is configured, and an
    /// admin gives them); empty for other roles.
    pub services: Option<Vec<String>>,
    pub extension: Option<String>,
    /// The provider says a second factor was used (`amr`).
    pub strong: bool,
}

/// Why an ID token's person cannot sign in.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("the provider sent no {0:?} (the user name): ask the directory's admin to send it")]
    NoUsername(String),
    #[error(
        "your directory account is in no group that gives a callvault role: ask for the group of your role"
    )]
    NoRole,
    #[error(
        "your directory groups give more than one callvault role ({0}): a person has one role (an admin never hears calls)"
    )]
    ManyRoles(String),
}

/// Reads a claim as a list of strings (an array, or one comma-separated string).
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads who the claims name, by the configured claims and group-to-role map.
pub fn identity(claims: &Map<String, Value>, cfg: &OidcSection) -> Result<Identity, MappingError> {
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::trim);
    let username = text(&cfg.username_claim)
        .filter(|u| !u.is_empty() && u.chars().count() <= 64 && !u.chars().any(char::is_control))
        .ok_or_else(|| MappingError::NoUsername(cfg.username_claim.clone()))?
        .to_owned();
    let roles: BTreeSet<Role> = strings(claims.get(&cfg.groups_claim))
        .iter()
        .filter_map(|g| cfg.roles.get(g))
        .filter_map(|r| Role::parse(r))
        .collect();
    let role = match roles.len() {
        0 => return Err(MappingError::NoRole),
        1 => *roles.iter().next().unwrap_or(&Role::Staff),
        _ => {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            return Err(MappingError::ManyRoles(names.join(", ")));
        }
    };
    let services = match (&cfg.services_claim, role) {
        (Some(c), Role::Manager) => Some(strings(claims.get(c))),
        (None, Role::Manager) => None,
        _ => Some(Vec::new()),
    };
    let extension = cfg
        .extension_claim
        .as_ref()
        .and_then(|c| strings(claims.get(c)).into_iter().next())
        .filter(|e| e.len() <= 16 && e.bytes().all(|b| b.is_ascii_digit()));
    const STRONG: [&str; 9] = [
        "mfa", "otp", "hwk", "swk", "sc", "fpt", "face", "iris", "pop",
    ];
    let strong = strings(claims.get("amr"))
        .iter()
        .any(|m| STRONG.contains(&m.as_str()));
    Ok(Identity {
        subject: format!(
            "{} {}",
            text("iss").unwrap_or(""),
            text("sub").unwrap_or("")
        ),
        username,
        role,
        services,
        extension,
        strong,
    })
}

/// The provider as the catalogue talks to it: its metadata and keys, read when first needed
/// and again when a token names a key not seen (at most once a minute).
pub struct Provider {
    pub cfg: OidcSection,
    /// `<server.public_url>/login/oidc/callback`.
    pub redirect: String,
    client: reqwest::Client,
    cache: tokio::sync::Mutex<Option<(Metadata, Vec<Jwk>, Instant)>>,
}

/// Why the provider could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot read the sign-in provider's {what} at {url}: {why}")]
    Fetch {
        what: &'static str,
        url: String,
        why: String,
    },
    #[error("the sign-in provider's metadata names issuer {0:?}, not the configured one")]
    Issuer(String),
    #[error("the sign-in provider refused the code: {0}")]
    Exchange(String),
}

impl Provider {
    pub fn new(cfg: OidcSection, public_url: &str) -> anyhow::Result<Provider> {
        Ok(Provider {
            redirect: format!("{}/login/oidc/callback", public_url.trim_end_matches('/')),
            cfg,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            cache: tokio::sync::Mutex::new(None),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        url: &str,
    ) -> Result<T, ProviderError> {
        let fail = |why: String| ProviderError::Fetch {
            what,
            url: url.to_owned(),
            why,
        };
        let r = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !r.status().is_success() {
            return Err(fail(format!("HTTP {}", r.status())));
        }
        let body = r.bytes().await.map_err(|e| fail(e.to_string()))?;
        if body.len() > 1 << 20 {
            return Err(fail("larger than 1 MiB".into()));
        }
        serde_json::from_slice(&body).map_err(|e| fail(e.to_string()))
    }

    /// The metadata and keys; `refresh`: read the keys again (a token named a new key).
    pub async fn metadata(&self, refresh: bool) -> Result<(Metadata, Vec<Jwk>), ProviderError> {
        let mut cache = self.cache.lock().await;
        if let Some((m, k, at)) = cache.as_ref()
            && (!refresh || at.elapsed() < Duration::from_secs(60))
        {
            return Ok((m.clone(), k.clone()));
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.cfg.issuer.trim_end_matches('/')
        );
        let meta: Metadata = self.get_json("metadata", &url).await?;
        if meta.issuer != self.cfg.issuer {
            return Err(ProviderError::Issuer(meta.issuer));
        }
        let jwks: Jwks = self.get_json("keys", &meta.jwks_uri).await?;
        *cache = Some((meta.clone(), jwks.keys.clone(), Instant::now()));
        Ok((meta, jwks.keys))
    }

    /// Exchanges the code for the ID token (client_secret_basic when the client has a
    /// secret, else a public client).
    pub async fn exchange(
        &self,
        meta: &Metadata,
        code: &str,
        p: &Pending,
    ) -> Result<String, ProviderError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect.as_str()),
            ("code_verifier", p.verifier.as_str()),
        ];
        let mut req = self.client.post(&meta.token_endpoint);
        if self.cfg.client_secret.is_empty() {
            form.push(("client_id", self.cfg.client_id.as_str()));
        } else {
            // RFC 6749 §2.3.1: both form-urlencoded before the Basic encoding
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(&self.cfg.client_id), Some(enc(&self.cfg.client_secret)));
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let r = req
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| ProviderError::Exchange(e.to_string()))?;
        let status = r.status();
        let bytes = r
            .bytes()
            .await
            .map_err(|e| ProviderError::Exchange(e.to_string()))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if !status.is_success() {
            let why = v.get("error").and_then(Value::as_str).unwrap_or("");
            return Err(ProviderError::Exchange(format!("HTTP {status} {why}")));
        }
        v.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Exchange("no id_token in the answer".into()))
    }
}

#[cfg(test)]
mod tests;
