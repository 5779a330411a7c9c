//! `chat.toml` as the server reads it: figment merges the text over the defaults and extracts
//! `Config`, which is then validated. Bad input must be an error, never a panic.

#![no_main]

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use hearth::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let figment = Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text));
    if let Ok(config) = figment.extract::<Config>() {
        if config.validate().is_ok() {
            assert!(config.bind_addr().is_ok());
            if let Some(url) = config.public_url() {
                assert!(hearth::config::parse_origin(url).is_ok());
            }
        }
    }
});
