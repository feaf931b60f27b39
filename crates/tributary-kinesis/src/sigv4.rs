//! AWS Signature Version 4 verification for the Kinesis endpoint (service `kinesis`), in both
//! forms: the `Authorization` header and the query string (`X-Amz-Algorithm=AWS4-HMAC-SHA256`,
//! `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-SignedHeaders`, `X-Amz-Signature`). The node
//! rebuilds the canonical request from what it received, signs it with the secret it holds for
//! the access key, and compares in constant time. Requests more than [`MAX_SKEW`] away from the
//! node's clock are refused. Session tokens (`X-Amz-Security-Token`) are accepted as part of the
//! signed request; the node does not issue or check them.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::error::{KinesisError, SIGNATURE_MISMATCH};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's X-Amz-Date may be from the node's clock (AWS: 15 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The service name in the credential scope.
pub const SERVICE: &str = "kinesis";
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Characters SigV4 leaves unencoded: `A-Z a-z 0-9 - _ . ~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

type HmacSha256 = Hmac<Sha256>;

/// Access key id → secret access key.
#[derive(Clone, Default)]
pub struct Credentials {
    keys: HashMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Credentials")
            .field("access_key_ids", &ids)
            .finish()
    }
}

/// Where a [`Verifier`] finds the secret of an access key.
pub trait SecretSource {
    fn secret(&self, access_key_id: &str) -> Option<String>;
}

impl SecretSource for Credentials {
    fn secret(&self, access_key_id: &str) -> Option<String> {
        self.keys.get(access_key_id).cloned()
    }
}

impl Credentials {
    /// Every access key id and secret.
    pub fn pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.keys
            .iter()
            .map(|(id, secret)| (id.clone(), secret.clone()))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn insert(&mut self, access_key_id: &str, secret: &str) -> Result<(), String> {
        if access_key_id.is_empty() || secret.is_empty() {
            return Err("an access key needs a non-empty id and secret".to_string());
        }
        if access_key_id.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
            return Err(format!(
                "access key id '{access_key_id}' contains whitespace, '/' or ':'"
            ));
        }
        self.keys
            .insert(access_key_id.to_string(), secret.to_string());
        Ok(())
    }

    /// Adds `ACCESS_KEY_ID:SECRET_ACCESS_KEY`.
    pub fn insert_pair(&mut self, pair: &str) -> Result<(), String> {
        let (id, secret) = pair.split_once(':').ok_or_else(|| {
            "an access key is given as ACCESS_KEY_ID:SECRET_ACCESS_KEY".to_string()
        })?;
        self.insert(id.trim(), secret.trim())
    }

    /// Reads keys from a file in the AWS shared credentials format (`[profile]` sections with
    /// `aws_access_key_id` and `aws_secret_access_key`, so `~/.aws/credentials` works), or with
    /// one `ACCESS_KEY_ID:SECRET_ACCESS_KEY` per line. `#` and `;` start comments.
    pub fn load_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        self.parse_file(&text)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn parse_file(&mut self, text: &str) -> Result<(), String> {
        /// A profile's keys so far.
        #[derive(Default)]
        struct Profile {
            id_opt: Option<String>,
            secret_opt: Option<String>,
        }
        fn finish(profile: Profile, pairs: &mut Vec<(String, String)>) -> Result<(), String> {
            match (profile.id_opt, profile.secret_opt) {
                (Some(id), Some(secret)) => {
                    pairs.push((id, secret));
                    Ok(())
                }
                (None, None) => Ok(()),
                _ => Err("a profile needs both aws_access_key_id and aws_secret_access_key".into()),
            }
        }
        let mut pairs = Vec::new();
        let mut profile = Profile::default();
        for (number, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let at = |e: String| format!("line {}: {e}", number + 1);
            if line.starts_with('[') {
                finish(std::mem::take(&mut profile), &mut pairs).map_err(at)?;
            } else if let Some((key, value)) = line.split_once('=') {
                match key.trim() {
                    "aws_access_key_id" => profile.id_opt = Some(value.trim().to_string()),
                    "aws_secret_access_key" => profile.secret_opt = Some(value.trim().to_string()),
                    _ => {}
                }
            } else if let Some((id, secret)) = line.split_once(':') {
                pairs.push((id.trim().to_string(), secret.trim().to_string()));
            } else {
                return Err(at(
                    "expected ACCESS_KEY_ID:SECRET_ACCESS_KEY or a [profile] section".into(),
                ));
            }
        }
        finish(profile, &mut pairs)?;
        for (id, secret) in pairs {
            self.insert(&id, &secret)?;
        }
        Ok(())
    }
}

