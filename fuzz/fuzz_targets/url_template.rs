//! Any template either is refused with a message, or makes a valid http(s) URL for
//! any ID, on the same server for every ID and holding that ID's digits; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, u64)| {
    let (template, id) = input;
    match fanout::UrlTemplate::parse(template) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(parsed) => {
            let url = parsed.url(id);
            assert!(url.contains(&id.to_string()), "{url:?} lacks {id}");
            let uri: ureq::http::Uri = url.parse().expect("a parsed template makes a valid URL");
            assert!(matches!(uri.scheme_str(), Some("http" | "https")), "{url:?}");
            assert!(uri.host().is_some_and(|h| !h.is_empty()), "{url:?}");
            // Every ID goes to the same server.
            let base: ureq::http::Uri = parsed.url(0).parse().expect("valid URL");
            assert_eq!(uri.authority(), base.authority(), "{url:?}");
        }
    }
});
