//! The C API from outside Rust: a C program compiled with the system's C compiler
//! (under valgrind when it is installed), and the Python example through ctypes.
//!
//! `.ci/run` sets `FANOUT_REQUIRE_VALGRIND=1` and installs valgrind, so there the C
//! test cannot quietly run without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testserver::{Reply, TestServer, TlsServer, TlsServerConfig};

/// "user N" for ID N, a 500 for ID 13, no answer ever for ID 999.
fn server() -> TestServer {
    TestServer::start(|id| match id {
        Some(13) => Reply::status(500),
        Some(999) => Reply::Hang,
        Some(id) => Reply::ok(format!("user {id}")),
        None => Reply::status(404),
    })
}

/// Where cargo put `libfanout_ffi.so` for this test build: beside the test binary, in
/// `<profile>/deps` (a `cargo build` also copies it up to `<profile>`).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary is in <profile>/deps");
    [Some(deps), deps.parent()]
        .into_iter()
        .flatten()
        .find(|dir| dir.join("libfanout_ffi.so").exists())
        .unwrap_or_else(|| panic!("no libfanout_ffi.so in or above {}", deps.display()))
        .to_path_buf()
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn show(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_c_test_program_passes_with_no_leaks_or_memory_errors() {
    let lib = library_dir();
    let out_dir = tempfile::tempdir().expect("a temporary directory");
    let program = out_dir.path().join("fanout_test");
    let compiled = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-g",
            "-D_POSIX_C_SOURCE=200809L",
        ])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join("tests/c/fanout_test.c"))
        .arg("-o")
        .arg(&program)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lfanout_ffi", "-lpthread"])
        .output()
        .expect("run the C compiler (cc)");
    assert!(
        compiled.status.success(),
        "compiling the C test failed: {}",
        show(&compiled)
    );

    let server = server();
    let tls_server = TlsServer::start_with(
        TlsServerConfig {
            require_client_cert: true,
            ..TlsServerConfig::default()
        },
        |id| Reply::ok(format!("user {}", id.unwrap_or(0))),
    );
    let client_cert = tls_server.client_cert();
    let pem_file = |name: &str, contents: &str| {
        let path = out_dir.path().join(name);
        std::fs::write(&path, contents).expect("write a PEM file");
        path
    };
    let mut args: Vec<std::ffi::OsString> =
        vec![server.template().into(), tls_server.template().into()];
    args.push(pem_file("ca.pem", &tls_server.ca_pem()).into_os_string());
    args.push(pem_file("client.pem", &client_cert.cert_pem).into_os_string());
    args.push(pem_file("client.key", &client_cert.key_pem).into_os_string());

    let valgrind = have("valgrind");
    if !valgrind && std::env::var_os("FANOUT_REQUIRE_VALGRIND").is_some() {
        panic!("FANOUT_REQUIRE_VALGRIND is set but valgrind is not installed");
    }
    // The library of this build: cargo's LD_LIBRARY_PATH would come before the rpath,
    // and may hold an older copy from a `cargo build`.
    let output = if valgrind {
        Command::new("valgrind")
            .env("LD_LIBRARY_PATH", &lib)
            .args([
                "--quiet",
                "--error-exitcode=99",
                "--leak-check=full",
                "--show-leak-kinds=definite,indirect,possible",
                "--errors-for-leak-kinds=definite,indirect,possible",
            ])
            .arg(format!(
                "--suppressions={}",
                crate_dir().join("tests/c/valgrind.supp").display()
            ))
            .arg(&program)
            .args(&args)
            .output()
    } else {
        eprintln!("valgrind is not installed: running the C test without it");
        Command::new(&program)
            .env("LD_LIBRARY_PATH", &lib)
            .args(&args)
            .output()
    }
    .expect("run the C test program");
    assert!(
        output.status.success(),
        "the C test failed: {}",
        show(&output)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("all checks passed"),
        "{}",
        show(&output)
    );
}

#[test]
fn the_python_example_fetches_through_the_shared_library() {
    let server = server();
    let library = library_dir().join("libfanout_ffi.so");
    let output = Command::new("python3")
        .arg(crate_dir().join("python/fetch_users.py"))
        .arg("--library")
        .arg(&library)
        .arg(server.template())
        .args(["3", "1", "2"])
        .output()
        .expect("run python3");
    assert!(output.status.success(), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout,
        "1\tuser 1\n2\tuser 2\n3\tuser 3\n",
        "{}",
        show(&output)
    );

    // A failing ID: the example reports the library's error and exits 1.
    let output = Command::new("python3")
        .arg(crate_dir().join("python/fetch_users.py"))
        .arg("--library")
        .arg(&library)
        .arg(server.template())
        .args(["1", "13"])
        .output()
        .expect("run python3");
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("user 13") && stderr.contains("500"),
        "{}",
        show(&output)
    );

    // Text keys: "08" is user 8 to the server, and "a/b" one segment it does not know.
    let output = Command::new("python3")
        .arg(crate_dir().join("python/fetch_users.py"))
        .arg("--library")
        .arg(&library)
        .arg("--keys")
        .arg(server.template())
        .args(["7", "08", "7"])
        .output()
        .expect("run python3");
    assert!(output.status.success(), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout, "08\tuser 8\n7\tuser 7\n", "{}", show(&output));
    let output = Command::new("python3")
        .arg(crate_dir().join("python/fetch_users.py"))
        .arg("--library")
        .arg(&library)
        .arg("--keys")
        .arg(server.template())
        .args(["1", "a/b"])
        .output()
        .expect("run python3");
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("key \"a/b\": http status 404"),
        "{}",
        show(&output)
    );
}
