//! Who is asking: the admin bearer token, or a ServiceAccount token.
//!
//! ServiceAccount tokens are JWTs as Kubernetes issues them through
//! `serviceaccounts/NAME/token` (`kubectl create token`): claims `iss`,
//! `sub` = `system:serviceaccount:NS:NAME`, `aud`, `exp`, `iat`, `nbf` and
//! `kubernetes.io` with the namespace and the account's name and uid. Only
//! this API server verifies them, so they are signed with HMAC-SHA256 and a
//! key kept in `DATA_DIR/pki/service-account.key` (0600). A token is
//! accepted while it has not expired, names this server's audience, and
//! its ServiceAccount still exists with the same uid — deleting the account
//! revokes its tokens.

use std::path::Path;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};

/// The issuer and default audience of the tokens this server makes.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The user of requests without credentials (only `kube-public/cluster-info`
/// is served to it).
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of node credentials (`system:node:NAME`).
pub const NODES_GROUP: &str = "system:nodes";
/// The group of bootstrap-token users (`system:bootstrap:ID`).
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";

/// A bootstrap token (`skiff token create`), as Kubernetes keeps them: a
/// Secret `kube-system/bootstrap-token-ID` of type
/// `bootstrap.kubernetes.io/token`. `token` is `ID.SECRET` (6 and 16 of
/// `[a-z0-9]`); the user is `system:bootstrap:ID` in `system:bootstrappers`
/// (and the Secret's `auth-extra-groups`), while the Secret exists, is
/// meant for authentication and has not expired.
pub fn bootstrap_user(token: &str, secret: &Value, now: DateTime<Utc>) -> Option<User> {
    let (id, _) = parse_bootstrap_token(token)?;
    if secret["type"] != "bootstrap.kubernetes.io/token" {
        return None;
    }
    let field = |k: &str| {
        secret["data"][k]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
    };
    let stored = format!("{}.{}", field("token-id")?, field("token-secret")?);
    if !constant_time_eq(stored.as_bytes(), token.as_bytes()) {
        return None;
    }
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return None;
    }
    if let Some(exp) = field("expiration") {
        let exp = DateTime::parse_from_rfc3339(&exp).ok()?;
        if exp <= now {
            return None;
        }
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_string()];
    if let Some(extra) = field("auth-extra-groups") {
        groups.extend(
            extra
                .split(',')
                .map(str::trim)
                .filter(|g| g.starts_with("system:bootstrappers:"))
                .map(str::to_string),
        );
    }
    groups.push("system:authenticated".into());
    Some(User {
        name: format!("system:bootstrap:{id}"),
        uid: String::new(),
        groups,
    })
}

/// Equal bytes, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `ID.SECRET` of a bootstrap token, or None when it is not one.
pub fn parse_bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl User {
    /// The holder of the admin token.
    pub fn admin() -> User {
        User {
            name: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    /// A ServiceAccount's user.
    pub fn service_account(ns: &str, name: &str, uid: &str) -> User {
        User {
            name: format!("system:serviceaccount:{ns}:{name}"),
            uid: uid.to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// Who a request without credentials is.
    pub fn anonymous() -> User {
        User {
            name: ANONYMOUS.into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    /// The user a client certificate names: the subject's common name,
    /// its organizations as groups (as Kubernetes reads client
    /// certificates). None without a common name.
    pub fn from_certificate(der: &[u8]) -> Option<User> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_string();
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_string))
            .collect();
        groups.push("system:authenticated".into());
        Some(User {
            name,
            uid: String::new(),
            groups,
        })
    }

    /// The node a `system:node:NAME` user in `system:nodes` is.
    pub fn node_name(&self) -> Option<&str> {
        self.name
            .strip_prefix("system:node:")
            .filter(|_| self.groups.iter().any(|g| g == NODES_GROUP))
    }

    /// Members of `system:masters` may do everything, as in Kubernetes.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// Users from a static token file (kube-apiserver's `--token-auth-file`):
/// CSV lines `token,user,uid[,"group1,group2"]`; `#` comments and blank
/// lines are skipped. Every user is also in `system:authenticated`.
#[derive(Default)]
pub struct StaticTokens {
    users: std::collections::HashMap<String, User>,
}

impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print tokens.
        f.debug_struct("StaticTokens")
            .field("users", &self.users.len())
            .finish()
    }
}

impl StaticTokens {
    /// Read the file; an error names the line.
    pub fn load(path: &Path) -> Result<StaticTokens, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        StaticTokens::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse the CSV text.
    pub fn parse(text: &str) -> Result<StaticTokens, String> {
        let mut users = std::collections::HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            let [token, name, uid, rest @ ..] = fields.as_slice() else {
                return Err(format!("line {}: want token,user,uid[,groups]", i + 1));
            };
            if token.is_empty() || name.is_empty() {
                return Err(format!(
                    "line {}: the token and the user name may not be empty",
                    i + 1
                ));
            }
            let mut groups: Vec<String> = rest
                .first()
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            groups.push("system:authenticated".into());
            let user = User {
                name: name.clone(),
                uid: uid.clone(),
                groups,
            };
            if users.insert(token.clone(), user).is_some() {
                return Err(format!("line {}: the token is listed twice", i + 1));
            }
        }
        Ok(StaticTokens { users })
    }

    /// The user a token names.
    pub fn user(&self, token: &str) -> Option<User> {
        self.users.get(token).cloned()
    }
}

/// Split one CSV line, honouring double quotes (the groups field is quoted
/// when it holds commas).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out.into_iter().map(|f| f.trim().to_string()).collect()
}

