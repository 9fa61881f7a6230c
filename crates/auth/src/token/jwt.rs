//! JWT tokens as etcd 3.4 makes them (with jwt-go): a JWS in compact form whose header is
//! `{"alg":"<method>","typ":"JWT"}` and whose claims are `{"exp":..,"revision":..,
//! "username":..}`, each base64url without padding, in Go's (sorted) key order.
//!
//! The framing is done here, the same for every method; only the signature differs:
//! - RSA, PSS and HMAC methods sign and verify with the `jsonwebtoken` crate's crypto (on
//!   aws-lc-rs);
//! - ECDSA methods (ES256, ES384, ES512) with aws-lc-rs directly: `jsonwebtoken` has no
//!   ES512 (ECDSA on P-521 with SHA-512), and its PEM reader refuses SEC1 `EC PRIVATE KEY`
//!   files, which etcd accepts. The signature is r‖s, each as wide as the curve's order
//!   (32, 48 or 66 bytes), as JWS wants and jwt-go makes.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self as ecdsa, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, ParsedPublicKey};
use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

use super::config::{JwtConfig, SignMethod, TokenConfigError};
use crate::{AuthError, AuthInfo};

/// etcd's default JWT `ttl`.
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(300);

/// How jwt-go reads a segment: Go's `base64.URLEncoding` after padding it, so padding is
/// optional and unused trailing bits are ignored.
const B64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The claims etcd puts in a token, in the order Go writes a map's keys.
#[derive(Serialize)]
struct Claims<'a> {
    exp: i64,
    revision: u64,
    username: &'a str,
}

/// The claims as read back. etcd's Go library reads JSON numbers as floats; so do we, so a
/// token from any etcd-compatible signer reads the same. `exp` may be absent (then the
/// token does not expire, as with etcd).
#[derive(Deserialize)]
struct ReadClaims {
    username: String,
    revision: f64,
    exp: Option<f64>,
}

/// The part of the header that is checked: the method must be the configured one.
#[derive(Deserialize)]
struct ReadHeader {
    alg: String,
}

/// The kind of key a method needs, and the algorithms that use it.
#[derive(Clone, Copy)]
enum Family {
    Rsa(Algorithm),
    Hmac(Algorithm),
    Ecdsa(
        &'static EcdsaSigningAlgorithm,
        &'static ecdsa::EcdsaVerificationAlgorithm,
    ),
}

fn family(m: SignMethod) -> Family {
    match m {
        SignMethod::Rs256 => Family::Rsa(Algorithm::RS256),
        SignMethod::Rs384 => Family::Rsa(Algorithm::RS384),
        SignMethod::Rs512 => Family::Rsa(Algorithm::RS512),
        SignMethod::Ps256 => Family::Rsa(Algorithm::PS256),
        SignMethod::Ps384 => Family::Rsa(Algorithm::PS384),
        SignMethod::Ps512 => Family::Rsa(Algorithm::PS512),
        SignMethod::Es256 => Family::Ecdsa(
            &ecdsa::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ecdsa::ECDSA_P256_SHA256_FIXED,
        ),
        SignMethod::Es384 => Family::Ecdsa(
            &ecdsa::ECDSA_P384_SHA384_FIXED_SIGNING,
            &ecdsa::ECDSA_P384_SHA384_FIXED,
        ),
        SignMethod::Es512 => Family::Ecdsa(
            &ecdsa::ECDSA_P521_SHA512_FIXED_SIGNING,
            &ecdsa::ECDSA_P521_SHA512_FIXED,
        ),
        SignMethod::Hs256 => Family::Hmac(Algorithm::HS256),
        SignMethod::Hs384 => Family::Hmac(Algorithm::HS384),
        SignMethod::Hs512 => Family::Hmac(Algorithm::HS512),
    }
}

/// A key that signs.
enum Signer {
    Jwt(EncodingKey, Algorithm),
    /// With the algorithm that verifies its signatures.
    Ecdsa(EcdsaKeyPair, &'static ecdsa::EcdsaVerificationAlgorithm),
}

/// A key that verifies.
enum Verifier {
    Jwt(DecodingKey, Algorithm),
    Ecdsa(ParsedPublicKey),
}

impl Signer {
    /// The signature of `msg`, base64url.
    fn sign(&self, msg: &[u8]) -> Result<String, String> {
        match self {
            Signer::Jwt(key, alg) => jsonwebtoken::crypto::sign(msg, key, *alg).map_err(|e| e.to_string()),
            Signer::Ecdsa(pair, _) => pair
                .sign(&aws_lc_rs::rand::SystemRandom::new(), msg)
                .map(|sig| URL_SAFE_NO_PAD.encode(sig.as_ref()))
                .map_err(|e| e.to_string()),
        }
    }

