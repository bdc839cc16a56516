//! Profiles as rustic users write them, turned into cairn's form before they are read,
//! so a rustic profile needs only its paths changed: kebab-case keys (`password-file`,
//! `keep-daily`), the `[repository]` table, and sources in `[[backup.snapshots]]`
//! (or `[[backup.sources]]`). What cairn has no equivalent for stays an error naming
//! the key, as any unknown key is: a dropped exclude or retention rule must not pass
//! silently.

use toml::{Table, Value};

/// Rewrites `v` in place into cairn's form; `Err` names a key that cannot be carried
/// over and why.
pub fn normalize(v: &mut Table) -> Result<(), String> {
    snake_keys(v);
    if let Some(Value::Table(repo)) = v.remove("repository") {
        for (k, val) in repo {
            match k.as_str() {
                "repository" | "password_file" | "password_command" | "no_cache" => {
                    if v.insert(k.clone(), val).is_some() {
                        return Err(format!("`{k}` is given twice (top level and [repository])"));
                    }
                }
                "password" => {
                    return Err("[repository] password: cairn does not read passwords from profiles; put it in a file named by password-file (mode 0600)".into())
                }
                other => return Err(format!("[repository] {other}: no such cairn option")),
            }
        }
    }
    if let Some(Value::Table(backup)) = v.get_mut("backup") {
        let mut paths: Vec<Value> = match backup.remove("paths") {
            Some(Value::Array(a)) => a,
            Some(other) => vec![other],
            None => Vec::new(),
        };
        for key in ["snapshots", "sources"] {
            let Some(list) = backup.remove(key) else {
                continue;
            };
            let Value::Array(list) = list else {
                return Err(format!("[backup] {key}: expected [[backup.{key}]] tables"));
            };
            for entry in list {
                let Value::Table(t) = entry else {
                    return Err(format!("[backup] {key}: expected [[backup.{key}]] tables"));
                };
                for (k, val) in t {
                    match (k.as_str(), val) {
                        ("sources", Value::Array(a)) => paths.extend(a),
                        ("sources", one @ Value::String(_)) => paths.push(one),
                        (other, _) => {
                            return Err(format!(
                                "[[backup.{key}]] {other}: cairn has no per-source options; put it in [backup] for all sources"
                            ))
                        }
                    }
                }
            }
        }
        if !paths.is_empty() {
            backup.insert("paths".into(), Value::Array(paths));
        }
    }
    if let Some(Value::Table(forget)) = v.get_mut("forget") {
        // rustic's name for what cairn's profile calls keep_tag.
        if let Some(tags) = forget.remove("keep_tags") {
            forget.insert("keep_tag".into(), tags);
        }
    }
    Ok(())
}

/// Whether `v` is written the rustic way (so its errors cannot point at lines).
pub fn is_rustic(v: &Table) -> bool {
    fn kebab(t: &Table) -> bool {
        t.iter().any(|(k, v)| {
            k.contains('-')
                || match v {
                    Value::Table(t) => kebab(t),
                    Value::Array(a) => a.iter().any(|x| matches!(x, Value::Table(t) if kebab(t))),
                    _ => false,
                }
        })
    }
    matches!(v.get("repository"), Some(Value::Table(_)))
        || kebab(v)
        || matches!(v.get("backup"), Some(Value::Table(b)) if b.contains_key("snapshots") || b.contains_key("sources"))
}

fn snake_keys(t: &mut Table) {
    let old = std::mem::take(t);
    for (k, mut v) in old {
        match &mut v {
            Value::Table(inner) => snake_keys(inner),
            Value::Array(a) => a.iter_mut().for_each(|x| {
                if let Value::Table(inner) = x {
                    snake_keys(inner)
                }
            }),
            _ => {}
        }
        t.insert(k.replace('-', "_"), v);
    }
}
