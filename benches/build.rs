//! Builds the C peers (`peers/*.c`) against Debian's libev-dev and
//! libevent-dev with the `cc` crate, at `-O2` like any distribution build.
//! A library whose headers are missing is skipped with a printed note, and
//! the benchmarks run without that peer: the build never fails for it.

fn main() {
    println!("cargo::rerun-if-changed=peers");
    println!("cargo::rerun-if-changed=build.rs");
    // libevent first: Debian's libev.so also exports libevent's names
    // (`event_add`: its emulation layer), and the dynamic linker binds each
    // name to the first library that defines it, so libevent's own must
    // come before libev's in the executable's list of needed libraries.
    let peers = [
        // (cfg name, source, library to link, Debian package)
        (
            "have_libevent",
            "peers/libevent_peer.c",
            "event_core",
            "libevent-dev",
        ),
        ("have_libev", "peers/libev_peer.c", "ev", "libev-dev"),
    ];
    for (cfg, source, lib, package) in peers {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let built = cc::Build::new()
            .file(source)
            .opt_level(2)
            .warnings(true)
            .cargo_warnings(false)
            .try_compile(cfg);
        match built {
            Ok(()) => {
                println!("cargo::rustc-link-lib={lib}");
                println!("cargo::rustc-cfg={cfg}");
            }
            Err(_) => println!(
                "cargo::warning={source} not built ({package} missing? \
                 `apt-get install {package}`): that peer is skipped"
            ),
        }
    }
}