    /// The key that verifies this key's signatures (the private key's public half).
    fn public_half(&self) -> Result<Verifier, String> {
        match self {
            Signer::Jwt(key, alg) => Jwk::from_encoding_key(key, *alg)
                .and_then(|jwk| DecodingKey::from_jwk(&jwk))
                .map(|v| Verifier::Jwt(v, *alg))
                .map_err(|e| e.to_string()),
            Signer::Ecdsa(pair, alg) => ParsedPublicKey::new(*alg, pair.public_key().as_ref())
                .map(Verifier::Ecdsa)
                .map_err(|e| e.to_string()),
        }
    }
}

impl Verifier {
    /// Whether `sig` (decoded) is a signature of `msg` by this key.
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            Verifier::Jwt(key, alg) => {
                jsonwebtoken::crypto::verify(&URL_SAFE_NO_PAD.encode(sig), msg, key, *alg).unwrap_or(false)
            }
            Verifier::Ecdsa(key) => key.verify_sig(msg, sig).is_ok(),
        }
    }
}

/// Whether a signature made with `s` verifies with `v`.
fn probe(s: &Signer, v: &Verifier) -> bool {
    let msg = b"retcd key check";
    s.sign(msg)
        .ok()
        .and_then(|sig| URL_SAFE_NO_PAD.decode(sig).ok())
        .is_some_and(|sig| v.verify(msg, &sig))
}

/// Issues and verifies this member's JWTs.
pub struct JwtTokens {
    method: SignMethod,
    /// `None`: verify-only (only a public key was given).
    signing: Option<Signer>,
    verifying: Verifier,
    ttl: Duration,
}

impl std::fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtTokens")
            .field("method", &self.method)
            .field("verify_only", &self.signing.is_none())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn read_key(path: &Path) -> Result<Vec<u8>, TokenConfigError> {
    std::fs::read(path).map_err(|e| {
        TokenConfigError::InvalidAuthOpts(format!("failed to read key file {}: {e}", path.display()))
    })
}

fn bad(which: &str, detail: impl std::fmt::Display) -> TokenConfigError {
    TokenConfigError::InvalidKey {
        path: which.to_string(),
        detail: detail.to_string(),
    }
}

/// The first PEM block of `pem`, whatever its label, as jwt-go's `pem.Decode` takes it
/// (text before it is skipped; a file starting with `EC PARAMETERS` is refused, as by etcd).
fn first_pem_block(which: &str, pem: &[u8]) -> Result<Vec<u8>, TokenConfigError> {
    x509_parser::pem::parse_x509_pem(pem)
        .map(|(_, block)| block.contents)
        .map_err(|_| bad(which, "not a PEM encoded key"))
}

/// An ECDSA private key for `alg` from PEM: SEC1 (`EC PRIVATE KEY`) or PKCS#8 (`PRIVATE
/// KEY`), as jwt-go's `ParseECPrivateKeyFromPEM`.
fn ec_private_key(alg: &'static EcdsaSigningAlgorithm, pem: &[u8]) -> Result<EcdsaKeyPair, TokenConfigError> {
    let der = first_pem_block("priv-key", pem)?;
    EcdsaKeyPair::from_private_key_der(alg, &der).map_err(|e| {
        bad(
            "priv-key",
            format!("not a SEC1 or PKCS#8 EC private key on the method's curve ({e})"),
        )
    })
}

/// An ECDSA public key for `alg` from PEM: a SubjectPublicKeyInfo (`PUBLIC KEY`) or a
/// certificate's, as jwt-go's `ParseECPublicKeyFromPEM`.
fn ec_public_key(
    alg: &'static ecdsa::EcdsaVerificationAlgorithm,
    pem: &[u8],
) -> Result<ParsedPublicKey, TokenConfigError> {
    let der = first_pem_block("pub-key", pem)?;
    let spki = match x509_parser::parse_x509_certificate(&der) {
        Ok((_, cert)) => cert.public_key().raw.to_vec(),
        Err(_) => der,
    };
    ParsedPublicKey::new(alg, &spki).map_err(|e| {
        bad(
            "pub-key",
            format!("not an EC public key on the method's curve ({e})"),
        )
    })
}

/// Whether `pem` holds an EC public key on one of the curves the ES methods use.
fn is_ec_public_key(pem: &[u8]) -> bool {
    [
        &ecdsa::ECDSA_P256_SHA256_FIXED,
        &ecdsa::ECDSA_P384_SHA384_FIXED,
        &ecdsa::ECDSA_P521_SHA512_FIXED,
    ]
    .into_iter()
    .any(|alg| ec_public_key(alg, pem).is_ok())
}

