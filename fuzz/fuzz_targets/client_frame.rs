//! WebSocket client frames: `ClientMsg::parse` on arbitrary text, plus the body and nonce
//! checks a parsed `send` frame goes through. None of them may panic.

#![no_main]

use hearth::domain::{parse_body, valid_nonce, BodyProblem, MAX_BODY_CHARS};
use hearth::protocol::ClientMsg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 by the time the session sees them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ClientMsg::Send { body, nonce, .. }) = ClientMsg::parse(text) {
        // The search-snippet markers are dropped before trimming.
        let cleaned = body.replace(['\u{2}', '\u{3}'], "");
        match parse_body(&body) {
            Ok(b) => {
                assert_eq!(b, cleaned.trim());
                assert!(!b.is_empty() && b.chars().count() <= MAX_BODY_CHARS);
            }
            Err(BodyProblem::Empty) => assert!(cleaned.trim().is_empty()),
            Err(BodyProblem::TooLong) => assert!(cleaned.trim().chars().count() > MAX_BODY_CHARS),
        }
        if let Some(n) = nonce {
            assert_eq!(valid_nonce(&n), n.chars().count() <= 64);
        }
    }
});