/// What the verifier needs of a request.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, if any.
    pub query_opt: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The `:authority` of an HTTP/2 request, used for `host` when there is no Host header.
    pub authority_opt: Option<&'a str>,
    pub body: &'a [u8],
}

/// Verifies requests signed for one region against a set of access keys.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub region: String,
    pub credentials: Credentials,
}

/// The parts of a signature, from the header or the query string.
struct Signature {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    terminator: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    expires_opt: Option<u64>,
}

impl Verifier {
    /// The access key id of a correctly signed request.
    pub fn verify(&self, request: &Request<'_>, now: SystemTime) -> Result<String, KinesisError> {
        self.verify_with(request, now, &self.credentials)
    }

    /// [`Verifier::verify`] against another source of secrets (the cluster's users).
    pub fn verify_with(
        &self,
        request: &Request<'_>,
        now: SystemTime,
        secrets: &dyn SecretSource,
    ) -> Result<String, KinesisError> {
        let query = parse_query(request.query_opt.unwrap_or(""));
        let header_opt = request
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let query_algorithm = query.iter().any(|(k, _)| k == "X-Amz-Algorithm");
        let signature = match (header_opt, query_algorithm) {
            (None, false) => return Err(KinesisError::missing_authentication_token()),
            (Some(_), true) => {
                return Err(KinesisError::invalid_signature(
                    "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
                ));
            }
            (Some(header), false) => parse_header(&header, request.headers)?,
            (None, true) => parse_query_signature(&query)?,
        };
        self.check_scope(&signature)?;
        let secret = secrets
            .secret(&signature.access_key_id)
            .ok_or_else(KinesisError::unrecognized_client)?;
        check_time(&signature, now)?;

        let canonical = canonical_request(request, &query, &signature)?;
        let scope = format!(
            "{}/{}/{}/{}",
            signature.date, signature.region, signature.service, signature.terminator
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{scope}\n{}",
            signature.amz_date,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = signing_key(
            &secret,
            &signature.date,
            &signature.region,
            &signature.service,
        );
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(string_to_sign.as_bytes());
        let provided = hex::decode(&signature.signature)
            .map_err(|_| KinesisError::invalid_signature(SIGNATURE_MISMATCH))?;
        mac.verify_slice(&provided)
            .map_err(|_| KinesisError::invalid_signature(SIGNATURE_MISMATCH))?;
        Ok(signature.access_key_id)
    }

    fn check_scope(&self, signature: &Signature) -> Result<(), KinesisError> {
        if signature.terminator != "aws4_request" {
            return Err(KinesisError::invalid_signature(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
                signature.terminator
            )));
        }
        if signature.service != SERVICE {
            return Err(KinesisError::invalid_signature(format!(
                "Credential should be scoped to correct service: '{SERVICE}'."
            )));
        }
        if signature.region != self.region {
            return Err(KinesisError::invalid_signature(format!(
                "Credential should be scoped to a valid region, not '{}'. This cluster serves '{}'.",
                signature.region, self.region
            )));
        }
        if !signature.amz_date.starts_with(&signature.date) {
            return Err(KinesisError::invalid_signature(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                signature.date,
                signature.amz_date.get(..8).unwrap_or(""),
                signature.amz_date
            )));
        }
        Ok(())
    }
}

