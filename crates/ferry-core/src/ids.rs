//! Identifier newtypes parsed once at the boundary: account ids, stage names, regions,
//! sha256 digests, release ids and actors. Holding one of these means it is well-formed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid identifier; the message names the value and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} `{value}` is invalid: {rule}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub rule: &'static str,
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let check: fn(&str) -> bool = $check;
                if check(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError { kind: $kind, value: s.to_owned(), rule: $rule })
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

string_id!(
    /// A 12-digit AWS account id (also the namespace of an account on the local backend).
    AccountId,
    "account id",
    |s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()),
    "an account id is exactly 12 digits (quote it in YAML so leading zeros survive)"
);

string_id!(
    /// A stage name such as `staging` or `prod`.
    StageName,
    "stage name",
    is_name,
    "use 1-63 characters: lowercase letters, digits, `-` or `_`, starting with a letter"
);

string_id!(
    /// A pipeline name; also namespaces its state, approvals and locks.
    PipelineName,
    "pipeline name",
    is_name,
    "use 1-63 characters: lowercase letters, digits, `-` or `_`, starting with a letter"
);

string_id!(
    /// An AWS region name such as `eu-west-1`.
    Region,
    "region",
    |s| {
        let parts: Vec<&str> = s.split('-').collect();
        parts.len() >= 3
            && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
            && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
    },
    "expected a region such as `eu-west-1`"
);

string_id!(
    /// A hex sha256 digest (64 lowercase hex characters).
    Sha256Digest,
    "sha256 digest",
    |s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
    "expected 64 lowercase hex characters"
);

string_id!(
    /// A release id: `r` followed by the first 16 hex characters of the manifest's sha256.
    ReleaseId,
    "release id",
    |s| s.len() == 17 && s.starts_with('r') && s[1..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
    "a release id is `r` followed by 16 lowercase hex characters, as printed by `ferry build`"
);

string_id!(
    /// Who did something: a person, a CI identity, or (on AWS) an STS caller ARN.
    Actor,
    "actor",
    |s| !s.trim().is_empty() && s.len() <= 256 && !s.chars().any(char::is_control),
    "an actor is a non-empty printable name"
);

/// Whether `actor` is who the identity `entry` names: the same identity, or, for an IAM role
/// ARN, any session of that role (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`), which is
/// how people reach AWS through SSO or `assume-role`.
pub fn identity_matches(entry: &Actor, actor: &Actor) -> bool {
    entry == actor || entry.as_str().parse::<RoleArn>().is_ok_and(|role| role.is_session(actor.as_str()))
}

/// Whether `actor` is the person named `name` with `identities`: the name itself, or one of them.
pub fn is_person(name: &str, identities: &[Actor], actor: &Actor) -> bool {
    name == actor.as_str() || identities.iter().any(|i| identity_matches(i, actor))
}

string_id!(
    /// An IAM role ARN, `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`.
    RoleArn,
    "role ARN",
    |s| {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        matches!(parts.as_slice(), ["arn", "aws" | "aws-cn" | "aws-us-gov", "iam", "", account, resource]
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))))
    },
    "expected `arn:aws:iam::123456789012:role/NAME`"
);

fn function_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
}

string_id!(
    /// A Lambda function (the gatekeeper's), as Lambda's `Invoke` names one: its ARN,
    /// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME` (needed from another account), or
    /// its bare name (a function in the caller's own account and region, or a local emulator).
    FunctionRef,
    "Lambda function",
    |s| {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [name] => function_name(name),
            ["arn", "aws" | "aws-cn" | "aws-us-gov", "lambda", region, account, "function", name] => {
                !region.is_empty() && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
                    && function_name(name)
            }
            _ => false,
        }
    },
    "expected `arn:aws:lambda:REGION:123456789012:function:NAME` (or a function name)"
);

impl FunctionRef {
    /// The region the function runs in, if the reference says (an ARN does).
    pub fn region(&self) -> Option<&str> {
        self.0.split(':').nth(3)
    }
    /// The function's name.
    pub fn name(&self) -> &str {
        self.0.rsplit(':').next().unwrap_or_default()
    }
}

