//! Authentication providers and ACL checks, as ZooKeeper's `ProviderRegistry`,
//! `ZooKeeperServer.checkACL` and `PrepRequestProcessor.fixupACL` define them.

use std::net::IpAddr;

use base64::Engine as _;
use engine::{code, perms, Acl, Id};
use sha1::{Digest, Sha1};

/// `DigestAuthenticationProvider.generateDigest`: `user:base64(sha1(user:password))`.
pub fn digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// Schemes a client may authenticate with (`addauth`), and the identities that gives it.
/// `None` means AuthFailed: ZooKeeper then closes the connection.
pub fn authenticate(scheme: &str, auth: &[u8], remote: IpAddr, super_digest: Option<&str>) -> Option<Vec<Id>> {
    match scheme {
        "digest" => {
            // Any bytes are a credential to ZooKeeper, even without a colon (the differential
            // corpus checks `digest nocolon`).
            let text = String::from_utf8_lossy(auth);
            let id = digest(&text);
            let mut ids = vec![Id::new("digest", &id)];
            if super_digest == Some(id.as_str()) {
                ids.push(Id::new("super", ""));
            }
            Some(ids)
        }
        "ip" => Some(vec![Id::new("ip", &remote.to_string())]),
        _ => None,
    }
}

/// Whether an identity string is valid for its scheme (`AuthenticationProvider.isValid`).
fn is_valid(id: &Id) -> bool {
    match id.scheme.as_str() {
        "digest" => id.id.split(':').count() == 2,
        "ip" => parse_ip_expr(&id.id).is_some(),
        _ => false,
    }
}

/// An `ip` ACL expression: an address and a prefix length.
fn parse_ip_expr(expr: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
        None => (expr, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((addr, bits))
}

fn ip_matches(client: &str, expr: &str) -> bool {
    let (Some((net, bits)), Ok(client)) = (parse_ip_expr(expr), client.parse::<IpAddr>()) else {
        return false;
    };
    let (a, b): (Vec<u8>, Vec<u8>) = match (net, client) {
        (IpAddr::V4(n), IpAddr::V4(c)) => (n.octets().to_vec(), c.octets().to_vec()),
        (IpAddr::V6(n), IpAddr::V6(c)) => (n.octets().to_vec(), c.octets().to_vec()),
        _ => return false,
    };
    let mut left = bits;
    for (x, y) in a.iter().zip(b.iter()) {
        if left == 0 {
            break;
        }
        let mask: u8 = if left >= 8 { 0xff } else { 0xffu8 << (8 - left) };
        if x & mask != y & mask {
            return false;
        }
        left = left.saturating_sub(8);
    }
    true
}

/// `ZooKeeperServer.checkACL`: Ok when some entry grants `perm` to one of `ids`.
pub fn check(acl: &[Acl], perm: i32, ids: &[Id]) -> Result<(), i32> {
    if acl.is_empty() || ids.iter().any(|i| i.scheme == "super") {
        return Ok(());
    }
    for a in acl {
        if a.perms & perm == 0 {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return Ok(());
        }
        for mine in ids.iter().filter(|i| i.scheme == a.id.scheme) {
            let matched = match a.id.scheme.as_str() {
                "digest" => mine.id == a.id.id,
                "ip" => ip_matches(&mine.id, &a.id.id),
                _ => false,
            };
            if matched {
                return Ok(());
            }
        }
    }
    Err(code::NO_AUTH)
}

/// `PrepRequestProcessor.fixupACL`: removes duplicates, expands `auth` to the caller's
/// authenticated identities, and rejects unknown schemes and malformed ids with InvalidACL.
pub fn fixup(acl: &[Acl], ids: &[Id]) -> Result<Vec<Acl>, i32> {
    if acl.is_empty() {
        return Err(code::INVALID_ACL);
    }
    let mut unique: Vec<&Acl> = Vec::new();
    for a in acl {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    let mut out = Vec::new();
    for a in unique {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            out.push(a.clone());
        } else if a.id.scheme == "auth" {
            // Only schemes that prove a user (digest) count; an ip identity does not.
            let authed: Vec<&Id> = ids.iter().filter(|i| i.scheme == "digest").collect();
            if authed.is_empty() {
                return Err(code::INVALID_ACL);
            }
            out.extend(authed.into_iter().map(|i| Acl { perms: a.perms, id: i.clone() }));
        } else if is_valid(&a.id) {
            out.push(a.clone());
        } else {
            return Err(code::INVALID_ACL);
        }
    }
    Ok(out)
}

/// getACL without ADMIN permission shows digest hashes as `user:x`.
pub fn mask_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            let mut a = a.clone();
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or("").to_string();
                a.id.id = format!("{user}:x");
            }
            a
        })
        .collect()
}

/// The permission bits needed to read an ACL.
pub const GET_ACL_PERMS: i32 = perms::READ | perms::ADMIN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_zookeeper() {
        // The value zkCli users know for super:test, from ZooKeeper's documentation.
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    }

    #[test]
    fn ip_prefixes_match() {
        assert!(ip_matches("127.0.0.1", "127.0.0.0/8"));
        assert!(!ip_matches("10.0.0.1", "127.0.0.0/8"));
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
    }

    #[test]
    fn auth_scheme_needs_a_digest_identity() {
        let acl = vec![Acl { perms: perms::ALL, id: Id::new("auth", "") }];
        assert_eq!(fixup(&acl, &[Id::new("ip", "127.0.0.1")]), Err(code::INVALID_ACL));
        let ids = [Id::new("digest", "u:h")];
        assert_eq!(fixup(&acl, &ids).map(|v| v[0].id.clone()), Ok(Id::new("digest", "u:h")));
    }
}
