//! `key add`, `key remove`, `key passwd`: changes to who can open the repository.

use cairn_format::KeyId;
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::Repository;

use crate::OpsError;

/// One change to the repository's keys.
pub enum KeyChange<'a> {
    /// A new key for this password.
    Add { password: &'a [u8] },
    /// The key `id` names (an ID or a unique prefix).
    Remove { id: &'a str },
    /// A new key for this password replaces the one that opened the repository.
    Passwd { password: &'a [u8] },
}

/// Makes `change` under the exclusive lock, so every check it makes (is this the last
/// key?) holds when the change lands: two `key remove` at once, each removing the
/// other's key, must not both pass and leave a repository nobody can open. Returns the
/// key added or removed.
pub fn change(repo: &std::sync::Arc<Repository>, change: KeyChange) -> Result<KeyId, OpsError> {
    let command = match change {
        KeyChange::Add { .. } => "key add",
        KeyChange::Remove { .. } => "key remove",
        KeyChange::Passwd { .. } => "key passwd",
    };
    if !matches!(change, KeyChange::Add { .. }) {
        repo.require_deletes(command)?;
    }
    let _session = Session::begin(repo, command, Access::Change, LoadIndex::No)?;
    Ok(match change {
        KeyChange::Add { password } => repo.add_key(password)?,
        KeyChange::Remove { id } => {
            let id = repo.find_key(id)?;
            repo.remove_key(&id)?;
            id
        }
        KeyChange::Passwd { password } => repo.change_password(password)?,
    })
}
