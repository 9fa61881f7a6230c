//! Parsing etcd's `--auth-token` option: `simple`, or
//! `jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::jwt::DEFAULT_JWT_TTL;

/// Why `--auth-token` or the JWT keys it names are unusable. Messages start like etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenConfigError {
    /// etcd's `ErrInvalidAuthOpts`, which etcd also returns for a bad `ttl`, an unknown or
    /// missing `sign-method` and an unreadable key file; the detail says which.
    #[error("auth: invalid auth options: {0}")]
    InvalidAuthOpts(String),
    #[error("auth: missing key data")]
    MissingKey,
    #[error("auth: public and private keys don't match")]
    KeyMismatch,
    /// A key that is not a PEM key of the kind the sign method needs. `path` is the key
    /// file, or `priv-key` / `pub-key` for a key given as bytes.
    #[error("auth: invalid key in {path}: {detail}")]
    InvalidKey { path: String, detail: String },
}

/// A parsed `--auth-token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenConfig {
    /// `simple` (etcd's default). Options after it are ignored, as by etcd.
    Simple,
    Jwt(JwtConfig),
    /// The empty string: no tokens at all.
    Nop,
}

/// The options of `--auth-token jwt,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub sign_method: SignMethod,
    /// `pub-key`: verifies tokens. With only this key the member verifies but cannot issue.
    pub pub_key: Option<PathBuf>,
    /// `priv-key`: signs tokens (for HMAC methods: the shared secret).
    pub priv_key: Option<PathBuf>,
    /// `ttl`, a Go duration (`5m`, `1h30m`, `300s`); default 5 minutes.
    pub ttl: Duration,
    /// Options etcd does not know; etcd warns about them and goes on.
    pub unknown_options: Vec<String>,
}

/// The JWT signing methods etcd 3.4 accepts (`sign-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignMethod {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
    Hs256,
    Hs384,
    Hs512,
}

impl SignMethod {
    /// Every method, in the order above.
    pub const ALL: [SignMethod; 12] = [
        SignMethod::Rs256,
        SignMethod::Rs384,
        SignMethod::Rs512,
        SignMethod::Ps256,
        SignMethod::Ps384,
        SignMethod::Ps512,
        SignMethod::Es256,
        SignMethod::Es384,
        SignMethod::Es512,
        SignMethod::Hs256,
        SignMethod::Hs384,
        SignMethod::Hs512,
    ];

