//! JWT tokens, signed and verified with the `jsonwebtoken` crate on its aws-lc-rs backend.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::config::{JwtConfig, SignMethod, TokenConfigError};
use crate::{AuthError, AuthInfo};

/// etcd's default JWT `ttl`.
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(300);

/// The claims etcd puts in a token.
#[derive(Serialize)]
struct Claims<'a> {
    username: &'a str,
    revision: u64,
    exp: i64,
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

fn algorithm(m: SignMethod) -> Algorithm {
    match m {
        SignMethod::Rs256 => Algorithm::RS256,
        SignMethod::Rs384 => Algorithm::RS384,
        SignMethod::Rs512 => Algorithm::RS512,
        SignMethod::Ps256 => Algorithm::PS256,
        SignMethod::Ps384 => Algorithm::PS384,
        SignMethod::Ps512 => Algorithm::PS512,
        SignMethod::Es256 => Algorithm::ES256,
        SignMethod::Es384 => Algorithm::ES384,
        SignMethod::Hs256 => Algorithm::HS256,
        SignMethod::Hs384 => Algorithm::HS384,
        SignMethod::Hs512 => Algorithm::HS512,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Hmac,
}

fn family(m: SignMethod) -> Family {
    match m {
        SignMethod::Rs256
        | SignMethod::Rs384
        | SignMethod::Rs512
        | SignMethod::Ps256
        | SignMethod::Ps384
        | SignMethod::Ps512 => Family::Rsa,
        SignMethod::Es256 | SignMethod::Es384 => Family::Ec,
        SignMethod::Hs256 | SignMethod::Hs384 | SignMethod::Hs512 => Family::Hmac,
    }
}

/// Issues and verifies this member's JWTs.
pub struct JwtTokens {
    method: SignMethod,
    /// `None`: verify-only (only a public key was given).
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    validation: Validation,
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
    /// - ES methods: a PKCS#8 private key and/or a public key on the method's curve;
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
        let alg = algorithm(method);
        let bad = |which: &str, e: jsonwebtoken::errors::Error| TokenConfigError::InvalidKey {
            path: which.to_string(),
            detail: e.to_string(),
        };
        let (signing, verifying) = match family(method) {
            Family::Hmac => {
                let secret = private
                    .filter(|s| !s.is_empty())
                    .ok_or(TokenConfigError::MissingKey)?;
                (
                    Some(EncodingKey::from_secret(secret)),
                    DecodingKey::from_secret(secret),
                )
            }
            fam => {
                let signing = private
                    .map(|pem| match fam {
                        Family::Rsa => EncodingKey::from_rsa_pem(pem),
                        _ => EncodingKey::from_ec_pem(pem),
                    })
                    .transpose()
                    .map_err(|e| bad("priv-key", e))?;
                let verifying = public
                    .map(|pem| match fam {
                        Family::Rsa => DecodingKey::from_rsa_pem(pem),
                        _ => DecodingKey::from_ec_pem(pem),
                    })
                    .transpose()
                    .map_err(|e| bad("pub-key", e))?;
                match (signing, verifying) {
                    (None, None) => return Err(TokenConfigError::MissingKey),
                    (None, Some(v)) => (None, v),
                    (Some(s), v) => {
                        // The private key's own public half, to check against or use.
                        let own = Jwk::from_encoding_key(&s, alg)
                            .and_then(|jwk| DecodingKey::from_jwk(&jwk))
                            .map_err(|e| bad("priv-key", e))?;
                        let mismatch = v.is_some();
                        let v = v.unwrap_or(own);
                        if !probe(&s, &v, alg) {
                            return Err(if mismatch {
                                TokenConfigError::KeyMismatch
                            } else {
                                bad(
                                    "priv-key",
                                    jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into(),
                                )
                            });
                        }
                        (Some(s), v)
                    }
                }
            }
        };
        let mut validation = Validation::new(alg);
        // Expiry is checked against the caller's clock in `verify_at`; etcd's library
        // neither requires `exp` nor checks `aud`.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        Ok(JwtTokens {
            method,
            signing,
            verifying,
            validation,
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
        let claims = Claims {
            username,
            revision,
            exp: unix_secs(now + self.ttl),
        };
        jsonwebtoken::encode(&Header::new(algorithm(self.method)), &claims, key)
            .map_err(|e| AuthError::Internal(format!("failed to sign a JWT: {e}")))
    }

    /// The user and revision of a token whose signature checks out with this member's key
    /// and method and which has not expired at `now` (valid through its `exp` second).
    pub fn verify_at(&self, token: &str, now: SystemTime) -> Option<AuthInfo> {
        let data = jsonwebtoken::decode::<ReadClaims>(token, &self.verifying, &self.validation).ok()?;
        let c = data.claims;
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

/// Whether a signature made with `s` verifies with `v`.
fn probe(s: &EncodingKey, v: &DecodingKey, alg: Algorithm) -> bool {
    let msg = b"retcd key check";
    match jsonwebtoken::crypto::sign(msg, s, alg) {
        Ok(sig) => jsonwebtoken::crypto::verify(&sig, msg, v, alg).unwrap_or(false),
        Err(_) => false,
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
    const EC256_PUB: &[u8] = include_bytes!("../../tests/data/ec256.pub");
    const EC384_KEY: &[u8] = include_bytes!("../../tests/data/ec384.key");
    const EC384_PUB: &[u8] = include_bytes!("../../tests/data/ec384.pub");
    const HMAC_KEY: &[u8] = include_bytes!("../../tests/data/hmac.key");

    const TTL: Duration = Duration::from_secs(300);

    fn keys_for(m: SignMethod) -> (&'static [u8], Option<&'static [u8]>) {
        match family(m) {
            Family::Rsa => (RSA_KEY, Some(RSA_PUB)),
            Family::Ec if m == SignMethod::Es256 => (EC256_KEY, Some(EC256_PUB)),
            Family::Ec => (EC384_KEY, Some(EC384_PUB)),
            Family::Hmac => (HMAC_KEY, None),
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
            let header = String::from_utf8(b64(parts[0])).unwrap();
            assert!(header.contains(&format!("\"alg\":\"{m}\"")), "{header}");
            assert!(header.contains("\"typ\":\"JWT\""), "{header}");
            let claims = String::from_utf8(b64(parts[1])).unwrap();
            assert_eq!(claims, r#"{"username":"alice","revision":42,"exp":1000300}"#);
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
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &v, &key).unwrap()
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
}
