//! How small a free block the balloon hands back to the host.
//!
//! Free page reporting gives the host every free block of at least
//! 2^`page_reporting_order` pages; by default that is a whole pageblock
//! (2 MiB), so memory freed in smaller pieces stays resident on the host.
//! The host asks for an order with the kernel's own argument,
//! `page_reporting.page_reporting_order=N`. Linux 6.1 overwrites that value
//! when the balloon driver registers (later kernels keep it), so it is
//! written again here, after the driver is up.

use tracing::{debug, warn};

use crate::cmdline::Cmdline;

const ARG: &str = "page_reporting.page_reporting_order";
const PARAM: &str = "/sys/module/page_reporting/parameters/page_reporting_order";
/// Orders run 0 to MAX_ORDER - 1 (10); 6.1 takes any number and a larger
/// one would quietly stop reporting.
const MAX: u32 = 10;

/// Applies the command line's reporting order, if it names one. Never
/// fatal: a guest that cannot report small blocks still runs.
pub fn apply(cmdline: &Cmdline) {
    let Some(value) = cmdline.get(ARG) else { return };
    let order = match value.parse::<u32>() {
        Ok(order) if order <= MAX => order,
        _ => {
            warn!("{ARG}={value:?} ignored: an order is 0 to {MAX}");
            return;
        }
    };
    match std::fs::write(PARAM, order.to_string()) {
        // Debug only: otherwise a line on every boot's console, which
        // the emulated serial port writes a byte at a time.
        Ok(()) => debug!("free page reporting from order {order} up"),
        // A kernel without free page reporting has nothing to set.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!("cannot set free page reporting's order: write {PARAM}: {e}"),
    }
}