    /// The name in `sign-method` and in the token's `alg` header.
    pub fn as_str(self) -> &'static str {
        match self {
            SignMethod::Rs256 => "RS256",
            SignMethod::Rs384 => "RS384",
            SignMethod::Rs512 => "RS512",
            SignMethod::Ps256 => "PS256",
            SignMethod::Ps384 => "PS384",
            SignMethod::Ps512 => "PS512",
            SignMethod::Es256 => "ES256",
            SignMethod::Es384 => "ES384",
            SignMethod::Es512 => "ES512",
            SignMethod::Hs256 => "HS256",
            SignMethod::Hs384 => "HS384",
            SignMethod::Hs512 => "HS512",
        }
    }

    /// Case-sensitive, as Go's `jwt.GetSigningMethod`.
    pub fn from_name(name: &str) -> Option<SignMethod> {
        SignMethod::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for SignMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn invalid(detail: impl Into<String>) -> TokenConfigError {
    TokenConfigError::InvalidAuthOpts(detail.into())
}

impl TokenConfig {
    /// Parses `--auth-token` as etcd 3.4 does: the token type, then `,key=value` options
    /// (an option without exactly one `=`, or given twice, is invalid). The key files are
    /// only read by [`TokenProvider::from_config`](crate::TokenProvider::from_config).
    pub fn parse(s: &str) -> Result<TokenConfig, TokenConfigError> {
        let mut parts = s.split(',');
        let kind = parts.next().unwrap_or_default();
        let mut opts: HashMap<&str, &str> = HashMap::new();
        let mut order = Vec::new();
        for opt in parts {
            let mut kv = opt.split('=');
            let (Some(k), Some(v), None) = (kv.next(), kv.next(), kv.next()) else {
                return Err(invalid(format!("option {opt:?} is not key=value")));
            };
            if opts.insert(k, v).is_some() {
                return Err(invalid(format!("option {k:?} given twice")));
            }
            order.push(k);
        }
        match kind {
            "simple" => Ok(TokenConfig::Simple),
            "jwt" => parse_jwt(&opts, &order).map(TokenConfig::Jwt),
            "" => Ok(TokenConfig::Nop),
            other => Err(invalid(format!("unknown token type {other:?}"))),
        }
    }
}

fn parse_jwt(opts: &HashMap<&str, &str>, order: &[&str]) -> Result<JwtConfig, TokenConfigError> {
    let get = |k: &str| opts.get(k).copied().filter(|v| !v.is_empty());
    let ttl = match get("ttl") {
        None => DEFAULT_JWT_TTL,
        Some(v) => parse_go_duration(v).ok_or_else(|| invalid(format!("invalid ttl {v:?}")))?,
    };
    let method = get("sign-method").unwrap_or_default();
    let sign_method = SignMethod::from_name(method)
        .ok_or_else(|| invalid(format!("auth: invalid auth signature method {method:?}")))?;
    let unknown_options = order
        .iter()
        .filter(|k| !matches!(**k, "sign-method" | "pub-key" | "priv-key" | "ttl"))
        .map(|k| k.to_string())
        .collect();
    Ok(JwtConfig {
        sign_method,
        pub_key: get("pub-key").map(PathBuf::from),
        priv_key: get("priv-key").map(PathBuf::from),
        ttl,
        unknown_options,
    })
}

/// A Go `time.ParseDuration` string: `[-+]` then one or more `<decimal><unit>` with units
/// `ns us µs ms s m h`, or `0`. Negative durations are refused (a negative TTL would issue
/// tokens that are already expired).
pub(crate) fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return (s == "-0").then_some(Duration::ZERO);
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let int_val: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        total = total.checked_add(int_val.checked_mul(nanos_per)?)?;
        if !frac.is_empty() {
            // Go keeps what fits; 30 digits are more than a nanosecond needs.
            let frac = &frac[..frac.len().min(30)];
            let scale = 10u128.pow(frac.len() as u32);
            total = total.checked_add(frac.parse::<u128>().ok()? * nanos_per / scale)?;
        }
        rest = after;
    }
    let nanos = u64::try_from(total).ok().filter(|n| *n <= i64::MAX as u64)?;
    Some(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(s: &str) -> JwtConfig {
        match TokenConfig::parse(s).unwrap() {
            TokenConfig::Jwt(j) => j,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn token_types() {
        assert_eq!(TokenConfig::parse("simple"), Ok(TokenConfig::Simple));
        assert_eq!(TokenConfig::parse("simple,whatever=1"), Ok(TokenConfig::Simple));
        assert_eq!(TokenConfig::parse(""), Ok(TokenConfig::Nop));
        assert!(matches!(
            TokenConfig::parse("Simple"),
            Err(TokenConfigError::InvalidAuthOpts(d)) if d.contains("unknown token type")
        ));
        assert!(matches!(
            TokenConfig::parse("oauth"),
            Err(TokenConfigError::InvalidAuthOpts(_))
        ));
    }

    #[test]
    fn full_jwt_option() {
        let j = jwt("jwt,pub-key=/etc/k.pub,priv-key=/etc/k.priv,sign-method=RS256,ttl=10m");
        assert_eq!(
            j,
            JwtConfig {
                sign_method: SignMethod::Rs256,
                pub_key: Some("/etc/k.pub".into()),
                priv_key: Some("/etc/k.priv".into()),
                ttl: Duration::from_secs(600),
                unknown_options: vec![],
            }
        );
    }

    #[test]
    fn jwt_defaults_and_unknown_options() {
        let j = jwt("jwt,sign-method=HS256,priv-key=s,color=blue,ttl=");
        assert_eq!(j.ttl, Duration::from_secs(300), "empty ttl is the default");
        assert_eq!(j.pub_key, None);
        assert_eq!(j.unknown_options, vec!["color".to_string()]);
    }

    #[test]
    fn every_sign_method_name() {
        for m in SignMethod::ALL {
            assert_eq!(jwt(&format!("jwt,sign-method={m}")).sign_method, m);
        }
    }

    #[test]
    fn invalid_jwt_options() {
        let bad = [
            "jwt",                                     // sign-method is required
            "jwt,sign-method=",                        // empty
            "jwt,sign-method=rs256",                   // case-sensitive
            "jwt,sign-method=es512",                   // case-sensitive
            "jwt,sign-method=none",                    // never
            "jwt,sign-method=RS256,ttl=5",             // no unit
            "jwt,sign-method=RS256,ttl=-5m",           // negative
            "jwt,sign-method=RS256,ttl=forever",       // not a duration
            "jwt,sign-method=RS256,pub-key",           // not key=value
            "jwt,sign-method=RS256,pub-key=a=b",       // two '='
            "jwt,sign-method=RS256,sign-method=RS384", // twice
            "jwt,,sign-method=RS256",                  // empty option
        ];
        for s in bad {
            assert!(
                matches!(TokenConfig::parse(s), Err(TokenConfigError::InvalidAuthOpts(_))),
                "{s} should be invalid"
            );
        }
    }

    #[test]
    fn error_messages_start_like_etcds() {
        let e = TokenConfig::parse("jwt").unwrap_err();
        assert!(e.to_string().starts_with("auth: invalid auth options"), "{e}");
        assert_eq!(TokenConfigError::MissingKey.to_string(), "auth: missing key data");
        assert_eq!(
            TokenConfigError::KeyMismatch.to_string(),
            "auth: public and private keys don't match"
        );
    }

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s);
        assert_eq!(d("5m"), Some(Duration::from_secs(300)));
        assert_eq!(d("300s"), Some(Duration::from_secs(300)));
        assert_eq!(d("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(d("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(d(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(d("5.s"), Some(Duration::from_secs(5)));
        assert_eq!(d("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(d("1us"), Some(Duration::from_micros(1)));
        assert_eq!(d("1µs"), Some(Duration::from_micros(1)));
        assert_eq!(d("1ns"), Some(Duration::from_nanos(1)));
        assert_eq!(d("+2s"), Some(Duration::from_secs(2)));
        assert_eq!(d("0"), Some(Duration::ZERO));
        assert_eq!(d("0s"), Some(Duration::ZERO));
        assert_eq!(d("1m0.5s"), Some(Duration::from_millis(60_500)));
        for bad in ["", "5", ".", "s", "5x", "1h 30m", "-5s", "9999999999h", "1.2.3s"] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
    }
}