impl JwtTokens {
    /// Reads the key files `cfg` names and builds the provider.
    pub fn from_config(cfg: &JwtConfig) -> Result<JwtTokens, TokenConfigError> {
        let private = cfg.priv_key.as_deref().map(read_key).transpose()?;
        let public = cfg.pub_key.as_deref().map(read_key).transpose()?;
        let name = |p: &Option<std::path::PathBuf>| {
            p.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
        };
        JwtTokens::from_keys(cfg.sign_method, private.as_deref(), public.as_deref(), cfg.ttl).map_err(|e| {
            match e {
                TokenConfigError::InvalidKey { path, detail } => TokenConfigError::InvalidKey {
                    path: if path == "priv-key" {
                        name(&cfg.priv_key)
                    } else {
                        name(&cfg.pub_key)
                    },
                    detail,
                },
                e => e,
            }
        })
    }

    /// Builds the provider from PEM keys (as etcd's `jwtOptions.Key`):
    /// - RSA and PS methods: a PKCS#1 or PKCS#8 private key and/or a public key;
    /// - ES methods: a SEC1 or PKCS#8 private key and/or a public key (or certificate) on
    ///   the method's curve (P-256, P-384, P-521);
    /// - HS methods: `private` is the shared secret, used as is; `public` is ignored.
    ///
    /// With only a public key the provider verifies but does not issue tokens. With both,
    /// they must belong together (`KeyMismatch`). With neither: `MissingKey`.
    pub fn from_keys(
        method: SignMethod,
        private: Option<&[u8]>,
        public: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<JwtTokens, TokenConfigError> {
        let (signing, verifying) = match family(method) {
            Family::Hmac(alg) => {
                let secret = private
                    .filter(|s| !s.is_empty())
                    .ok_or(TokenConfigError::MissingKey)?;
                (
                    Some(Signer::Jwt(EncodingKey::from_secret(secret), alg)),
                    Verifier::Jwt(DecodingKey::from_secret(secret), alg),
                )
            }
            Family::Rsa(alg) => {
                let signing = private
                    .map(EncodingKey::from_rsa_pem)
                    .transpose()
                    .map_err(|e| bad("priv-key", e))?;
                let verifying = public
                    .map(DecodingKey::from_rsa_pem)
                    .transpose()
                    .map_err(|e| bad("pub-key", e))?;
                pair_up(
                    signing.map(|s| Signer::Jwt(s, alg)),
                    verifying.map(|v| Verifier::Jwt(v, alg)),
                )?
            }
            Family::Ecdsa(sign_alg, verify_alg) => {
                let signing = private.map(|pem| ec_private_key(sign_alg, pem)).transpose()?;
                let verifying = public
                    .map(|pem| {
                        // a key on another curve than the private key's: etcd's words
                        ec_public_key(verify_alg, pem).map_err(|e| match signing {
                            Some(_) if is_ec_public_key(pem) => TokenConfigError::KeyMismatch,
                            _ => e,
                        })
                    })
                    .transpose()?;
                pair_up(
                    signing.map(|s| Signer::Ecdsa(s, verify_alg)),
                    verifying.map(Verifier::Ecdsa),
                )?
            }
        };
        Ok(JwtTokens {
            method,
            signing,
            verifying,
            ttl,
        })
    }

    pub fn sign_method(&self) -> SignMethod {
        self.method
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Only a public key: tokens can be verified here, not issued.
    pub fn is_verify_only(&self) -> bool {
        self.signing.is_none()
    }

    /// A token for `username` issued at auth `revision`, expiring `ttl` after `now` (whole
    /// Unix seconds, as etcd).
    pub fn sign_at(&self, username: &str, revision: u64, now: SystemTime) -> Result<String, AuthError> {
        let key = self.signing.as_ref().ok_or(AuthError::VerifyOnly)?;
        let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, self.method);
        let claims = serde_json::to_vec(&Claims {
            exp: unix_secs(now + self.ttl),
            revision,
            username,
        })
        .map_err(|e| AuthError::Internal(format!("failed to encode JWT claims: {e}")))?;
        let mut token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let sig = key
            .sign(token.as_bytes())
            .map_err(|e| AuthError::Internal(format!("failed to sign a JWT: {e}")))?;
        token.push('.');
        token.push_str(&sig);
        Ok(token)
    }

    /// The user and revision of a token whose signature checks out with this member's key
    /// and method and which has not expired at `now` (valid through its `exp` second).
    pub fn verify_at(&self, token: &str, now: SystemTime) -> Option<AuthInfo> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let h: ReadHeader = serde_json::from_slice(&B64_LENIENT.decode(header).ok()?).ok()?;
        if h.alg != self.method.as_str() {
            return None;
        }
        let signed = &token[..header.len() + 1 + claims.len()];
        if !self
            .verifying
            .verify(signed.as_bytes(), &B64_LENIENT.decode(sig).ok()?)
        {
            return None;
        }
        let c: ReadClaims = serde_json::from_slice(&B64_LENIENT.decode(claims).ok()?).ok()?;
        if let Some(exp) = c.exp
            && (!exp.is_finite() || (unix_secs(now) as f64) > exp.trunc())
        {
            return None;
        }
        if !(c.revision.is_finite() && c.revision >= 0.0) {
            return None;
        }
        Some(AuthInfo {
            username: c.username,
            revision: c.revision as u64,
        })
    }
}

