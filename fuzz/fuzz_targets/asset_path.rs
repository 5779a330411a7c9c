//! The embedded-asset lookup behind `GET /<path>`: whatever the path, nothing outside the
//! embedded UI is served, and odd paths (`..`, `%`, `\`, control characters, empty segments)
//! are never looked up (nor the names under which text is stored gzipped).

#![no_main]

use hearth::assets::serve;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    // The request path as warp hands it over, and the same string as an If-None-Match value;
    // for a client that takes gzip and for one that does not.
    for gzip in [true, false] {
        if serve(path, Some(path), gzip, "").is_some() {
            let clean = path.is_empty()
                || (!path.starts_with('/')
                    && !path.ends_with(".gz")
                    && !path.contains(['%', '\\'])
                    && !path.chars().any(|c| c.is_ascii_control())
                    && path
                        .split('/')
                        .all(|s| !s.is_empty() && s != "." && s != ".."));
            assert!(clean, "served {path:?}");
        }
    }
});
