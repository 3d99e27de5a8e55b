//! A minimal S3 client: PUT, GET (optionally a byte range) and DELETE of one object, signed
//! with AWS Signature Version 4, path-style (`{endpoint}/{bucket}/{key}`), so that it works
//! with AWS, MinIO, Ceph RGW, Garage and s3s.
//!
//! Written here rather than taken from object_store or the AWS SDK: the catalogue needs these
//! three calls only, and those crates cost this project's 2-core build machine more than ten
//! minutes and a C toolchain for aws-lc (measured when the catalogue was built). Signing is
//! tested against the AWS documentation's example and against a real S3 server (s3s-fs).

use sha2::{Digest, Sha256};

#[derive(Clone, Debug)]
pub struct S3 {
    client: reqwest::Client,
    endpoint: String,
    bucket: String,
    region: String,
    access_key: String,
    secret_key: String,
}

/// HMAC-SHA256 (RFC 2104), from the `hmac` crate.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    // HMAC takes a key of any length: this cannot fail
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of every length")
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// SigV4's signing key for a day (`20130524`), region and service.
pub fn signing_key(secret_key: &str, day: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret_key}").as_bytes(), day.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// `20261122T192200Z` for a Unix time.
fn amz_date(unix: std::time::SystemTime) -> String {
    let t = humantime::format_rfc3339_seconds(unix).to_string(); // 2026-11-22T19:22:00Z
    t.replace(['-', ':'], "")
}

/// What SigV4 leaves unencoded in a key segment: RFC 3986's unreserved characters.
const SIGV4_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a key segment as SigV4 wants it (unreserved characters kept, the rest
/// `%XX` in upper case).
fn uri_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SIGV4_ENCODE).to_string()
}

/// The `Authorization` header of a request (headers signed: host, x-amz-content-sha256,
/// x-amz-date).
#[allow(clippy::too_many_arguments)]
pub fn authorization(
    method: &str,
    host: &str,
    path: &str,
    payload_sha256: &str,
    date: &str,
    region: &str,
    access_key: &str,
    secret_key: &str,
) -> String {
    let day = &date[..8];
    let canonical = format!(
        "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{payload_sha256}\nx-amz-date:{date}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload_sha256}"
    );
    let scope = format!("{day}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_signing = signing_key(secret_key, day, region, "s3");
    let signature = hex::encode(hmac_sha256(&k_signing, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
    )
}

impl S3 {
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
    ) -> anyhow::Result<S3> {
        Ok(S3 {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(300))
                .build()?,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        key: &str,
        body: Option<&[u8]>,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let path = format!(
            "/{}/{}",
            uri_encode(&self.bucket),
            key.split('/').map(uri_encode).collect::<Vec<_>>().join("/")
        );
        let url = reqwest::Url::parse(&format!("{}{path}", self.endpoint))?;
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let payload = hex::encode(Sha256::digest(body.unwrap_or_default()));
        let date = amz_date(std::time::SystemTime::now());
        let auth = authorization(
            method.as_str(),
            &host,
            &path,
            &payload,
            &date,
            &self.region,
            &self.access_key,
            &self.secret_key,
        );
        let mut req = self
            .client
            .request(method, url)
            .header("x-amz-date", date)
            .header("x-amz-content-sha256", payload)
            .header(reqwest::header::AUTHORIZATION, auth);
        if let Some(b) = body {
            req = req.body(b.to_vec());
        }
        Ok(req)
    }

    async fn check(resp: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let code = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Err(super::error::StoreAnswered {
            what: what.to_owned(),
            code: code.as_u16(),
            text: text.chars().take(300).collect(),
        }
        .into())
    }

    pub async fn put(&self, key: &str, data: &[u8]) -> anyhow::Result<()> {
        let r = self
            .request(reqwest::Method::PUT, key, Some(data))?
            .send()
            .await?;
        Self::check(r, &format!("PUT {key}")).await.map(drop)
    }

    /// The object, or the first `prefix` bytes of it.
    pub async fn get(&self, key: &str, prefix: Option<usize>) -> anyhow::Result<Vec<u8>> {
        let mut req = self.request(reqwest::Method::GET, key, None)?;
        if let Some(n) = prefix {
            req = req.header(reqwest::header::RANGE, format!("bytes=0-{}", n.max(1) - 1));
        }
        let r = Self::check(req.send().await?, &format!("GET {key}")).await?;
        Ok(r.bytes().await?.to_vec())
    }

    /// The object's first `n` bytes and its size (from `Content-Range`, or the whole body
    /// when the store ignores Range).
    pub async fn head(&self, key: &str, n: usize) -> anyhow::Result<(Vec<u8>, u64)> {
        let req = self
            .request(reqwest::Method::GET, key, None)?
            .header(reqwest::header::RANGE, format!("bytes=0-{}", n.max(1) - 1));
        let r = Self::check(req.send().await?, &format!("GET {key}")).await?;
        let total = r
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit_once('/'))
            .and_then(|(_, t)| t.trim().parse::<u64>().ok());
        let mut data = r.bytes().await?.to_vec();
        let total = total.unwrap_or(data.len() as u64);
        data.truncate(n);
        Ok((data, total))
    }

    pub async fn get_range(&self, key: &str, offset: u64, len: u64) -> anyhow::Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let req = self.request(reqwest::Method::GET, key, None)?.header(
            reqwest::header::RANGE,
            format!("bytes={offset}-{}", offset + len - 1),
        );
        let r = Self::check(req.send().await?, &format!("GET {key}")).await?;
        // a store that ignores Range answers 200 with the whole object
        let whole = r.status() != reqwest::StatusCode::PARTIAL_CONTENT;
        if whole && offset > 0 {
            anyhow::bail!(
                "GET {key}: the object store ignored the Range header ({})",
                r.status()
            );
        }
        let mut data = r.bytes().await?.to_vec();
        data.truncate(len as usize);
        Ok(data)
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let r = self
            .request(reqwest::Method::DELETE, key, None)?
            .send()
            .await?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        Self::check(r, &format!("DELETE {key}")).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // test case 2
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // test case 6: a key longer than the block
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn derives_the_documented_signing_key() {
        // AWS General Reference, "Examples of how to derive a signing key for Signature
        // Version 4"
        let k = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn signs_the_aws_documentation_example() {
        // "GET Object" example of the S3 SigV4 documentation, reduced to the headers signed
        // here (host, x-amz-content-sha256, x-amz-date): the signing key derivation and the
        // string to sign are the documented ones.
        let auth = authorization(
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "20130524T000000Z",
            "us-east-1",
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
        ));
        assert_eq!(
            amz_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600)),
            "20130524T000000Z"
        );
        assert_eq!(uri_encode("a b/c"), "a%20b%2Fc");
    }
}
