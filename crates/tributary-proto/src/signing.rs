//! How a gRPC call proves who sent it under `--auth required`: HMAC-SHA256 over the method,
//! the time and the access key id, keyed with the secret access key. The secret never travels;
//! the call carries the access key id, the time and the signature as metadata. The time bounds
//! a replay to [`MAX_SKEW_MS`], and the connection is TLS (a node refuses `--auth required`
//! without it), which also keeps message bodies from being altered.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Metadata keys of a signed call.
pub const ACCESS_KEY_ID: &str = "x-tributary-access-key-id";
pub const DATE: &str = "x-tributary-date";
pub const SIGNATURE: &str = "x-tributary-signature";
/// The signature scheme, the first line of the string to sign.
pub const ALGORITHM: &str = "TRIBUTARY1-HMAC-SHA256";
/// How far a call's time may be from the node's clock (as SigV4 allows).
pub const MAX_SKEW_MS: u64 = 5 * 60 * 1000;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, access_key_id: &str, date_ms: u64, path: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{ALGORITHM}\n{date_ms}\n{path}\n{access_key_id}").as_bytes());
    mac
}

/// The hex signature of a call to `path` (`/tributary.v1.Tributary/PutRecords`) at `date_ms`.
pub fn sign(secret: &str, access_key_id: &str, date_ms: u64, path: &str) -> String {
    hex::encode(
        mac(secret, access_key_id, date_ms, path)
            .finalize()
            .into_bytes(),
    )
}

/// Whether `signature` (hex) is that of the call, compared in constant time.
pub fn verify(
    secret: &str,
    access_key_id: &str,
    date_ms: u64,
    path: &str,
    signature: &str,
) -> bool {
    match hex::decode(signature) {
        Ok(bytes) => mac(secret, access_key_id, date_ms, path)
            .verify_slice(&bytes)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_call() {
        let path = "/tributary.v1.Tributary/PutRecord";
        let signature = sign("secret", "AKID", 1_000, path);
        assert!(verify("secret", "AKID", 1_000, path, &signature));
        assert!(!verify("other", "AKID", 1_000, path, &signature));
        assert!(!verify("secret", "AKID2", 1_000, path, &signature));
        assert!(!verify("secret", "AKID", 1_001, path, &signature));
        assert!(!verify(
            "secret",
            "AKID",
            1_000,
            "/tributary.v1.Tributary/DeleteStream",
            &signature
        ));
        assert!(!verify("secret", "AKID", 1_000, path, "zz"));
    }
}
