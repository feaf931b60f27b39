//! SigV4 verification of a hostile request: the input is split on NUL bytes into the
//! Authorization header, X-Amz-Date, the query string, a path, and the body. Verification
//! answers Ok or a Kinesis error, never a panic; a random request never verifies.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tributary_kinesis::sigv4::{Credentials, Request, Verifier};

fuzz_target!(|input: &[u8]| {
    let mut parts = input.splitn(5, |b| *b == 0);
    let authorization = parts.next().unwrap_or_default();
    let amz_date = parts.next().unwrap_or_default();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        headers.insert("authorization", value);
    }
    if let Ok(value) = HeaderValue::from_bytes(amz_date) {
        headers.insert("x-amz-date", value);
    }
    headers.insert("host", HeaderValue::from_static("127.0.0.1:4567"));
    let mut credentials = Credentials::default();
    credentials
        .insert("AKIDFUZZ", "fuzz-secret")
        .expect("a valid key");
    let verifier = Verifier {
        region: "us-east-1".to_string(),
        credentials,
    };
    let request = Request {
        method: "POST",
        path: &path,
        query_opt: Some(&query),
        headers: &headers,
        authority_opt: None,
        body,
    };
    // 2026-12-02, so that well-formed dates are within the skew now and then.
    let now = UNIX_EPOCH + Duration::from_secs(1_796_200_000);
    let _ = verifier.verify(&request, now);
});
