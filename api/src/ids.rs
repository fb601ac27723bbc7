//! Container ids become path components in the guest (bundles, cgroups,
//! shares), and exec ids become file names in a container's bundle
//! (`exec-<id>.json`). Both sides check them: the shim before it boots a VM
//! or registers an exec, vminitd because it trusts nothing.
//!
//! The guest cgroup of a container is one rule both sides share: the shim
//! writes it into the spec as `linux.cgroupsPath`, vminitd refuses any other
//! (its stats, pids and OOM accounting read that cgroup).

/// The parent of every container's cgroup in the guest.
pub const GUEST_CGROUP_PARENT: &str = "/containers";

/// A container's cgroup in the guest, as the spec's `linux.cgroupsPath`
/// must name it: `/containers/<id>`.
pub fn guest_cgroup_path(id: &str) -> String {
    format!("{GUEST_CGROUP_PARENT}/{id}")
}

/// 1 to 128 of `[A-Za-z0-9_.-]`, other than `.` and `..`: never a `/`, so
/// never more than one path component, and never a step up.
fn is_path_component(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// `Ok` for 1 to 128 of `[A-Za-z0-9_.-]`, other than `.` and `..`.
pub fn check_container_id(id: &str) -> Result<(), String> {
    if is_path_component(id) {
        Ok(())
    } else {
        Err(format!("container id {id:?}: use 1-128 of [A-Za-z0-9_.-]"))
    }
}

/// An exec's id, by the container id's rules (the init process has the
/// empty exec id, which is no exec's).
pub fn check_exec_id(id: &str) -> Result<(), String> {
    if is_path_component(id) {
        Ok(())
    } else {
        Err(format!("exec id {id:?}: use 1-128 of [A-Za-z0-9_.-]"))
    }
}

#[cfg(test)]
mod tests {
    use super::{check_container_id, check_exec_id, guest_cgroup_path};

    #[test]
    fn ids_are_path_components() {
        assert!(check_container_id("abc-1_2.3").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "a+b", &"x".repeat(129)] {
            assert!(check_container_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exec_ids_are_path_components_too() {
        assert!(check_exec_id("exec-1_2.3").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", "/abs", "a\0b", &"x".repeat(129)] {
            assert!(check_exec_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn guest_cgroups_live_under_containers() {
        assert_eq!(guest_cgroup_path("c1"), "/containers/c1");
    }
}
