//! Web Push cryptography: the server's VAPID key and signed JWT (RFC 8292), and message
//! encryption with `aes128gcm` for a browser's push subscription (RFC 8291, RFC 8188), all
//! with `ring`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use ring::{aead, agreement, hkdf};

/// Record size announced in the header (one record carries the whole message).
const RECORD_SIZE: u32 = 4096;
/// Longest cleartext a push may carry (a record less its overhead).
pub const MAX_PLAINTEXT: usize = 3993;

/// The server's VAPID key pair.
pub struct Vapid {
    pair: EcdsaKeyPair,
}

/// Why a push could not be prepared.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The stored VAPID key does not parse.
    #[error("the VAPID key is not a P-256 PKCS#8 key")]
    BadKey,
    /// The subscription's keys are not a P-256 point and a 16-byte secret.
    #[error("the subscription's keys are not valid")]
    BadSubscription,
    /// The message is larger than one record.
    #[error("the message is too long for a push")]
    TooLong,
}

impl Vapid {
    /// A new key, as the PKCS#8 document to store.
    pub fn generate() -> Vec<u8> {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map(|doc| doc.as_ref().to_vec())
            .expect("the system random source works")
    }

    /// The key stored as `pkcs8`.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Vapid, PushError> {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map(|pair| Vapid { pair })
        .map_err(|_| PushError::BadKey)
    }

    /// The public key, uncompressed (65 bytes), base64url: what browsers take as their
    /// `applicationServerKey`.
    pub fn public_key(&self) -> String {
        B64URL.encode(self.pair.public_key().as_ref())
    }

    /// `Authorization: vapid t=<JWT>, k=<public key>` for a push to an endpoint of origin
    /// `audience`, valid until `expires` (seconds since the epoch), naming `subject` (a
    /// `mailto:` or `https:` contact).
    pub fn authorization(&self, audience: &str, expires: u64, subject: &str) -> String {
        let header = B64URL.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": audience, "exp": expires, "sub": subject });
        let claims = B64URL.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signed.as_bytes())
            .expect("signing with a valid key works");
        format!(
            "vapid t={signed}.{}, k={}",
            B64URL.encode(signature.as_ref()),
            self.public_key()
        )
    }
}

/// An HKDF output length.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    prk.expand(info, Len(n))
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF lengths are small");
    out
}

/// The content key and nonce of a message, from the ECDH secret, the subscription's
/// `auth` secret, both public keys and the salt (RFC 8291 section 3.4).
fn keys(
    ecdh: &[u8],
    auth: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let prk_key = hkdf::Salt::new(hkdf::HKDF_SHA256, auth).extract(ecdh);
    let ikm = expand(&prk_key, &[b"WebPush: info\0", ua_public, as_public], 32);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&ikm);
    let cek = expand(&prk, &[b"Content-Encoding: aes128gcm\0"], 16);
    let nonce = expand(&prk, &[b"Content-Encoding: nonce\0"], 12);
    (cek, nonce)
}

/// Encrypt `plaintext` for the subscription with public key `p256dh` (65 bytes, uncompressed)
/// and secret `auth` (16 bytes): the `aes128gcm` body to POST to its endpoint.
pub fn encrypt(p256dh: &[u8], auth: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, PushError> {
    if p256dh.len() != 65 || p256dh[0] != 4 || auth.len() != 16 {
        return Err(PushError::BadSubscription);
    }
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(PushError::TooLong);
    }
    let rng = SystemRandom::new();
    let mine = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
        .map_err(|_| PushError::BadSubscription)?;
    let as_public = mine
        .compute_public_key()
        .map_err(|_| PushError::BadSubscription)?;
    let as_public = as_public.as_ref().to_vec();
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, p256dh);
    let ecdh = agreement::agree_ephemeral(mine, &peer, |secret| secret.to_vec())
        .map_err(|_| PushError::BadSubscription)?;
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&rng, &mut salt).map_err(|_| PushError::BadSubscription)?;
    let (cek, nonce) = keys(&ecdh, auth, p256dh, &as_public, &salt);
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_128_GCM, &cek).expect("a 16-byte key"),
    );
    let mut record = plaintext.to_vec();
    record.push(2); // the last (and only) record, no padding
    let nonce = aead::Nonce::try_assume_unique_for_key(&nonce).expect("a 12-byte nonce");
    key.seal_in_place_append_tag(nonce, aead::Aad::empty(), &mut record)
        .map_err(|_| PushError::TooLong)?;
    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + record.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// The receiving side, as a browser does it: decrypt `body` with the subscription's private
