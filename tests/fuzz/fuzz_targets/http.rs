//! HTTP request targets and Range headers. Input: `<request-target>\n<Range value>`. The target
//! is parsed as hyper does (an `http::Uri`), then routed and its boot query read as the
//! handler does; the Range value is parsed against files of several sizes, and any partial
//! range must lie inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot_node::http::{
    file::{parse_range, RangeRequest},
    route::{BootQuery, Route},
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (target, range) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(uri) = target.parse::<http::Uri>() {
        match Route::parse(uri.path()) {
            Route::NotFound(why) => assert!(why.ends_with(uri.path())),
            Route::BootScript | Route::BootImage(_) => {
                let _ = BootQuery::parse(uri.query().unwrap_or(""));
            }
            _ => {}
        }
    }
    let declared = range.len() as u64 * 7919;
    for size in [0, 1, 100, declared, u64::MAX - 1, u64::MAX] {
        match parse_range(Some(range), size) {
            RangeRequest::Partial(r) => {
                assert!(r.start < r.end, "{range:?} on {size}: empty range {r:?}");
                assert!(
                    r.end <= size,
                    "{range:?} on {size}: {r:?} ends past the file"
                );
            }
            RangeRequest::Whole | RangeRequest::Unsatisfiable => {}
        }
    }
});
