//! IAM policy documents from a hostile client (PutPolicy): the input is split on NUL bytes into
//! the document, an action and a resource. Parsing answers a document or a typed error, never a
//! panic; evaluation always decides; every pattern matches itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary_kinesis::policy::{Decision, PolicyDocument, evaluate, wildcard_match};

fuzz_target!(|input: &[u8]| {
    let mut parts = input.splitn(3, |b| *b == 0);
    let document = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let action = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let resource = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    assert!(wildcard_match(&resource, &resource));
    assert!(wildcard_match("*", &resource));
    let Ok(policy) = PolicyDocument::parse(&document) else {
        return;
    };
    let decision = evaluate([&policy], &action, &resource);
    // No policy never allows; a second copy of the same policy changes nothing.
    assert_eq!(evaluate([], &action, &resource), Decision::ImplicitDeny);
    assert_eq!(evaluate([&policy, &policy], &action, &resource), decision);
});