/// `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
fn parse_header(header: &str, headers: &HeaderMap) -> Result<Signature, KinesisError> {
    let Some(rest) = header.strip_prefix(ALGORITHM) else {
        return Err(KinesisError::incomplete_signature(format!(
            "Unsupported Authorization Type; only {ALGORITHM} is accepted. Authorization={header}"
        )));
    };
    let mut params: HashMap<&str, &str> = HashMap::new();
    for part in rest.split(',') {
        if let Some((key, value)) = part.trim().split_once('=') {
            params.insert(key.trim(), value.trim());
        }
    }
    let amz_date_opt = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut missing = Vec::new();
    for name in ["Credential", "Signature", "SignedHeaders"] {
        if !params.contains_key(name) {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    if amz_date_opt.is_none() {
        missing.push("Authorization header requires existence of a 'X-Amz-Date' header.".into());
    }
    if !missing.is_empty() {
        return Err(KinesisError::incomplete_signature(format!(
            "{} Authorization={header}",
            missing.join(" ")
        )));
    }
    signature_from_parts(
        params["Credential"],
        params["SignedHeaders"],
        params["Signature"],
        amz_date_opt.unwrap_or_default(),
        None,
    )
}

fn parse_query_signature(query: &[(String, String)]) -> Result<Signature, KinesisError> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(KinesisError::incomplete_signature(format!(
            "X-Amz-Algorithm only supports {ALGORITHM}"
        )));
    }
    let mut missing = Vec::new();
    for name in [
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
        "X-Amz-Date",
    ] {
        if get(name).is_none() {
            missing.push(format!(
                "AWS query-string parameters must include '{name}'."
            ));
        }
    }
    if !missing.is_empty() {
        return Err(KinesisError::incomplete_signature(missing.join(" ")));
    }
    let expires_opt = match get("X-Amz-Expires") {
        Some(text) => Some(text.parse().map_err(|_| {
            KinesisError::incomplete_signature(format!(
                "X-Amz-Expires must be a number of seconds, not '{text}'"
            ))
        })?),
        None => None,
    };
    signature_from_parts(
        get("X-Amz-Credential").unwrap_or_default(),
        get("X-Amz-SignedHeaders").unwrap_or_default(),
        get("X-Amz-Signature").unwrap_or_default(),
        get("X-Amz-Date").unwrap_or_default().to_string(),
        expires_opt,
    )
}

fn signature_from_parts(
    credential: &str,
    signed_headers: &str,
    signature: &str,
    amz_date: String,
    expires_opt: Option<u64>,
) -> Result<Signature, KinesisError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts.as_slice() else {
        return Err(KinesisError::incomplete_signature(format!(
            "Credential should have 5 slash-separated parts (ACCESS_KEY_ID/YYYYMMDD/region/service/aws4_request), not '{credential}'."
        )));
    };
    let signed_headers: Vec<String> = signed_headers
        .split(';')
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if signed_headers.is_empty() {
        return Err(KinesisError::incomplete_signature(
            "SignedHeaders must name at least the host header.",
        ));
    }
    Ok(Signature {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        terminator: terminator.to_string(),
        signed_headers,
        signature: signature.to_string(),
        amz_date,
        expires_opt,
    })
}