impl RoleArn {
    /// The role `name` (with optional path) in `account`.
    pub fn new(account: &AccountId, name: &str) -> Result<Self, IdError> {
        format!("arn:aws:iam::{account}:role/{name}").parse()
    }

    /// Whether `arn` is a session of this role (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`).
    pub fn is_session(&self, arn: &str) -> bool {
        let Some((prefix, role)) = self.0.split_once(":role/") else { return false };
        let mut parts = prefix.split(':');
        let (partition, account) = (parts.nth(1).unwrap_or_default(), parts.nth(2).unwrap_or_default());
        let name = role.rsplit('/').next().unwrap_or(role);
        arn.strip_prefix(&format!("arn:{partition}:sts::{account}:assumed-role/{name}/")).is_some_and(|s| !s.is_empty() && !s.contains('/'))
    }

    /// The account the role lives in.
    pub fn account(&self) -> AccountId {
        AccountId(self.0.split(':').nth(4).unwrap_or_default().to_owned())
    }
}

impl Sha256Digest {
    /// Builds a digest from the 32 raw bytes a hasher produced.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(hex::encode(bytes))
    }

    /// Hashes a small in-memory value (manifests, events); artifacts go through [`crate::digest`].
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self::from_bytes(sha2::Sha256::digest(bytes).into())
    }
}

impl ReleaseId {
    /// A release id is derived from the manifest digest, so it names exactly one manifest.
    pub fn for_manifest(digest: &Sha256Digest) -> Self {
        Self(format!("r{}", &digest.as_str()[..16]))
    }

    /// Whether `digest` is the manifest digest this id was derived from.
    pub fn matches(&self, digest: &Sha256Digest) -> bool {
        digest.as_str().starts_with(&self.0[1..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_twelve_digits() {
        assert!("012345678901".parse::<AccountId>().is_ok());
        let err = "12345".parse::<AccountId>().unwrap_err();
        assert_eq!(err.value, "12345");
        assert!("12345678901a".parse::<AccountId>().is_err());
    }

    #[test]
    fn release_id_is_derived_from_the_manifest_digest() {
        let d = Sha256Digest::of(b"manifest");
        let id = ReleaseId::for_manifest(&d);
        assert!(id.matches(&d));
        assert!(!id.matches(&Sha256Digest::of(b"other")));
        assert_eq!(id.as_str().parse::<ReleaseId>().unwrap(), id);
    }

    #[test]
    fn role_arns_name_their_account() {
        let r: RoleArn = "arn:aws:iam::012345678901:role/ferry/deploy".parse().unwrap();
        assert_eq!(r.account().as_str(), "012345678901");
        assert!("arn:aws:iam::0123:role/x".parse::<RoleArn>().is_err());
        let f: FunctionRef = "arn:aws:lambda:eu-west-1:333333333333:function:ferry-gatekeeper".parse().unwrap();
        assert_eq!((f.region(), f.name()), (Some("eu-west-1"), "ferry-gatekeeper"));
        let f: FunctionRef = "ferry-gatekeeper".parse().unwrap();
        assert_eq!((f.region(), f.name()), (None, "ferry-gatekeeper"));
        assert!("arn:aws:lambda:eu-west-1:333333333333:function:ferry-gatekeeper:live".parse::<FunctionRef>().is_err());
        assert!("arn:aws:iam::333333333333:role/ferry-gatekeeper".parse::<FunctionRef>().is_err());
        assert!("arn:aws:iam::012345678901:user/x".parse::<RoleArn>().is_err());
        assert_eq!(
            RoleArn::new(&"111111111111".parse().unwrap(), "ferry-deploy").unwrap().as_str(),
            "arn:aws:iam::111111111111:role/ferry-deploy"
        );
    }

    #[test]
    fn names_and_regions() {
        assert!("prod".parse::<StageName>().is_ok());
        assert!("Prod".parse::<StageName>().is_err());
        assert!("eu-west-1".parse::<Region>().is_ok());
        assert!("us-gov-west-1".parse::<Region>().is_ok());
        assert!("mars".parse::<Region>().is_err());
    }
}
