//! Build-time facts for the test suite only: whether Chromium and
//! chromedriver are here. Without them (and outside CI, where their absence
//! is a failure) the browser scenarios are compiled as ignored, so
//! `cargo test` reports them as skipped instead of passing without running.

use std::path::{Path, PathBuf};

fn chromedriver_found() -> bool {
    let driver = match std::env::var_os("CHROMEDRIVER") {
        Some(path) => Some(PathBuf::from(path)),
        None => std::iter::once(PathBuf::from("/usr/bin"))
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            ))
            .map(|dir| dir.join("chromedriver"))
            .find(|path| path.is_file()),
    };
    driver.is_some_and(|d| d.is_file()) && Path::new("/usr/bin/chromium").is_file()
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(browser_missing)");
    println!("cargo::rerun-if-env-changed=CHROMEDRIVER");
    println!("cargo::rerun-if-env-changed=CI");
    // Installing the packages changes /usr/bin.
    println!("cargo::rerun-if-changed=/usr/bin");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("CI").is_none() && !chromedriver_found() {
        println!("cargo::rustc-cfg=browser_missing");
    }
}