fn check_time(signature: &Signature, now: SystemTime) -> Result<(), KinesisError> {
    let signed_at = NaiveDateTime::parse_from_str(&signature.amz_date, AMZ_DATE_FORMAT)
        .map_err(|_| {
            KinesisError::incomplete_signature(format!(
                "X-Amz-Date must be in the ISO-8601 basic format YYYYMMDD'T'HHMMSS'Z', not '{}'.",
                signature.amz_date
            ))
        })?
        .and_utc();
    let now: DateTime<Utc> = DateTime::<Utc>::from(now);
    let skew = chrono::Duration::from_std(MAX_SKEW).expect("15 minutes fits");
    let format = |t: DateTime<Utc>| t.format(AMZ_DATE_FORMAT).to_string();
    if signed_at < now - skew {
        return Err(KinesisError::invalid_signature(format!(
            "Signature expired: {} is now earlier than {} ({} - 15 min.)",
            signature.amz_date,
            format(now - skew),
            format(now)
        )));
    }
    if signed_at > now + skew {
        return Err(KinesisError::invalid_signature(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            signature.amz_date,
            format(now + skew),
            format(now)
        )));
    }
    if let Some(expires) = signature.expires_opt {
        let expires = chrono::Duration::seconds(expires.min(7 * 24 * 3600) as i64);
        if now > signed_at + expires {
            return Err(KinesisError::invalid_signature(format!(
                "Signature expired: {} plus X-Amz-Expires is earlier than {}",
                signature.amz_date,
                format(now)
            )));
        }
    }
    Ok(())
}

/// `key=value` pairs of a raw query string, decoded.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(key), decode(value))
        })
        .collect()
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// The canonical URI of a non-S3 service: the normalized path, each segment encoded again.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut uri: String = segments.iter().map(|s| format!("/{}", encode(s))).collect();
    if uri.is_empty() || (path.ends_with('/') && !segments.is_empty()) {
        uri.push('/');
    }
    uri
}

