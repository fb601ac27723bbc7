//! The guest's Debug service, which only the test image's vminitd serves
//! (built with its `debug-rpcs` feature): reading guest files, mounting,
//! and flooding the span buffer. Release builds of the shim lack it too.

use std::time::Duration;

use voidbox_api::debug::*;
use voidbox_api::debug_ttrpc;

use super::client::{call, ctx};
use super::{GuestClient, GuestError};

const BOUND: Duration = Duration::from_secs(30);

pub struct DebugClient(debug_ttrpc::DebugClient);

impl GuestClient {
    /// The guest's Debug service (absent from release images: its calls
    /// then fail with NOT_FOUND).
    pub fn debug(&self) -> DebugClient {
        DebugClient(debug_ttrpc::DebugClient::new(self.client.clone()))
    }
}

impl DebugClient {
    pub async fn mount(&self, fstype: &str, source: &str, target: &str, options: &[&str]) -> Result<(), GuestError> {
        let req = MountRequest {
            fstype: fstype.into(),
            source: source.into(),
            target: target.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            ..Default::default()
        };
        call("Debug.Mount", Some(BOUND), self.0.mount(ctx(), &req))
            .await
            .map(drop)
    }

    /// Reads up to `max_bytes` of a guest file; the flag says whether it was longer.
    pub async fn read_file(&self, path: &str, max_bytes: u64) -> Result<(Vec<u8>, bool), GuestError> {
        let req = ReadFileRequest {
            path: path.into(),
            max_bytes,
            ..Default::default()
        };
        call("Debug.ReadFile", Some(BOUND), self.0.read_file(ctx(), &req))
            .await
            .map(|r| (r.data, r.truncated))
    }

    /// Makes `count` spans in the guest, as fast as it can (`per_second`
    /// 0) or paced at `per_second`.
    pub async fn flood(&self, count: u64, per_second: u64) -> Result<FloodResponse, GuestError> {
        let req = FloodRequest {
            count,
            per_second,
            ..Default::default()
        };
        // A paced flood lasts count / per_second by design.
        let paced = Duration::from_secs(count.checked_div(per_second).unwrap_or(0));
        call("Debug.Flood", Some(BOUND + paced), self.0.flood(ctx(), &req)).await
    }

    /// Records the sample span (`voidbox_api::otel::sample`) in the guest;
    /// returns its trace and span ids, hex.
    pub async fn sample(&self) -> Result<(String, String), GuestError> {
        call(
            "Debug.Sample",
            Some(BOUND),
            self.0.sample(ctx(), &SampleRequest::default()),
        )
        .await
        .map(|r| (r.trace_id, r.span_id))
    }
}
