//! Helpers shared by the decoder tests.

use std::io::Write as _;

use super::encoding::Encoding;

/// Compresses `data` with the same crates the decoder uses.
pub(crate) fn compress(enc: Encoding, data: &[u8]) -> Vec<u8> {
    match enc {
        Encoding::Identity => data.to_vec(),
        Encoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Encoding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Encoding::Br => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data).unwrap();
            }
            out
        }
        Encoding::Zstd => zstd::stream::encode_all(data, 3).unwrap(),
    }
}
