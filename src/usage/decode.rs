//! Reading usage from a compressed response: the client gets the upstream's bytes as they
//! are, and a copy is decoded, chunk by chunk, into a usage scanner. Nothing decoded is
//! kept, and decoding stops (the call then counts as unreported) past a bound, so a
//! compression bomb costs time, never memory.

use std::io::Write;

use super::extract::{JsonUsage, SseScanner, Tally};

/// Most decoded bytes read for usage per response.
const MAX_DECODED: u64 = 1 << 30;

/// What the decoded bytes are read as.
pub enum Scan {
    Json(JsonUsage),
    Sse(SseScanner),
}

impl Scan {
    pub fn tally(&self) -> Tally {
        match self {
            Scan::Json(s) => s.tally(),
            Scan::Sse(s) => s.tally(),
        }
    }
}

struct Sink {
    scan: Scan,
    decoded: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.decoded += buf.len() as u64;
        if self.decoded > MAX_DECODED {
            return Err(std::io::Error::other("decoded response too large"));
        }
        match &mut self.scan {
            Scan::Json(s) => s.push(buf),
            Scan::Sse(s) => s.scan_lines(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Codec {
    Gzip(flate2::write::GzDecoder<Sink>),
    /// HTTP's `deflate` is zlib-wrapped; some servers send it raw. Told apart by the
    /// first bytes.
    Deflate(Option<Sink>),
    Zlib(flate2::write::ZlibDecoder<Sink>),
    RawDeflate(flate2::write::DeflateDecoder<Sink>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Sink>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Sink>>),
}

/// A decoder of one response's content coding, feeding a scanner.
pub struct Decoded {
    codec: Codec,
    /// The stream did not decode (corrupt, unknown, or past the bound): no usage from it.
    failed: bool,
}

impl Decoded {
    /// For a `Content-Encoding` the relay can decode; `None` for any other (including a
    /// list of several codings, which providers do not send).
    pub fn new(encoding: &str, scan: Scan) -> Option<Decoded> {
        let sink = Sink { scan, decoded: 0 };
        let codec = match encoding.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Codec::Gzip(flate2::write::GzDecoder::new(sink)),
            "deflate" => Codec::Deflate(Some(sink)),
            "br" => Codec::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                sink, 4096,
            ))),
            "zstd" => Codec::Zstd(Box::new(zstd::stream::write::Decoder::new(sink).ok()?)),
            _ => return None,
        };
        Some(Decoded {
            codec,
            failed: false,
        })
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed || chunk.is_empty() {
            return;
        }
        if let Codec::Deflate(sink) = &mut self.codec {
            let sink = sink.take().expect("sink until the first chunk");
            let zlib = chunk.len() >= 2
                && chunk[0] & 0x0f == 8
                && (u16::from(chunk[0]) << 8 | u16::from(chunk[1])) % 31 == 0;
            self.codec = if zlib {
                Codec::Zlib(flate2::write::ZlibDecoder::new(sink))
            } else {
                Codec::RawDeflate(flate2::write::DeflateDecoder::new(sink))
            };
        }
        let written = match &mut self.codec {
            Codec::Gzip(d) => d.write_all(chunk),
            Codec::Zlib(d) => d.write_all(chunk),
            Codec::RawDeflate(d) => d.write_all(chunk),
            Codec::Brotli(d) => d.write_all(chunk),
            Codec::Zstd(d) => d.write_all(chunk),
            Codec::Deflate(_) => unreachable!("resolved above"),
        };
        self.failed = written.is_err();
    }

    /// At the end of the body: what the decoded stream reported.
    pub fn finish(&mut self) -> Tally {
        if !self.failed {
            let _ = match &mut self.codec {
                Codec::Gzip(d) => d.try_finish(),
                Codec::Zlib(d) => d.try_finish(),
                Codec::RawDeflate(d) => d.try_finish(),
                Codec::Brotli(d) => d.flush(),
                Codec::Zstd(d) => d.flush(),
                Codec::Deflate(_) => Ok(()),
            };
        }
        self.tally()
    }

    pub fn tally(&self) -> Tally {
        let sink = match &self.codec {
            Codec::Gzip(d) => d.get_ref(),
            Codec::Zlib(d) => d.get_ref(),
            Codec::RawDeflate(d) => d.get_ref(),
            Codec::Brotli(d) => d.get_ref(),
            Codec::Zstd(d) => d.get_ref(),
            Codec::Deflate(sink) => sink.as_ref().expect("no chunk yet"),
        };
        sink.scan.tally()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        br#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":13,"total_tokens":18}}"#;

    fn decode(encoding: &str, bytes: &[u8]) -> Option<i64> {
        let mut d = Decoded::new(encoding, Scan::Json(JsonUsage::default())).unwrap();
        for piece in bytes.chunks(5) {
            d.push(piece);
        }
        d.finish().total()
    }

    #[test]
    fn usage_is_read_through_every_coding() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(BODY).unwrap();
        assert_eq!(decode("gzip", &gz.finish().unwrap()), Some(18));
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(BODY).unwrap();
        assert_eq!(decode("deflate", &zlib.finish().unwrap()), Some(18));
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(BODY).unwrap();
        assert_eq!(decode("deflate", &raw.finish().unwrap()), Some(18));
        let mut br = Vec::new();
        brotli::BrotliCompress(&mut &BODY[..], &mut br, &Default::default()).unwrap();
        assert_eq!(decode("br", &br), Some(18));
        let zst = zstd::stream::encode_all(BODY, 1).unwrap();
        assert_eq!(decode("zstd", &zst), Some(18));
        assert!(Decoded::new("compress", Scan::Json(JsonUsage::default())).is_none());
        assert_eq!(decode("gzip", b"not gzip at all"), None);
    }
}
