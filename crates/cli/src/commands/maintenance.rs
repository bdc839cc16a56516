//! Small commands that manage the repository itself: unlock, key, tag.

use cairn_repo::{LockKind, SnapshotRef};
use serde_json::json;

use crate::args::{GlobalArgs, KeyArgs, KeyCommand, TagArgs, UnlockArgs};
use crate::exit::{fail, ExitCode};
use crate::{output, password};

pub fn unlock(g: &GlobalArgs, a: UnlockArgs) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(g)?;
    let n = repo.unlock(a.remove_all)?;
    if g.json {
        output::print_json(&json!({"message_type": "summary", "locks_removed": n}));
    } else if !g.quiet {
        println!(
            "removed {n} {}lock(s)",
            if a.remove_all { "" } else { "stale " }
        );
    }
    Ok(ExitCode::Ok)
}

fn new_password(file: &Option<std::path::PathBuf>) -> anyhow::Result<password::Password> {
    match file {
        Some(f) => password::read_password_file(f),
        None => password::ask_new_or_existing("enter new password: ", true),
    }
}

pub fn key(g: &GlobalArgs, a: KeyArgs) -> anyhow::Result<ExitCode> {
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    // Changing keys holds the exclusive lock, and every check (is this the last key?)
    // runs under it: two `key remove` at once, each removing the other's key, must not
    // both pass the check and leave a repository nobody can open.
    let _lock = match &a.command {
        KeyCommand::List => None,
        KeyCommand::Add { .. } => Some(repo.lock(cairn_repo::LockKind::Exclusive, "key add")?),
        KeyCommand::Remove { .. } => {
            Some(repo.lock(cairn_repo::LockKind::Exclusive, "key remove")?)
        }
        KeyCommand::Passwd { .. } => {
            Some(repo.lock(cairn_repo::LockKind::Exclusive, "key passwd")?)
        }
    };
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
            let id = repo.add_key(pw.as_bytes())?;
            report(g, "added", &id.to_hex());
        }
        KeyCommand::Remove { id } => {
            let id = repo.find_key(&id)?;
            repo.remove_key(&id)?;
            report(g, "removed", &id.to_hex());
        }
        KeyCommand::Passwd { new_password_file } => {
            let pw = new_password(&new_password_file)?;
            let id = repo.change_password(pw.as_bytes())?;
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

pub fn tag(g: &GlobalArgs, a: TagArgs) -> anyhow::Result<ExitCode> {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() {
        return Err(fail(
            ExitCode::Fatal,
            "nothing to do: give --add, --remove or --set",
        ));
    }
    if !a.set.is_empty() && (!a.add.is_empty() || !a.remove.is_empty()) {
        return Err(fail(
            ExitCode::Fatal,
            "--set cannot be combined with --add or --remove",
        ));
    }
    let split = |v: &[String]| -> Vec<String> {
        v.iter()
            .flat_map(|t| t.split(','))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (add, remove, set) = (split(&a.add), split(&a.remove), split(&a.set));
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    let _lock = repo.lock(LockKind::Exclusive, "tag")?;
    let targets: Vec<SnapshotRef> = a
        .snapshots
        .iter()
        .map(|s| repo.find_snapshot(s))
        .collect::<Result<_, _>>()?;
    let mut changed = Vec::new();
    for s in targets {
        let mut snap = s.snapshot.clone();
        if !a.set.is_empty() {
            snap.tags = set.clone();
        }
        for t in &add {
            if !snap.tags.contains(t) {
                snap.tags.push(t.clone());
            }
        }
        snap.tags.retain(|t| !remove.contains(t));
        if snap.tags == s.snapshot.tags {
            continue;
        }
        let new = repo.replace_snapshot(&s.id, &snap)?;
        changed.push((s.id, new));
    }
    if g.json {
        let v: Vec<_> = changed
            .iter()
            .map(|(o, n)| json!({"old": o.to_hex(), "new": n.to_hex()}))
            .collect();
        output::print_json(&json!({"message_type": "summary", "changed": v}));
    } else if !g.quiet {
        for (o, n) in &changed {
            println!("snapshot {} is now {}", o.short(), n.short());
        }
        println!("modified {} snapshot(s)", changed.len());
    }
    Ok(ExitCode::Ok)
}