/// The keys a provider ends up with: with a private key, its public half verifies unless a
/// public key is given, which must then belong to it; with only a public key, verify-only.
fn pair_up(
    signing: Option<Signer>,
    verifying: Option<Verifier>,
) -> Result<(Option<Signer>, Verifier), TokenConfigError> {
    match (signing, verifying) {
        (None, None) => Err(TokenConfigError::MissingKey),
        (None, Some(v)) => Ok((None, v)),
        (Some(s), Some(v)) => {
            if probe(&s, &v) {
                Ok((Some(s), v))
            } else {
                Err(TokenConfigError::KeyMismatch)
            }
        }
        (Some(s), None) => {
            let v = s.public_half().map_err(|e| bad("priv-key", e))?;
            if probe(&s, &v) {
                Ok((Some(s), v))
            } else {
                Err(bad("priv-key", "the key cannot sign for this method"))
            }
        }
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const RSA_KEY: &[u8] = include_bytes!("../../tests/data/rsa.key");
    const RSA_PUB: &[u8] = include_bytes!("../../tests/data/rsa.pub");
    const RSA_OTHER_KEY: &[u8] = include_bytes!("../../tests/data/rsa-other.key");
    const RSA_OTHER_PUB: &[u8] = include_bytes!("../../tests/data/rsa-other.pub");
    const EC256_KEY: &[u8] = include_bytes!("../../tests/data/ec256.key");
    const EC256_SEC1_KEY: &[u8] = include_bytes!("../../tests/data/ec256-sec1.key");
    const EC256_PUB: &[u8] = include_bytes!("../../tests/data/ec256.pub");
    const EC384_KEY: &[u8] = include_bytes!("../../tests/data/ec384.key");
    const EC384_PUB: &[u8] = include_bytes!("../../tests/data/ec384.pub");
    const EC521_KEY: &[u8] = include_bytes!("../../tests/data/ec521.key");
    const EC521_SEC1_KEY: &[u8] = include_bytes!("../../tests/data/ec521-sec1.key");
    const EC521_PUB: &[u8] = include_bytes!("../../tests/data/ec521.pub");
    const EC521_OTHER_KEY: &[u8] = include_bytes!("../../tests/data/ec521-other.key");
    const EC521_OTHER_PUB: &[u8] = include_bytes!("../../tests/data/ec521-other.pub");
    const HMAC_KEY: &[u8] = include_bytes!("../../tests/data/hmac.key");

    const TTL: Duration = Duration::from_secs(300);

    fn keys_for(m: SignMethod) -> (&'static [u8], Option<&'static [u8]>) {
        match m {
            SignMethod::Es256 => (EC256_KEY, Some(EC256_PUB)),
            SignMethod::Es384 => (EC384_KEY, Some(EC384_PUB)),
            SignMethod::Es512 => (EC521_KEY, Some(EC521_PUB)),
            _ => match family(m) {
                Family::Rsa(_) => (RSA_KEY, Some(RSA_PUB)),
                Family::Hmac(_) => (HMAC_KEY, None),
                Family::Ecdsa(..) => unreachable!("{m}"),
            },
        }
    }

    fn provider(m: SignMethod) -> JwtTokens {
        let (private, public) = keys_for(m);
        JwtTokens::from_keys(m, Some(private), public, TTL).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn b64(part: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(part).unwrap()
    }

    #[test]
    fn round_trip_with_every_method() {
        for m in SignMethod::ALL {
            let p = provider(m);
            assert!(!p.is_verify_only());
            let token = p.sign_at("alice", 42, at(1_000_000)).unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            assert_eq!(parts.len(), 3, "{m}");
            // etcd's bytes: Go writes a map's keys sorted
            let header = String::from_utf8(b64(parts[0])).unwrap();
            assert_eq!(header, format!(r#"{{"alg":"{m}","typ":"JWT"}}"#));
            let claims = String::from_utf8(b64(parts[1])).unwrap();
            assert_eq!(claims, r#"{"exp":1000300,"revision":42,"username":"alice"}"#);
            assert_eq!(
                p.verify_at(&token, at(1_000_000)),
                Some(AuthInfo {
                    username: "alice".into(),
                    revision: 42
                }),
                "{m}"
            );
        }
    }

    #[test]
    fn expiry_is_checked_against_the_given_clock() {
        let p = provider(SignMethod::Rs256);
        let token = p.sign_at("alice", 1, at(1_000)).unwrap();
        assert!(p.verify_at(&token, at(1_000 + 299)).is_some());
        assert!(
            p.verify_at(&token, at(1_000 + 300)).is_some(),
            "valid through the exp second"
        );
        assert_eq!(p.verify_at(&token, at(1_000 + 301)), None);
        // And the real clock: a token signed long ago is expired today.
        assert_eq!(p.verify_at(&token, SystemTime::now()), None);
        let fresh = p.sign_at("alice", 1, SystemTime::now()).unwrap();
        assert!(p.verify_at(&fresh, SystemTime::now()).is_some());
    }

    #[test]
    fn tampered_tokens_are_rejected() {
        let p = provider(SignMethod::Es256);
        let token = p.sign_at("alice", 1, at(1_000)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        // Claims changed to another user, signature kept.
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"username":"root","revision":1,"exp":1300}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(p.verify_at(&forged, at(1_000)), None);
        // A flipped signature character.
        let mut sig: Vec<char> = parts[2].chars().collect();
        sig[5] = if sig[5] == 'A' { 'B' } else { 'A' };
        let bad_sig = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            sig.into_iter().collect::<String>()
        );
        assert_eq!(p.verify_at(&bad_sig, at(1_000)), None);
        // Garbage and simple tokens.
        for t in ["", "abc.def", "a.b.c", "abcdefghijklmnop.12"] {
            assert_eq!(p.verify_at(t, at(1_000)), None, "{t}");
        }
    }

    #[test]
    fn tokens_of_another_key_or_method_are_rejected() {
        let mine = provider(SignMethod::Rs256);
        let other = JwtTokens::from_keys(SignMethod::Rs256, Some(RSA_OTHER_KEY), None, TTL).unwrap();
        let token = other.sign_at("root", 1, at(1_000)).unwrap();
        assert_eq!(mine.verify_at(&token, at(1_000)), None);
        // Same key, another algorithm: the method is fixed by configuration.
        let ps = provider(SignMethod::Ps256);
        let token = ps.sign_at("root", 1, at(1_000)).unwrap();
        assert_eq!(mine.verify_at(&token, at(1_000)), None);
        // An HMAC token made with the public key as secret (the classic confusion).
        let confused = JwtTokens::from_keys(SignMethod::Hs256, Some(RSA_PUB), None, TTL).unwrap();
        let token = confused.sign_at("root", 1, at(1_000)).unwrap();
        assert_eq!(mine.verify_at(&token, at(1_000)), None);
    }

    #[test]
    fn claims_without_exp_do_not_expire_and_bad_claims_are_rejected() {
        let p = provider(SignMethod::Hs256);
        let key = EncodingKey::from_secret(HMAC_KEY);
        let sign = |json: &str| {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &v, &key).unwrap()
        };
        let no_exp = sign(r#"{"username":"u","revision":3}"#);
        assert_eq!(
            p.verify_at(&no_exp, SystemTime::now()),
            Some(AuthInfo {
                username: "u".into(),
                revision: 3
            })
        );
        let float_rev = sign(r#"{"username":"u","revision":3.0,"exp":2000}"#);
        assert_eq!(p.verify_at(&float_rev, at(1_000)).map(|i| i.revision), Some(3));
        for bad in [
            r#"{"revision":3,"exp":2000}"#,
            r#"{"username":"u","exp":2000}"#,
            r#"{"username":7,"revision":3,"exp":2000}"#,
            r#"{"username":"u","revision":-1,"exp":2000}"#,
            r#"{"username":"u","revision":"3","exp":2000}"#,
            r#"{"username":"u","revision":3,"exp":"never"}"#,
        ] {
            assert_eq!(p.verify_at(&sign(bad), at(1_000)), None, "{bad}");
        }
    }

    #[test]
    fn verify_only_with_a_public_key() {
        let v = JwtTokens::from_keys(SignMethod::Rs256, None, Some(RSA_PUB), TTL).unwrap();
        assert!(v.is_verify_only());
        assert_eq!(v.sign_at("u", 1, at(1)), Err(AuthError::VerifyOnly));
        let token = provider(SignMethod::Rs256).sign_at("u", 1, at(1_000)).unwrap();
        assert!(v.verify_at(&token, at(1_000)).is_some());
    }

    #[test]
    fn private_key_alone_signs_and_verifies() {
        for (m, k) in [(SignMethod::Rs512, RSA_KEY), (SignMethod::Es384, EC384_KEY)] {
            let p = JwtTokens::from_keys(m, Some(k), None, TTL).unwrap();
            let token = p.sign_at("u", 1, at(1_000)).unwrap();
            assert!(p.verify_at(&token, at(1_000)).is_some(), "{m}");
        }
    }

    #[test]
    fn key_errors() {
        let err = |m, private, public| JwtTokens::from_keys(m, private, public, TTL).unwrap_err();
        assert_eq!(err(SignMethod::Rs256, None, None), TokenConfigError::MissingKey);
        assert_eq!(
            err(SignMethod::Hs256, None, Some(RSA_PUB)),
            TokenConfigError::MissingKey
        );
        assert_eq!(
            err(SignMethod::Hs256, Some(b""), None),
            TokenConfigError::MissingKey
        );
        assert_eq!(
            err(SignMethod::Rs256, Some(RSA_KEY), Some(RSA_OTHER_PUB)),
            TokenConfigError::KeyMismatch
        );
        assert_eq!(
            err(SignMethod::Es256, Some(EC256_KEY), Some(EC384_PUB)),
            TokenConfigError::KeyMismatch
        );
        assert!(matches!(
            err(SignMethod::Rs256, Some(b"not a pem"), None),
            TokenConfigError::InvalidKey { path, .. } if path == "priv-key"
        ));
        assert!(matches!(
            err(SignMethod::Es256, Some(RSA_KEY), None),
            TokenConfigError::InvalidKey { .. }
        ));
        assert!(matches!(
            err(SignMethod::Rs256, None, Some(EC256_PUB)),
            TokenConfigError::InvalidKey { path, .. } if path == "pub-key"
        ));
        // A P-384 key cannot sign ES256.
        assert!(matches!(
            err(SignMethod::Es256, Some(EC384_KEY), None),
            TokenConfigError::InvalidKey { .. }
        ));
    }

    #[test]
    fn from_config_reads_the_key_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let s = format!(
            "jwt,pub-key={},priv-key={},sign-method=RS256,ttl=10m",
            dir.join("rsa.pub").display(),
            dir.join("rsa.key").display()
        );
        let cfg = crate::TokenConfig::parse(&s).unwrap();
        let p = crate::TokenProvider::from_config(&cfg, Duration::from_secs(1)).unwrap();
        let crate::TokenProvider::Jwt(j) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(j.ttl(), Duration::from_secs(600));
        assert_eq!(j.sign_method(), SignMethod::Rs256);

        let missing = crate::TokenConfig::parse("jwt,priv-key=/nonexistent/k,sign-method=RS256").unwrap();
        assert!(matches!(
            crate::TokenProvider::from_config(&missing, TTL),
            Err(TokenConfigError::InvalidAuthOpts(d)) if d.contains("/nonexistent/k")
        ));

        let tmp = tempfile::tempdir().unwrap();
        let junk = tmp.path().join("junk.pem");
        std::fs::write(&junk, "junk").unwrap();
        let cfg =
            crate::TokenConfig::parse(&format!("jwt,priv-key={},sign-method=ES256", junk.display())).unwrap();
        assert!(matches!(
            crate::TokenProvider::from_config(&cfg, TTL),
            Err(TokenConfigError::InvalidKey { path, .. }) if path == junk.display().to_string()
        ));
    }

    #[test]
    fn sec1_ec_private_keys_are_read_as_by_etcd() {
        // etcd (jwt-go's ParseECPrivateKeyFromPEM) takes `EC PRIVATE KEY` as well as PKCS#8.
        let sec1 =
            JwtTokens::from_keys(SignMethod::Es256, Some(EC256_SEC1_KEY), Some(EC256_PUB), TTL).unwrap();
        let pkcs8 = provider(SignMethod::Es256);
        let token = sec1.sign_at("u", 1, at(1_000)).unwrap();
        assert!(pkcs8.verify_at(&token, at(1_000)).is_some());
        let token = pkcs8.sign_at("u", 1, at(1_000)).unwrap();
        assert!(sec1.verify_at(&token, at(1_000)).is_some());
    }

    #[test]
    fn ecdsa_signatures_are_fixed_width() {
        for (m, width) in [
            (SignMethod::Es256, 64),
            (SignMethod::Es384, 96),
            (SignMethod::Es512, 132),
        ] {
            let token = provider(m).sign_at("u", 1, at(1_000)).unwrap();
            let sig = token.rsplit('.').next().unwrap();
            assert_eq!(b64(sig).len(), width, "{m}");
        }
    }

    #[test]
    fn a_certificate_gives_the_public_key() {
        let key = rcgen::KeyPair::from_pem(std::str::from_utf8(EC256_KEY).unwrap()).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["jwt".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let v = JwtTokens::from_keys(SignMethod::Es256, None, Some(cert.pem().as_bytes()), TTL).unwrap();
        let token = provider(SignMethod::Es256).sign_at("u", 1, at(1_000)).unwrap();
        assert!(v.verify_at(&token, at(1_000)).is_some());
    }

    #[test]
    fn segments_are_read_as_go_reads_them() {
        let p = provider(SignMethod::Hs256);
        let token = p.sign_at("u", 1, at(1_000)).unwrap();
        // the signature's padding is optional (the other two segments are what is signed)
        let sig_len = token.len() - token.rfind('.').unwrap() - 1;
        assert_eq!(sig_len, 43, "HMAC-SHA256: 32 bytes");
        let padded = format!("{token}=");
        assert!(p.verify_at(&padded, at(1_000)).is_some());
        // a header naming another method, even with a valid signature for it
        let other = JwtTokens::from_keys(SignMethod::Hs512, Some(HMAC_KEY), None, TTL).unwrap();
        let token = other.sign_at("u", 1, at(1_000)).unwrap();
        assert_eq!(p.verify_at(&token, at(1_000)), None);
        // four segments
        assert_eq!(p.verify_at(&format!("{token}.x"), at(1_000)), None);
    }

    /// A token real etcd 3.4.23 issued with `--auth-token jwt,pub-key=ec521.pub,
    /// priv-key=ec521-sec1.key,sign-method=ES512,ttl=876000h` (root, auth revision 4).
    const ETCD_ES512_TOKEN: &str = "eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCJ9.eyJleHAiOjQ5NDg4NjcyMDMsInJldmlzaW9uIjo0LCJ1c2VybmFtZSI6InJvb3QifQ.AQfimzNNWZ6nYkIC5wx4MvKbagb-GtCa1fCFJ-0TqUnBl3xnB6VuM1-4FgULRlOwMegDj2GDw3pffvc_LfmKhHWSAE_T8Df_v5vI8AEDAqB59EjV7dRXOAZ6El-cLmT6WMjLVL7HVUShfcm2JWY0n4V-jtBGDqCY1mnjfdJdN0r0r9mz";

    #[test]
    fn es512_round_trip_with_pkcs8_and_sec1_keys() {
        let pkcs8 = provider(SignMethod::Es512);
        let sec1 =
            JwtTokens::from_keys(SignMethod::Es512, Some(EC521_SEC1_KEY), Some(EC521_PUB), TTL).unwrap();
        let private_only = JwtTokens::from_keys(SignMethod::Es512, Some(EC521_SEC1_KEY), None, TTL).unwrap();
        let verify_only = JwtTokens::from_keys(SignMethod::Es512, None, Some(EC521_PUB), TTL).unwrap();
        assert!(verify_only.is_verify_only());
        assert_eq!(verify_only.sign_at("u", 1, at(1)), Err(AuthError::VerifyOnly));
        for signer in [&pkcs8, &sec1, &private_only] {
            let token = signer.sign_at("alice", 7, at(1_000)).unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            assert_eq!(b64(parts[0]), br#"{"alg":"ES512","typ":"JWT"}"#);
            assert_eq!(b64(parts[1]), br#"{"exp":1300,"revision":7,"username":"alice"}"#);
            assert_eq!(b64(parts[2]).len(), 132, "r and s, 66 bytes each");
            for verifier in [&pkcs8, &sec1, &private_only, &verify_only] {
                assert_eq!(
                    verifier.verify_at(&token, at(1_000)),
                    Some(AuthInfo {
                        username: "alice".into(),
                        revision: 7
                    })
                );
            }
        }
        // ECDSA signatures are randomized: two tokens for the same claims differ
        assert_ne!(
            pkcs8.sign_at("alice", 7, at(1_000)).unwrap(),
            pkcs8.sign_at("alice", 7, at(1_000)).unwrap()
        );
    }

    #[test]
    fn es512_tokens_of_real_etcd_are_accepted() {
        let p = provider(SignMethod::Es512);
        assert_eq!(
            p.verify_at(ETCD_ES512_TOKEN, SystemTime::now()),
            Some(AuthInfo {
                username: "root".into(),
                revision: 4
            })
        );
        let other = JwtTokens::from_keys(SignMethod::Es512, None, Some(EC521_OTHER_PUB), TTL).unwrap();
        assert_eq!(other.verify_at(ETCD_ES512_TOKEN, SystemTime::now()), None);
    }

    #[test]
    fn es512_tampered_tokens_are_refused() {
        let p = provider(SignMethod::Es512);
        let token = p.sign_at("alice", 1, at(1_000)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"exp":1300,"revision":1,"username":"root"}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(p.verify_at(&forged, at(1_000)), None);
        let mut sig = b64(parts[2]);
        for i in [0, 65, 66, 131] {
            sig[i] ^= 1;
            let bad = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
            assert_eq!(p.verify_at(&bad, at(1_000)), None, "byte {i}");
            sig[i] ^= 1;
        }
        // r and s without their fixed width, or only one of them
        let short = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode(&sig[..131])
        );
        assert_eq!(p.verify_at(&short, at(1_000)), None);
        let half = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig[..66]));
        assert_eq!(p.verify_at(&half, at(1_000)), None);
        // the header says ES256: refused before any signature check
        let es256_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
        let relabeled = format!("{}.{}.{}", es256_header, parts[1], parts[2]);
        assert_eq!(p.verify_at(&relabeled, at(1_000)), None);
        // and the untouched token still passes
        assert!(p.verify_at(&token, at(1_000)).is_some());
    }

    #[test]
    fn es512_tokens_of_another_key_are_refused() {
        let mine = provider(SignMethod::Es512);
        let other = JwtTokens::from_keys(SignMethod::Es512, Some(EC521_OTHER_KEY), None, TTL).unwrap();
        let token = other.sign_at("root", 1, at(1_000)).unwrap();
        assert_eq!(mine.verify_at(&token, at(1_000)), None);
        assert!(other.verify_at(&token, at(1_000)).is_some());
        // ES256 and ES384 tokens, whatever their keys
        for m in [SignMethod::Es256, SignMethod::Es384] {
            let token = provider(m).sign_at("root", 1, at(1_000)).unwrap();
            assert_eq!(mine.verify_at(&token, at(1_000)), None, "{m}");
        }
    }

    #[test]
    fn es512_tokens_expire() {
        let p = provider(SignMethod::Es512);
        let token = p.sign_at("alice", 1, at(1_000)).unwrap();
        assert!(
            p.verify_at(&token, at(1_300)).is_some(),
            "valid through its exp second"
        );
        assert_eq!(p.verify_at(&token, at(1_301)), None);
        assert_eq!(p.verify_at(&token, SystemTime::now()), None);
    }

    #[test]
    fn es512_key_errors() {
        let err =
            |private, public| JwtTokens::from_keys(SignMethod::Es512, private, public, TTL).unwrap_err();
        assert_eq!(err(None, None), TokenConfigError::MissingKey);
        assert_eq!(
            err(Some(EC521_KEY), Some(EC521_OTHER_PUB)),
            TokenConfigError::KeyMismatch
        );
        // a public key on another curve than the private key's: etcd's KeyMismatch too
        assert_eq!(
            err(Some(EC521_KEY), Some(EC256_PUB)),
            TokenConfigError::KeyMismatch
        );
        // keys of other curves or kinds cannot serve ES512
        for (private, public) in [
            (Some(EC256_KEY), None),
            (Some(EC384_KEY), None),
            (Some(RSA_KEY), None),
            (None, Some(EC384_PUB)),
            (None, Some(RSA_PUB)),
            (Some(b"not a pem".as_slice()), None),
        ] {
            assert!(
                matches!(err(private, public), TokenConfigError::InvalidKey { .. }),
                "{:?}",
                err(private, public)
            );
        }
        // a P-521 key cannot serve ES256 (nor ES384)
        assert!(matches!(
            JwtTokens::from_keys(SignMethod::Es256, Some(EC521_KEY), None, TTL),
            Err(TokenConfigError::InvalidKey { path, .. }) if path == "priv-key"
        ));
        // a file whose first block is not the key (`openssl ecparam -genkey` without
        // -noout writes EC PARAMETERS first): refused, as by etcd, which reads the first
        let params = b"-----BEGIN EC PARAMETERS-----\nBgUrgQQAIw==\n-----END EC PARAMETERS-----\n";
        let with_params = [params.as_slice(), EC521_SEC1_KEY].concat();
        assert!(matches!(
            err(Some(&with_params), None),
            TokenConfigError::InvalidKey { .. }
        ));
    }

    #[test]
    fn es512_from_config() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let s = format!(
            "jwt,pub-key={},priv-key={},sign-method=ES512,ttl=1m",
            dir.join("ec521.pub").display(),
            dir.join("ec521-sec1.key").display()
        );
        let cfg = crate::TokenConfig::parse(&s).unwrap();
        let p = crate::TokenProvider::from_config(&cfg, TTL).unwrap();
        let crate::TokenProvider::Jwt(j) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(j.sign_method(), SignMethod::Es512);
        assert_eq!(j.ttl(), Duration::from_secs(60));
        let token = j.sign_at("u", 3, SystemTime::now()).unwrap();
        assert_eq!(
            j.verify_at(&token, SystemTime::now()).map(|i| i.revision),
            Some(3)
        );
    }
}
