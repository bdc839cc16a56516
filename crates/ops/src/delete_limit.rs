//! How much a copy to another location (ship, sync) deletes there without being told
//! `--allow-deletes`: one rule for both, so a mistake (a wrong source, an emptied
//! directory, a repository swapped for another) cannot empty the last copy.

/// Deletions made without `--allow-deletes`: up to this share of the destination's
/// files (a day's prune, a day's edits are far below it)...
pub const DELETE_SHARE_PERCENT: u64 = 10;
/// ...or up to this many files, so a small destination can still follow its source.
pub const DELETE_FREE_FILES: u64 = 10;

/// Why deleting `n` of the destination's `total` files needs `--allow-deletes`, if it does.
pub fn share_refusal(n: u64, total: u64) -> Option<String> {
    (n > DELETE_FREE_FILES && n * 100 > total * DELETE_SHARE_PERCENT)
        .then(|| format!("it would delete {n} of the destination's {total} files (more than {DELETE_SHARE_PERCENT}%)"))
}

#[cfg(test)]
mod tests {
    use super::share_refusal;

    #[test]
    fn small_or_few_deletions_pass_and_large_shares_need_the_flag() {
        assert!(share_refusal(10, 10).is_none(), "ten files always pass");
        assert!(share_refusal(11, 200).is_none(), "5.5%");
        assert!(share_refusal(11, 100).is_some(), "11%");
        assert!(share_refusal(1000, 1000).is_some());
    }
}
