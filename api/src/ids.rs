//! Container ids become path components in the guest (bundles, cgroups,
//! shares). Both sides check them: the shim before it boots a VM, vminitd
//! because it trusts nothing.

/// `Ok` for 1 to 128 of `[A-Za-z0-9_.-]`, other than `.` and `..`.
pub fn check_container_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("container id {id:?}: use 1-128 of [A-Za-z0-9_.-]"))
    }
}

#[cfg(test)]
mod tests {
    use super::check_container_id;

    #[test]
    fn ids_are_path_components() {
        assert!(check_container_id("abc-1_2.3").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "a+b", &"x".repeat(129)] {
            assert!(check_container_id(bad).is_err(), "{bad:?}");
        }
    }
}