/// Issues and verifies ServiceAccount tokens.
pub struct Tokens {
    key: hmac::Key,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The object the token lives and dies with (TokenRequest's
    /// `boundObjectRef`), in the account's namespace.
    pub bound: Option<BoundObject>,
}

/// An object a token is bound to: a Pod or a Secret of the account's
/// namespace. The token is refused once the object is gone (or, for a
/// pod, once its deletion is due).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundObject {
    /// `Pod` or `Secret`.
    pub kind: String,
    pub name: String,
    pub uid: String,
}

impl BoundObject {
    /// The claim's key under `kubernetes.io`, as Kubernetes writes it.
    fn claim_key(kind: &str) -> Option<&'static str> {
        match kind {
            "Pod" => Some("pod"),
            "Secret" => Some("secret"),
            _ => None,
        }
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

impl Tokens {
    /// The signing key in `path`, made (32 random bytes, mode 0600) when
    /// missing.
    pub fn load_or_create(path: &Path) -> std::io::Result<Tokens> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| std::io::Error::other("no randomness for a key"))?;
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                f.write_all(&key)?;
                f.sync_all()?;
                key.to_vec()
            }
            Err(e) => return Err(e),
        };
        if bytes.len() < 32 {
            return Err(std::io::Error::other(format!(
                "{} holds {} bytes; a signing key needs 32",
                path.display(),
                bytes.len()
            )));
        }
        Ok(Tokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        })
    }

    /// A token for a ServiceAccount, valid for `seconds` from now, for
    /// `audiences` (this server's when empty). Returns it and its expiry.
    pub fn issue(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        seconds: i64,
    ) -> (String, DateTime<Utc>) {
        self.issue_bound(ns, name, uid, audiences, seconds, None)
    }

    /// [`Tokens::issue`] for a token bound to `bound` (a Pod or Secret of
    /// `ns`): the API server accepts it only while that object exists.
    pub fn issue_bound(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        seconds: i64,
        bound: Option<&BoundObject>,
    ) -> (String, DateTime<Utc>) {
        let now = Utc::now();
        let exp = now + chrono::Duration::seconds(seconds);
        let aud: Vec<String> = if audiences.is_empty() {
            vec![ISSUER.to_string()]
        } else {
            audiences.to_vec()
        };
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let mut claims = json!({
            "iss": ISSUER,
            "sub": format!("system:serviceaccount:{ns}:{name}"),
            "aud": aud,
            "iat": now.timestamp(),
            "nbf": now.timestamp(),
            "exp": exp.timestamp(),
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": uid}},
        });
        if let Some((b, key)) = bound.and_then(|b| BoundObject::claim_key(&b.kind).map(|k| (b, k)))
        {
            claims["kubernetes.io"][key] = json!({"name": b.name, "uid": b.uid});
        }
        let signing_input = format!(
            "{}.{}",
            b64().encode(header.to_string()),
            b64().encode(claims.to_string())
        );
        let sig = hmac::sign(&self.key, signing_input.as_bytes());
        (
            format!("{signing_input}.{}", b64().encode(sig.as_ref())),
            exp,
        )
    }

    /// The claims of a token this server issued for its own audience,
    /// if it is intact and unexpired.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWT".into());
        };
        let sig = b64().decode(s).map_err(|_| "bad signature encoding")?;
        hmac::verify(&self.key, format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| "signature does not verify")?;
        let header: Value = serde_json::from_slice(&b64().decode(h).map_err(|_| "bad header")?)
            .map_err(|_| "bad header")?;
        if header["alg"] != "HS256" {
            return Err("unexpected algorithm".into());
        }
        let claims: Value = serde_json::from_slice(&b64().decode(c).map_err(|_| "bad claims")?)
            .map_err(|_| "bad claims")?;
        let now = Utc::now().timestamp();
        if claims["exp"].as_i64().is_none_or(|e| e <= now) {
            return Err("token has expired".into());
        }
        if claims["nbf"].as_i64().is_some_and(|n| n > now + 60) {
            return Err("token is not valid yet".into());
        }
        let aud_ok = claims["aud"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == ISSUER));
        if !aud_ok {
            return Err("token is for another audience".into());
        }
        let k = &claims["kubernetes.io"];
        let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let bound = ["Pod", "Secret"].into_iter().find_map(|kind| {
            let o = &k[BoundObject::claim_key(kind)?];
            o.is_object().then(|| BoundObject {
                kind: kind.to_string(),
                name: field(&o["name"]),
                uid: field(&o["uid"]),
            })
        });
        let out = Claims {
            namespace: field(&k["namespace"]),
            name: field(&k["serviceaccount"]["name"]),
            uid: field(&k["serviceaccount"]["uid"]),
            bound,
        };
        if out.namespace.is_empty() || out.name.is_empty() {
            return Err("token names no ServiceAccount".into());
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;

    fn tokens() -> (tempfile::TempDir, Tokens) {
        let dir = tempfile::tempdir().unwrap();
        let t = Tokens::load_or_create(&dir.path().join("sa.key")).unwrap();
        (dir, t)
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_account() {
        let (_d, t) = tokens();
        let (tok, exp) = t.issue("ns", "reader", "u-1", &[], 600);
        assert!(exp > Utc::now());
        let c = t.verify(&tok).unwrap();
        assert_eq!(
            c,
            Claims {
                namespace: "ns".into(),
                name: "reader".into(),
                uid: "u-1".into(),
                bound: None,
            }
        );
    }

    #[test]
    fn bound_tokens_name_their_object() {
        let (_d, t) = tokens();
        let pod = BoundObject {
            kind: "Pod".into(),
            name: "web-1".into(),
            uid: "p-9".into(),
        };
        let (tok, _) = t.issue_bound("ns", "reader", "u-1", &[], 600, Some(&pod));
        assert_eq!(t.verify(&tok).unwrap().bound, Some(pod));
        // Kubernetes' claim layout, so other verifiers read it alike.
        let claims = tok.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(&b64().decode(claims).unwrap()).unwrap();
        assert_eq!(
            claims["kubernetes.io"]["pod"],
            json!({"name": "web-1", "uid": "p-9"})
        );
    }

    #[test]
    fn tampered_expired_foreign_and_other_audience_tokens_fail() {
        let (_d, t) = tokens();
        let (tok, _) = t.issue("ns", "reader", "u-1", &[], 600);
        // Claims swapped for another account's, signature kept.
        let (other, _) = t.issue("kube-system", "admin", "u-2", &[], 600);
        let forged: Vec<&str> = tok.split('.').collect();
        let stolen: Vec<&str> = other.split('.').collect();
        let mixed = format!("{}.{}.{}", forged[0], stolen[1], forged[2]);
        assert!(t.verify(&mixed).unwrap_err().contains("signature"));
        let (old, _) = t.issue("ns", "reader", "u-1", &[], -5);
        assert!(t.verify(&old).unwrap_err().contains("expired"));
        let (_d2, t2) = tokens();
        assert!(t2.verify(&tok).is_err(), "another server's key");
        let (vault, _) = t.issue("ns", "reader", "u-1", &["vault".into()], 600);
        assert!(t.verify(&vault).unwrap_err().contains("audience"));
        assert!(t.verify("admin-token").is_err());
    }

    #[test]
    fn the_key_persists_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sa.key");
        let (tok, _) = Tokens::load_or_create(&path)
            .unwrap()
            .issue("a", "b", "c", &[], 60);
        assert!(Tokens::load_or_create(&path).unwrap().verify(&tok).is_ok());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn static_token_files_read_like_kube_apiservers() {
        let t = StaticTokens::parse("# comment\n\nt0k3n,alice,1001,\"devs,ops\"\nother,bob,1002\n")
            .unwrap();
        let alice = t.user("t0k3n").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, vec!["devs", "ops", "system:authenticated"]);
        assert_eq!(
            t.user("other").unwrap().groups,
            vec!["system:authenticated"]
        );
        assert!(t.user("nope").is_none());
        assert!(StaticTokens::parse("only,two")
            .unwrap_err()
            .contains("line 1"));
        assert!(StaticTokens::parse("a,b,c\na,d,e")
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn users_and_groups_are_kubernetes_names() {
        let u = User::service_account("ns", "reader", "u");
        assert_eq!(u.name, "system:serviceaccount:ns:reader");
        assert!(u.groups.contains(&"system:serviceaccounts:ns".to_string()));
        assert!(!u.is_master());
        assert!(User::admin().is_master());
    }
}