fn canonical_request(
    request: &Request<'_>,
    query: &[(String, String)],
    signature: &Signature,
) -> Result<String, KinesisError> {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    pairs.sort();
    let canonical_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let mut canonical_headers = String::new();
    for name in &signature.signed_headers {
        let values: Vec<String> = request
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let value = if values.is_empty() && name == "host" {
            request.authority_opt.unwrap_or_default().to_string()
        } else if values.is_empty() {
            return Err(KinesisError::invalid_signature(format!(
                "The signed header '{name}' is not in the request. {SIGNATURE_MISMATCH}"
            )));
        } else {
            values.join(",")
        };
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }

    let body_hash = hex::encode(Sha256::digest(request.body));
    let payload_hash = match request
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
    {
        Some(declared) if declared != body_hash && declared != "UNSIGNED-PAYLOAD" => {
            return Err(KinesisError::invalid_signature(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
        Some(declared) => declared.to_string(),
        None => body_hash,
    };
    Ok(format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{}\n{payload_hash}",
        request.method,
        canonical_uri(request.path),
        signature.signed_headers.join(";"),
    ))
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, "aws4_request"] {
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(part.as_bytes());
        key = mac.finalize().into_bytes().to_vec();
    }
    key
}

/// Signs a request the way an AWS SDK does; for this crate's tests and Tributary's own tools.
pub fn sign(
    request: &Request<'_>,
    access_key_id: &str,
    secret: &str,
    region: &str,
    at: SystemTime,
) -> String {
    let amz_date = DateTime::<Utc>::from(at)
        .format(AMZ_DATE_FORMAT)
        .to_string();
    let mut signed_headers: Vec<String> = request
        .headers
        .keys()
        .map(|k| k.as_str().to_string())
        .collect();
    signed_headers.sort();
    signed_headers.dedup();
    let signature = Signature {
        access_key_id: access_key_id.to_string(),
        date: amz_date[..8].to_string(),
        region: region.to_string(),
        service: SERVICE.to_string(),
        terminator: "aws4_request".to_string(),
        signed_headers,
        signature: String::new(),
        amz_date: amz_date.clone(),
        expires_opt: None,
    };
    let query = parse_query(request.query_opt.unwrap_or(""));
    let canonical = canonical_request(request, &query, &signature).expect("signed headers exist");
    let scope = format!("{}/{region}/{SERVICE}/aws4_request", &amz_date[..8]);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(secret, &amz_date[..8], region, SERVICE);
    let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={}",
        signature.signed_headers.join(";"),
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// AWS' published SigV4 example (the `get-vanilla` case of the SigV4 test suite):
    /// AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, service "service", us-east-1,
    /// 20150830T123600Z.
    #[test]
    fn the_published_aws_test_vector_verifies() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
        );
        let request = Request {
            method: "GET",
            path: "/",
            query_opt: None,
            headers: &headers,
            authority_opt: None,
            body: b"",
        };
        let query = parse_query("");
        let signature = parse_header(headers["authorization"].to_str().unwrap(), &headers).unwrap();
        let canonical = canonical_request(&request, &query, &signature).unwrap();
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut mac = HmacSha256::new_from_slice(&key).unwrap();
        mac.update(string_to_sign.as_bytes());
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    fn verifier() -> Verifier {
        let mut credentials = Credentials::default();
        credentials.insert("AKIDTEST", "secret/key+1").unwrap();
        Verifier {
            region: "us-east-1".into(),
            credentials,
        }
    }

    fn signed_headers(body: &[u8], secret: &str, at: SystemTime) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:4567"));
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("Kinesis_20131202.ListStreams"),
        );
        let amz_date = DateTime::<Utc>::from(at)
            .format(AMZ_DATE_FORMAT)
            .to_string();
        headers.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
        let authorization = sign(
            &Request {
                method: "POST",
                path: "/",
                query_opt: None,
                headers: &headers,
                authority_opt: None,
                body,
            },
            "AKIDTEST",
            secret,
            "us-east-1",
            at,
        );
        headers.insert(
            "authorization",
            HeaderValue::from_str(&authorization).unwrap(),
        );
        headers
    }

    fn verify(headers: &HeaderMap, body: &[u8], now: SystemTime) -> Result<String, KinesisError> {
        verifier().verify(
            &Request {
                method: "POST",
                path: "/",
                query_opt: None,
                headers,
                authority_opt: None,
                body,
            },
            now,
        )
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_breaks_it() {
        let now = SystemTime::now();
        let headers = signed_headers(b"{}", "secret/key+1", now);
        assert_eq!(verify(&headers, b"{}", now).unwrap(), "AKIDTEST");
        // A different body.
        let error = verify(&headers, b"{\"Limit\":1}", now).unwrap_err();
        assert_eq!(error.name, "InvalidSignatureException");
        // A different signed header.
        let mut changed = headers.clone();
        changed.insert(
            "x-amz-target",
            HeaderValue::from_static("Kinesis_20131202.DeleteStream"),
        );
        assert_eq!(
            verify(&changed, b"{}", now).unwrap_err().name,
            "InvalidSignatureException"
        );
        // The wrong secret.
        let wrong = signed_headers(b"{}", "not the secret", now);
        assert_eq!(
            verify(&wrong, b"{}", now).unwrap_err().message,
            SIGNATURE_MISMATCH
        );
    }

    #[test]
    fn skew_beyond_fifteen_minutes_is_refused_both_ways() {
        let now = SystemTime::now();
        let headers = signed_headers(b"", "secret/key+1", now);
        assert!(verify(&headers, b"", now + Duration::from_secs(14 * 60)).is_ok());
        let late = verify(&headers, b"", now + Duration::from_secs(16 * 60)).unwrap_err();
        assert!(late.message.starts_with("Signature expired"), "{late}");
        let early = verify(&headers, b"", now - Duration::from_secs(16 * 60)).unwrap_err();
        assert!(
            early.message.starts_with("Signature not yet current"),
            "{early}"
        );
    }

    #[test]
    fn missing_incomplete_and_unknown_credentials_get_their_aws_names() {
        let now = SystemTime::now();
        let empty = HeaderMap::new();
        assert_eq!(
            verify(&empty, b"", now).unwrap_err().name,
            "MissingAuthenticationTokenException"
        );
        let mut incomplete = HeaderMap::new();
        incomplete.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request",
            ),
        );
        let error = verify(&incomplete, b"", now).unwrap_err();
        assert_eq!(error.name, "IncompleteSignatureException");
        assert!(error.message.contains("'Signature'"), "{error}");
        let mut unknown = signed_headers(b"", "secret/key+1", now);
        let text = unknown["authorization"]
            .to_str()
            .unwrap()
            .replace("AKIDTEST", "AKIDOTHER");
        unknown.insert("authorization", HeaderValue::from_str(&text).unwrap());
        assert_eq!(
            verify(&unknown, b"", now).unwrap_err().name,
            "UnrecognizedClientException"
        );
        let mut other_region = signed_headers(b"", "secret/key+1", now);
        let text = other_region["authorization"]
            .to_str()
            .unwrap()
            .replace("us-east-1", "eu-west-1");
        other_region.insert("authorization", HeaderValue::from_str(&text).unwrap());
        let error = verify(&other_region, b"", now).unwrap_err();
        assert!(error.message.contains("valid region"), "{error}");
    }

    #[test]
    fn the_query_string_form_verifies() {
        let now = SystemTime::now();
        let amz_date = DateTime::<Utc>::from(now)
            .format(AMZ_DATE_FORMAT)
            .to_string();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:4567"));
        let scope = format!("AKIDTEST/{}/us-east-1/kinesis/aws4_request", &amz_date[..8]);
        let unsigned_query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={amz_date}&X-Amz-Expires=300&X-Amz-SignedHeaders=host",
            encode(&scope)
        );
        let request = |query: &str| -> Result<String, KinesisError> {
            verifier().verify(
                &Request {
                    method: "POST",
                    path: "/",
                    query_opt: Some(query),
                    headers: &headers,
                    authority_opt: None,
                    body: b"{}",
                },
                now,
            )
        };
        // Compute the signature the way a client would: the same canonical request.
        let signature = Signature {
            access_key_id: "AKIDTEST".into(),
            date: amz_date[..8].to_string(),
            region: "us-east-1".into(),
            service: SERVICE.into(),
            terminator: "aws4_request".into(),
            signed_headers: vec!["host".into()],
            signature: String::new(),
            amz_date: amz_date.clone(),
            expires_opt: Some(300),
        };
        let canonical = canonical_request(
            &Request {
                method: "POST",
                path: "/",
                query_opt: Some(&unsigned_query),
                headers: &headers,
                authority_opt: None,
                body: b"{}",
            },
            &parse_query(&unsigned_query),
            &signature,
        )
        .unwrap();
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{}/us-east-1/kinesis/aws4_request\n{}",
            &amz_date[..8],
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = signing_key("secret/key+1", &amz_date[..8], "us-east-1", SERVICE);
        let mut mac = HmacSha256::new_from_slice(&key).unwrap();
        mac.update(string_to_sign.as_bytes());
        let signed_query = format!(
            "{unsigned_query}&X-Amz-Signature={}",
            hex::encode(mac.finalize().into_bytes())
        );
        assert_eq!(request(&signed_query).unwrap(), "AKIDTEST");
        let tampered = signed_query.replace("X-Amz-Expires=300", "X-Amz-Expires=301");
        assert_eq!(
            request(&tampered).unwrap_err().name,
            "InvalidSignatureException"
        );
    }

    #[test]
    fn credentials_files_in_aws_and_pair_formats_load() {
        let mut credentials = Credentials::default();
        credentials
            .parse_file(
                "# keys\n[default]\naws_access_key_id = AKID1\naws_secret_access_key = s1\n\n\
                 [ci]\naws_access_key_id=AKID2\naws_secret_access_key=s2\nregion = us-east-1\n",
            )
            .unwrap();
        assert_eq!(credentials.len(), 2);
        let mut pairs = Credentials::default();
        pairs
            .parse_file("AKID3:s3\n; comment\nAKID4: s4\n")
            .unwrap();
        assert_eq!(pairs.len(), 2);
        assert!(
            Credentials::default()
                .parse_file("[p]\naws_access_key_id = X\n")
                .is_err()
        );
        assert!(Credentials::default().parse_file("garbage\n").is_err());
        assert!(!format!("{credentials:?}").contains("s1"));
    }
}
