//! `cairn key`: the passwords (key files) of the repository.

use std::path::PathBuf;

use cairn_ops::key::{self, KeyChange};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::ExitCode;
use crate::{output, password};

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// List key files (* marks the one in use)
    List,
    /// Add a password
    Add {
        /// Read the new password from the first line of F (else prompt twice)
        #[arg(long, value_name = "F")]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a key by ID (prefix); never the last one or the one in use
    Remove {
        /// The key's ID, or a unique prefix of it (`cairn key list`)
        id: String,
    },
    /// Change the password in use
    Passwd {
        /// Read the new password from the first line of F (else prompt twice)
        #[arg(long, value_name = "F")]
        new_password_file: Option<PathBuf>,
    },
}

fn new_password(file: &Option<std::path::PathBuf>) -> anyhow::Result<password::Password> {
    match file {
        Some(f) => password::read_password_file(f),
        None => password::ask_new_or_existing("enter new password: ", true),
    }
}

pub fn run(g: &GlobalArgs, a: KeyArgs) -> anyhow::Result<ExitCode> {
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    match a.command {
        KeyCommand::List => {
            let keys = repo.list_keys()?;
            if g.json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| json!({"id": k.id.to_hex(), "current": k.id == repo.key_id(), "created": k.created, "hostname": k.hostname, "username": k.username}))
                    .collect();
                output::print_json(&json!(v));
            } else {
                println!(" {:<10}  {:<12}  {:<16}  Created", "ID", "User", "Host");
                for k in &keys {
                    let cur = if k.id == repo.key_id() { "*" } else { " " };
                    println!(
                        "{cur}{:<10}  {:<12}  {:<16}  {}",
                        k.id.short(),
                        k.username,
                        k.hostname,
                        k.created
                    );
                }
            }
        }
        KeyCommand::Add { new_password_file } => {
            let pw = new_password(&new_password_file)?;
            let id = key::change(
                &repo,
                KeyChange::Add {
                    password: pw.as_bytes(),
                },
            )?;
            report(g, "added", &id.to_hex());
        }
        KeyCommand::Remove { id } => {
            let id = key::change(&repo, KeyChange::Remove { id: &id })?;
            report(g, "removed", &id.to_hex());
        }
        KeyCommand::Passwd { new_password_file } => {
            let pw = new_password(&new_password_file)?;
            let id = key::change(
                &repo,
                KeyChange::Passwd {
                    password: pw.as_bytes(),
                },
            )?;
            report(g, "changed password; new key", &id.to_hex());
        }
    }
    Ok(ExitCode::Ok)
}

fn report(g: &GlobalArgs, what: &str, id: &str) {
    if g.json {
        output::print_json(&json!({"message_type": "summary", "action": what, "key_id": id}));
    } else if !g.quiet {
        println!("{what} key {}", &id[..8]);
    }
}
