//! WebSocket client frames: `ClientMsg::parse` on arbitrary text, plus the body and nonce
//! checks a parsed `send` frame goes through and the emoji check of a `react` frame. None of
//! them may panic.

#![no_main]

use hearth::domain::{
    parse_body, valid_emoji, valid_nonce, BodyProblem, MAX_BODY_CHARS, MAX_EMOJI_CHARS,
};
use hearth::protocol::ClientMsg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 by the time the session sees them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = ClientMsg::parse(text);
    if let Ok(ClientMsg::React { emoji, .. }) = &parsed {
        if valid_emoji(emoji) {
            let n = emoji.chars().count();
            assert!((1..=MAX_EMOJI_CHARS).contains(&n));
            assert!(!emoji.chars().any(|c| c.is_whitespace() || c.is_control()));
        }
    }
    if let Ok(ClientMsg::Send { body, nonce, .. }) = parsed {
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