/// key `ua_private` (its public key `ua_public`) and `auth` secret. For tests and tools;
/// `None` when anything does not check out.
pub fn decrypt(
    ua_private: agreement::EphemeralPrivateKey,
    ua_public: &[u8],
    auth: &[u8],
    body: &[u8],
) -> Option<Vec<u8>> {
    let salt = body.get(..16)?;
    let id_len = usize::from(*body.get(20)?);
    let as_public = body.get(21..21 + id_len)?;
    let record = body.get(21 + id_len..)?;
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, as_public);
    let ecdh = agreement::agree_ephemeral(ua_private, &peer, |s| s.to_vec()).ok()?;
    let (cek, nonce) = keys(&ecdh, auth, ua_public, as_public, salt);
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &cek).ok()?);
    let mut record = record.to_vec();
    let nonce = aead::Nonce::try_assume_unique_for_key(&nonce).ok()?;
    let plain = key
        .open_in_place(nonce, aead::Aad::empty(), &mut record)
        .ok()?;
    // Strip the padding: zeros after the delimiter (2 for the last record).
    let end = plain.iter().rposition(|&b| b != 0)?;
    (plain[end] == 2).then(|| plain[..end].to_vec())
}

/// Whether `token` (`header.claims.signature`) is an ES256 JWT signed by `public_key`
/// (65 bytes); its claims when it is. For tests and tools.
pub fn verify_jwt(token: &str, public_key: &[u8]) -> Option<serde_json::Value> {
    let (signed, signature) = token.rsplit_once('.')?;
    let signature = B64URL.decode(signature).ok()?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        public_key,
    );
    key.verify(signed.as_bytes(), &signature).ok()?;
    let (header, claims) = signed.split_once('.')?;
    let header: serde_json::Value = serde_json::from_slice(&B64URL.decode(header).ok()?).ok()?;
    if header["alg"] != "ES256" {
        return None;
    }
    serde_json::from_slice(&B64URL.decode(claims).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_decrypts_with_the_subscriptions_keys_only() {
        let rng = SystemRandom::new();
        let ua = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng).unwrap();
        let ua_public = ua.compute_public_key().unwrap().as_ref().to_vec();
        let auth = [7u8; 16];
        let body = encrypt(&ua_public, &auth, b"{\"body\":\"hello\"}").unwrap();
        assert_eq!(&body[16..20], &4096u32.to_be_bytes());
        assert_eq!(body[20], 65);
        assert_eq!(
            decrypt(ua, &ua_public, &auth, &body).unwrap(),
            b"{\"body\":\"hello\"}"
        );
        // Another secret does not open it.
        let ua = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng).unwrap();
        let other = ua.compute_public_key().unwrap().as_ref().to_vec();
        let body = encrypt(&other, &auth, b"x").unwrap();
        assert_eq!(decrypt(ua, &other, &[8u8; 16], &body), None);
        assert_eq!(
            encrypt(&other[..64], &auth, b"x"),
            Err(PushError::BadSubscription)
        );
        assert_eq!(
            encrypt(&other, &auth[..8], b"x"),
            Err(PushError::BadSubscription)
        );
        assert_eq!(
            encrypt(&other, &auth, &[b'a'; MAX_PLAINTEXT + 1]),
            Err(PushError::TooLong)
        );
    }

    #[test]
    fn the_vapid_jwt_verifies_with_the_public_key() {
        let vapid = Vapid::from_pkcs8(&Vapid::generate()).unwrap();
        let auth = vapid.authorization("https://push.example", 2_000_000_000, "mailto:a@b.c");
        let (t, k) = auth
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        assert_eq!(k, vapid.public_key());
        let public = B64URL.decode(k).unwrap();
        assert_eq!(public.len(), 65);
        let claims = verify_jwt(t, &public).unwrap();
        assert_eq!(claims["aud"], "https://push.example");
        assert_eq!(claims["exp"], 2_000_000_000u64);
        let other = Vapid::from_pkcs8(&Vapid::generate()).unwrap();
        let other = B64URL.decode(other.public_key()).unwrap();
        assert_eq!(verify_jwt(t, &other), None);
        assert!(Vapid::from_pkcs8(b"not a key").is_err());
    }
}
