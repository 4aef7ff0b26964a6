//! The checked-in header is what cbindgen makes of the current sources.

use std::path::Path;

#[test]
fn the_header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("generate the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("the header is UTF-8");

    let path = crate_dir.join("include/fanout.h");
    if std::env::var_os("FANOUT_BLESS_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write include/fanout.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "ffi/include/fanout.h is out of date with ffi/src; \
         regenerate it with: FANOUT_BLESS_HEADER=1 cargo test -p fanout-ffi --test header"
    );
}
