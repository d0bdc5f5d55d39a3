//! Which TLS library a file carries when no strategy found its functions, from strings its code
//! cannot drop: the source paths its error macros record (`__FILE__`) and its own name. Only used
//! to tell a blind spot from a file without TLS, never to place a hook.

use memchr::memmem;

use super::Library;

/// Stored reversed, so that guard's own binary does not carry them and look like a TLS library;
/// turned around through [`forward`], which the optimiser cannot fold back into a constant.
const MARKERS: &[(&[u8], Library)] = &[
    // OPENSSL_PUT_ERROR records __FILE__: BoringSSL's TLS code is in ssl/*.cc ("/ssl/ssl_lib.cc").
    (b"\0cc.bil_lss/lss/", Library::Boringssl),
    (b"\0c.bil_lss/lss/", Library::Openssl),
    // OpenSSL built in its own tree (openssl-src, the `openssl` crate's `vendored`) records the
    // relative path.
    (b"\0c.bil_lss/lss\0", Library::Openssl),
    // Panic locations name the crate's source path.
    (b"-sltsur/", Library::Rustls),
];

/// What the OpenSSL and BoringSSL markers share (reversed, like them): a file without it needs
/// only the rustls marker looked for, one pass less over a new 100 MB binary per marker.
const SSL_LIB: &[u8] = b"c.bil_lss/lss";

/// A marker the right way round, built at run time only.
pub(super) fn forward(reversed: &[u8]) -> Vec<u8> {
    std::hint::black_box(reversed).iter().rev().copied().collect()
}

pub(super) fn library(data: &[u8]) -> Option<Library> {
    let ssl_lib = forward(SSL_LIB);
    let ssl = memmem::find(data, &ssl_lib).is_some();
    MARKERS
        .iter()
        .filter(|(_, l)| ssl || *l == Library::Rustls)
        .find(|(m, _)| {
            memmem::find(data, &forward(m)).is_some()
        })
        .map(|(_, l)| *l)
}

/// Whether the file carries this library's marker, even when another's comes first.
pub(super) fn has(data: &[u8], lib: Library) -> bool {
    MARKERS.iter().filter(|(_, l)| *l == lib).any(|(m, _)| {
        memmem::find(data, &forward(m)).is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_openssl_family_marker_contains_the_shared_prefilter() {
        for (m, lib) in MARKERS.iter().filter(|(_, l)| *l != Library::Rustls) {
            assert!(memmem::find(m, SSL_LIB).is_some(), "{lib:?} marker {:?} escapes the SSL_LIB prefilter", String::from_utf8_lossy(m));
        }
    }

    #[test]
    fn source_paths_name_the_library() {
        // Built at run time so that the test binary itself carries no marker.
        let path = |ext: &str| {
            format!(
                "x\0../../vendor/boringssl/ssl/ssl_lib.{}\0y",
                std::hint::black_box(ext)
            )
            .into_bytes()
        };
        assert_eq!(library(&path("cc")), Some(Library::Boringssl));
        assert_eq!(library(&path("c")), Some(Library::Openssl));
        let relative = format!("x\0ssl/ssl_lib.{}\0y", std::hint::black_box("c"));
        assert_eq!(library(relative.as_bytes()), Some(Library::Openssl));
        assert_eq!(
            library(
                format!(
                    "/registry/src/x/{}-0.23.1/src/conn.rs",
                    std::hint::black_box("rustls")
                )
                .as_bytes()
            ),
            Some(Library::Rustls)
        );
        assert_eq!(library(b"hello world"), None);
    }
}
