//! The credential lifecycle on the command line: `operators add|disable|
//! enable|set-roles`, `keys create|rotate|revoke`, `tokens revoke`. Secrets
//! are generated here and printed once (or read from stdin), never taken from
//! argv, where `ps` and shell history would keep them. Every change is a
//! database write that running gateways hear at once (`store::credentials`).

use crate::config::DatabaseArgs;
use crate::model::{OperatorStatus, PrincipalKind, Role};
use crate::store::{NewOperator, Store};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rand::distributions::{Alphanumeric, DistString};
use std::io::BufRead;
use std::str::FromStr;

/// Generated access keys: 20 upper-case letters and digits, as the cloud's.
const ACCESS_KEY_LEN: usize = 20;
/// Generated secrets: 40 letters and digits (≈ 238 bits).
const SECRET_LEN: usize = 40;
/// Secrets read from stdin must be at least this long.
const MIN_SECRET_LEN: usize = 16;
/// docs/domain.md §1: an operator holds at most three roles.
const MAX_ROLES: usize = 3;

#[derive(Subcommand, Debug)]
pub enum OperatorsCommand {
    /// Add an active operator to a partner (then `keys create --operator ID`).
    Add {
        id: String,
        #[arg(long)]
        partner: String,
        #[arg(long)]
        name: String,
        /// A role (repeatable, at most 3): admin, account_manager, finance, operations.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Disable an operator: every request of its keys is denied (R12), its
    /// live sessions end and its tokens are revoked for good.
    Disable {
        id: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Enable a disabled operator (its old sessions and tokens stay dead).
    Enable {
        id: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Replace an operator's roles.
    SetRoles {
        id: String,
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Whose credential.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Owner {
    #[arg(long)]
    operator: Option<String>,
    #[arg(long)]
    customer: Option<String>,
}

impl Owner {
    fn principal(&self) -> (PrincipalKind, &str) {
        match (&self.operator, &self.customer) {
            (Some(id), _) => (PrincipalKind::Operator, id),
            (None, Some(id)) => (PrincipalKind::Customer, id),
            (None, None) => unreachable!("clap requires one of --operator, --customer"),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an access key for an operator or a customer; prints the access
    /// key and its secret (shown once).
    Create {
        #[command(flatten)]
        owner: Owner,
        /// Read the secret from the first line of stdin instead of generating one.
        #[arg(long)]
        secret_stdin: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Give an access key a new secret (printed once); the old one is refused
    /// from the next request on.
    Rotate {
        access_key: String,
        #[arg(long)]
        secret_stdin: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Delete an access key.
    Revoke {
        access_key: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Revoke every X-Auth-Token of an operator or a customer issued until now.
    Revoke {
        #[command(flatten)]
        owner: Owner,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

fn parse_roles(texts: &[String]) -> anyhow::Result<Vec<Role>> {
    let mut roles = Vec::new();
    for text in texts {
        let role = Role::from_str(text).map_err(|_| {
            let valid: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            anyhow::anyhow!("--role {text:?} is not one of {}", valid.join(", "))
        })?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    if roles.len() > MAX_ROLES {
        bail!("an operator holds at most {MAX_ROLES} roles");
    }
    Ok(roles)
}

/// The secret: from stdin's first line, or generated.
fn secret(from_stdin: bool) -> anyhow::Result<String> {
    if !from_stdin {
        return Ok(Alphanumeric.sample_string(&mut rand::rngs::OsRng, SECRET_LEN));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the secret from stdin")?;
    let secret = line.trim_end_matches(['\r', '\n']).to_owned();
    if secret.chars().count() < MIN_SECRET_LEN || secret.chars().any(char::is_control) {
        bail!("the secret on stdin must be one line of at least {MIN_SECRET_LEN} characters");
    }
    Ok(secret)
}

fn access_key() -> String {
    Alphanumeric
        .sample_string(&mut rand::rngs::OsRng, ACCESS_KEY_LEN)
        .to_ascii_uppercase()
}

async fn open(db: &DatabaseArgs) -> anyhow::Result<Store> {
    db.open_store().await
}

pub async fn operators(command: OperatorsCommand) -> anyhow::Result<()> {
    match command {
        OperatorsCommand::Add {
            id,
            partner,
            name,
            roles,
            db,
        } => {
            let roles = parse_roles(&roles)?;
            let store = open(&db).await?;
            store
                .add_operator(&NewOperator {
                    id: id.clone(),
                    partner,
                    name,
                    roles,
                })
                .await
                .with_context(|| format!("operator {id} was not added"))?;
            println!(
                "operator {id} added (active); give it a key with `keys create --operator {id}`"
            );
            store.close().await;
        }
        OperatorsCommand::Disable { id, db } => {
            set_status(&id, &db, OperatorStatus::Disabled).await?
        }
        OperatorsCommand::Enable { id, db } => set_status(&id, &db, OperatorStatus::Active).await?,
        OperatorsCommand::SetRoles { id, roles, db } => {
            let roles = parse_roles(&roles)?;
            let store = open(&db).await?;
            store.set_operator_roles(&id, &roles).await?;
            println!("operator {id}: roles {}", crate::model::join_set(&roles));
            store.close().await;
        }
    }
    Ok(())
}

async fn set_status(id: &str, db: &DatabaseArgs, status: OperatorStatus) -> anyhow::Result<()> {
    let store = open(db).await?;
    let changed = store.set_operator_status(id, status).await?;
    if changed {
        println!("operator {id}: {}", status.as_str());
    } else {
        println!("operator {id} was already {}", status.as_str());
    }
    store.close().await;
    Ok(())
}

/// Prints a secret once, with the warning on stderr (stdout stays parseable).
fn print_secret(access_key: &str, secret: &str) {
    println!("access_key: {access_key}");
    println!("secret_key: {secret}");
    eprintln!("Store the secret key now: it is shown only this once.");
}

pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            owner,
            secret_stdin,
            db,
        } => {
            let (kind, id) = owner.principal();
            let secret = secret(secret_stdin)?;
            let key = access_key();
            let store = open(&db).await?;
            store.create_key(kind, id, &key, &secret).await?;
            eprintln!("access key created for {} {id}", kind.as_str());
            print_secret(&key, &secret);
            store.close().await;
        }
        KeysCommand::Rotate {
            access_key,
            secret_stdin,
            db,
        } => {
            let secret = secret(secret_stdin)?;
            let store = open(&db).await?;
            store.rotate_key(&access_key, &secret).await?;
            eprintln!("access key {access_key} rotated: the old secret is refused from now on");
            print_secret(&access_key, &secret);
            store.close().await;
        }
        KeysCommand::Revoke { access_key, db } => {
            let store = open(&db).await?;
            store.revoke_key(&access_key).await?;
            println!("access key {access_key} revoked");
            store.close().await;
        }
    }
    Ok(())
}

pub async fn tokens(command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Revoke { owner, db } => {
            let (kind, id) = owner.principal();
            let store = open(&db).await?;
            store.revoke_tokens(kind, id).await?;
            println!(
                "every token of {} {id} issued until now is revoked",
                kind.as_str()
            );
            store.close().await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_checked_and_named() {
        let roles = parse_roles(&["admin".into(), "finance".into(), "admin".into()]).unwrap();
        assert_eq!(roles, vec![Role::Admin, Role::Finance]);
        let e = parse_roles(&["root".into()]).unwrap_err().to_string();
        assert!(e.contains("root") && e.contains("account_manager"), "{e}");
        let four = ["admin", "finance", "operations", "account_manager"].map(String::from);
        assert!(parse_roles(&four).is_err());
    }

    #[test]
    fn generated_keys_have_their_shape() {
        let (a, b) = (access_key(), access_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), ACCESS_KEY_LEN);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert_eq!(secret(false).unwrap().len(), SECRET_LEN);
    }
}

#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Set a partner's own rate limit: each of its operators (with their
    /// keys, tokens and sessions) gets RATE requests per second, sustained,
    /// and bursts of BURST (default twice RATE); RATE 0: unlimited. Running
    /// gateways hear it within 5 seconds.
    Set {
        partner: String,
        #[arg(long)]
        rate: u32,
        #[arg(long)]
        burst: Option<u32>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Remove a partner's own limit: the gateway's `--rate-limit` applies again.
    Clear {
        partner: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List the partners' own limits.
    List {
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

pub async fn limits(command: LimitsCommand) -> anyhow::Result<()> {
    use crate::store::limits::PartnerLimit;
    match command {
        LimitsCommand::Set {
            partner,
            rate,
            burst,
            db,
        } => {
            let limit = PartnerLimit::new(rate, burst)
                .map_err(|why| anyhow::anyhow!("--rate, --burst: {why}"))?;
            let store = open(&db).await?;
            store
                .set_rate_limit(&partner, limit)
                .await
                .with_context(|| format!("the limit of partner {partner} was not set"))?;
            if limit.rate == 0 {
                println!("partner {partner}: no rate limit");
            } else {
                println!(
                    "partner {partner}: {} requests per second per principal, bursts of {}",
                    limit.rate, limit.burst
                );
            }
            store.close().await;
        }
        LimitsCommand::Clear { partner, db } => {
            let store = open(&db).await?;
            if store.clear_rate_limit(&partner).await? {
                println!("partner {partner}: the gateway's rate limit applies again");
            } else {
                println!("partner {partner} had no limit of its own");
            }
            store.close().await;
        }
        LimitsCommand::List { db } => {
            let store = open(&db).await?;
            for (partner, limit, at) in store.rate_limits().await? {
                println!(
                    "{partner}\trate {}\tburst {}\tset {}",
                    limit.rate,
                    limit.burst,
                    crate::time::format(at)
                );
            }
            store.close().await;
        }
    }
    Ok(())
}
