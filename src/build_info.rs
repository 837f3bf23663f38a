//! Which build of the component this is, fixed at compile time by its backend's cargo feature:
//! `GET /info` reports it.

/// A build's name (as docs/deploy.md and the Makefile name the builds) and its inference backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Build {
    pub name: &'static str,
    pub backend: &'static str,
}

#[cfg(feature = "wasi-nn")]
pub const BUILD: Build = Build {
    name: "fast",
    backend: "wasi-nn",
};

#[cfg(feature = "spin-llm")]
pub const BUILD: Build = Build {
    name: "spin-llm",
    backend: "spin-llm",
};

#[cfg(feature = "portable")]
pub const BUILD: Build = Build {
    name: "portable",
    backend: "in-wasm",
};

#[cfg(feature = "remote")]
pub const BUILD: Build = Build {
    name: "edge",
    backend: "remote",
};

#[cfg(not(any(
    feature = "wasi-nn",
    feature = "spin-llm",
    feature = "portable",
    feature = "remote"
)))]
compile_error!("name this build's backend feature in src/build_info.rs (GET /info reports it)");
