//! Compatibility shim for clients that put a URL in HTTP/2's `:authority`.
//!
//! etcdctl 3.4 (Go gRPC) given `--endpoints=http://127.0.0.1:2379` for `endpoint status` and
//! `endpoint hashkv` dials the target `passthrough:///http://127.0.0.1:2379`, so its requests
//! carry `:authority: http://127.0.0.1:2379`. Go's gRPC server (real etcd) accepts that; the h2
//! crate under tonic rejects it as a malformed authority and resets the stream with
//! PROTOCOL_ERROR.
//!
//! [`H2AuthorityFix`] wraps an accepted connection and rewrites the client->server byte stream
//! before h2 sees it: after the HTTP/2 client preface it follows the frames, and for every
//! header block (HEADERS plus its CONTINUATIONs) it decodes the HPACK block with a decoder that
//! mirrors the client's encoder, strips a scheme from `:authority` (`http://h:p/` -> `h:p`; a unix socket path, `unix:///p` or `/p`, -> `localhost`), and
//! re-encodes the block for the server. The re-encoding uses only static-table references and
//! literals *without indexing*, so the server's dynamic table stays empty; that is also why every
//! block is re-encoded, not just the ones that change (the server's decoder must never see a
//! reference to an entry that only the client's encoder and our decoder know). Padding is
//! dropped; END_STREAM and the PRIORITY fields are kept. All other frames pass through unchanged,
//! and DATA payloads are forwarded without buffering whole frames.
//!
//! If the connection does not start with the HTTP/2 preface (for example an HTTP/1 request),
//! everything passes through untouched. On malformed input (bad framing or HPACK, oversized
//! blocks) the shim forwards the raw bytes it holds and passes everything through from then on,
//! so h2 reports the error exactly as it would have without the shim. It never panics on input.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// The HTTP/2 client connection preface (RFC 9113 section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
/// The smallest SETTINGS_MAX_FRAME_SIZE, and the default of h2's server: frames we build stay
/// within it.
const MAX_FRAME_PAYLOAD: usize = 16_384;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// Raw bytes of one header block (frames included) we are willing to buffer. The server accepts
/// a header list of 16 KiB by default, so anything near this is rejected by h2 anyway; past it we
/// give up and pass through.
const MAX_BLOCK_BYTES: usize = 1 << 20;
/// Decoded size (RFC 7541 accounting: name + value + 32 per field) of one header block we are
/// willing to produce; guards against blocks of tiny indexed references to large entries.
const MAX_DECODED_BYTES: usize = 1 << 20;
/// Largest dynamic table size update we accept. The server advertises the default 4096; a client
/// may only go up to what the server advertised, so this is generous.
const MAX_DYNAMIC_TABLE_SIZE: usize = 1 << 16;
/// Size of the read buffer used when input has to be inspected.
const READ_CHUNK: usize = 16 * 1024;

/// A connection whose client->server HTTP/2 header blocks are rewritten so that an
/// `:authority` carrying a URL (`http://host:port`) becomes a plain `host:port`.
/// Writes go straight to the inner stream.
pub struct H2AuthorityFix<S> {
    inner: S,
    rw: Rewriter,
    /// The inner stream reported end of input.
    eof: bool,
}

impl<S> H2AuthorityFix<S> {
    pub fn new(inner: S) -> Self {
        H2AuthorityFix {
            inner,
            rw: Rewriter::new(),
            eof: false,
        }
    }
}

impl<S: Connected> Connected for H2AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for H2AuthorityFix<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let before = buf.filled().len();
            this.rw.emit(buf);
            if buf.filled().len() > before || this.eof {
                return Poll::Ready(Ok(()));
            }
            // Nothing buffered is ready; read more. Bytes that are only forwarded (a DATA payload,
            // or everything in pass-through mode) go straight into the caller's buffer when the
            // whole of it may be filled with them.
            if this.rw.direct_budget() >= buf.remaining() {
                ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                let n = buf.filled().len() - before;
                if n == 0 {
                    this.eof = true;
                } else {
                    this.rw.direct_consumed(n);
                }
                return Poll::Ready(Ok(()));
            }
            let chunk = this.rw.read_space();
            let mut rb = ReadBuf::new(chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                this.eof = true;
                this.rw.at_eof();
            } else {
                this.rw.filled(n);
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for H2AuthorityFix<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Where the rewriter is in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Matching the client preface; `0..n` bytes matched (and already forwarded).
    Preface(usize),
    /// Collecting a 9-byte frame header.
    FrameHeader,
    /// Forwarding this many more payload bytes of a frame that is not rewritten.
    Forward(usize),
    /// Collecting this many more payload bytes of a HEADERS/CONTINUATION frame into `held`.
    BlockPayload(usize),
    /// Not HTTP/2, or we gave up: everything is forwarded unchanged.
    Passthrough,
}

/// One decoded header field: ranges into the decode arena.
#[derive(Debug, Clone)]
struct Field {
    name: Range<usize>,
    value: Range<usize>,
    never_indexed: bool,
}

/// The byte-stream transformation, independent of I/O.
struct Rewriter {
    state: State,
    /// Read buffer: unprocessed input is `input[in_pos..in_end]`.
    input: Vec<u8>,
    in_pos: usize,
    in_end: usize,
    /// Output ready for the caller: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// Partial frame header.
    fh: [u8; FRAME_HEADER_LEN],
    fh_len: usize,
    /// Inside a header block that has not seen END_HEADERS yet (expecting CONTINUATION).
    in_block: bool,
    /// Raw frames (headers included) of the current header block, forwarded as-is on failure.
    held: Vec<u8>,
    /// Offset in `held` of the frame being collected.
    frame_start: usize,
    /// Concatenated header block fragments of the current block.
    block: Vec<u8>,
    block_stream: u32,
    block_flags: u8,
    priority: Option<[u8; 5]>,
    decoder: HpackDecoder,
    arena: Vec<u8>,
    fields: Vec<Field>,
    encoded: Vec<u8>,
}

impl Rewriter {
    fn new() -> Self {
        Rewriter {
            state: State::Preface(0),
            input: Vec::new(),
            in_pos: 0,
            in_end: 0,
            out: Vec::new(),
            out_pos: 0,
            fh: [0; FRAME_HEADER_LEN],
            fh_len: 0,
            in_block: false,
            held: Vec::new(),
            frame_start: 0,
            block: Vec::new(),
            block_stream: 0,
            block_flags: 0,
            priority: None,
            decoder: HpackDecoder::new(),
            arena: Vec::new(),
            fields: Vec::new(),
            encoded: Vec::new(),
        }
    }

    /// How many bytes may be read from the connection straight into the caller's buffer: only
    /// when nothing is buffered and the next bytes are forwarded unchanged.
    fn direct_budget(&self) -> usize {
        if self.out_pos < self.out.len() || self.in_pos < self.in_end {
            return 0;
        }
        match self.state {
            State::Forward(n) => n,
            State::Passthrough => usize::MAX,
            _ => 0,
        }
    }

    /// `n` bytes (at most [`Self::direct_budget`]) were read straight into the caller's buffer.
    fn direct_consumed(&mut self, n: usize) {
        if let State::Forward(rem) = self.state {
            self.state = if rem > n {
                State::Forward(rem - n)
            } else {
                State::FrameHeader
            };
        }
    }

    /// The buffer to read into; only called once all buffered input has been processed.
    fn read_space(&mut self) -> &mut [u8] {
        if self.input.len() < READ_CHUNK {
            self.input.resize(READ_CHUNK, 0);
        }
        self.in_pos = 0;
        self.in_end = 0;
        &mut self.input[..]
    }

    /// `n` bytes were read into [`Self::read_space`].
    fn filled(&mut self, n: usize) {
        self.in_pos = 0;
        self.in_end = n.min(self.input.len());
    }

    /// Feeds bytes (tests; the I/O path reads into [`Self::read_space`] instead).
    #[cfg(test)]
    fn push_input(&mut self, data: &[u8]) {
        self.input.drain(..self.in_pos);
        self.input.truncate(self.in_end - self.in_pos);
        self.input.extend_from_slice(data);
        self.in_pos = 0;
        self.in_end = self.input.len();
    }

    /// The client closed its side: forward whatever incomplete frame data is held so the server
    /// sees exactly what it would have seen without us.
    fn at_eof(&mut self) {
        if self.state != State::Passthrough {
            self.give_up();
        }
    }

    /// Forwards the held raw bytes unchanged and passes everything through from now on.
    fn give_up(&mut self) {
        self.out.extend_from_slice(&self.held);
        self.out.extend_from_slice(&self.fh[..self.fh_len]);
        self.held.clear();
        self.block.clear();
        self.fh_len = 0;
        self.in_block = false;
        self.state = State::Passthrough;
    }

    /// Moves as many output bytes as possible into `dst`, processing buffered input as needed.
    fn emit(&mut self, dst: &mut ReadBuf<'_>) {
        loop {
            if dst.remaining() == 0 {
                return;
            }
            if self.out_pos < self.out.len() {
                let n = dst.remaining().min(self.out.len() - self.out_pos);
                dst.put_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                if self.out_pos == self.out.len() {
                    self.out.clear();
                    self.out_pos = 0;
                }
                continue;
            }
            let avail = self.in_end - self.in_pos;
            if avail == 0 {
                return;
            }
            match self.state {
                State::Passthrough => {
                    let n = avail.min(dst.remaining());
                    dst.put_slice(&self.input[self.in_pos..self.in_pos + n]);
                    self.in_pos += n;
                }
                State::Forward(rem) => {
                    let n = avail.min(dst.remaining()).min(rem);
                    dst.put_slice(&self.input[self.in_pos..self.in_pos + n]);
                    self.in_pos += n;
                    self.state = if rem > n {
                        State::Forward(rem - n)
                    } else {
                        State::FrameHeader
                    };
                }
                State::Preface(matched) => {
                    let n = avail.min(dst.remaining()).min(PREFACE.len() - matched);
                    let got = &self.input[self.in_pos..self.in_pos + n];
                    if got != &PREFACE[matched..matched + n] {
                        // Not HTTP/2 with prior knowledge: leave the connection alone.
                        self.state = State::Passthrough;
                        continue;
                    }
                    dst.put_slice(got);
                    self.in_pos += n;
                    self.state = if matched + n == PREFACE.len() {
                        State::FrameHeader
                    } else {
                        State::Preface(matched + n)
                    };
                }
                State::FrameHeader => {
                    let n = avail.min(FRAME_HEADER_LEN - self.fh_len);
                    self.fh[self.fh_len..self.fh_len + n]
                        .copy_from_slice(&self.input[self.in_pos..self.in_pos + n]);
                    self.fh_len += n;
                    self.in_pos += n;
                    if self.fh_len == FRAME_HEADER_LEN {
                        self.on_frame_header();
                    }
                }
                State::BlockPayload(rem) => {
                    let n = avail.min(rem);
                    self.held
                        .extend_from_slice(&self.input[self.in_pos..self.in_pos + n]);
                    self.in_pos += n;
                    if rem > n {
                        self.state = State::BlockPayload(rem - n);
                    } else {
                        self.on_block_frame();
                    }
                }
            }
        }
    }

    /// A complete frame header is in `fh`.
    fn on_frame_header(&mut self) {
        let h = self.fh;
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let typ = h[3];
        let flags = h[4];
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        if self.in_block {
            // Only a CONTINUATION of the same stream may follow an unfinished header block.
            if typ != TYPE_CONTINUATION || stream != self.block_stream {
                return self.give_up();
            }
        } else if typ == TYPE_HEADERS {
            self.held.clear();
            self.block.clear();
            self.block_stream = stream;
            self.block_flags = flags;
            self.priority = None;
            self.in_block = true;
        } else {
            self.out.extend_from_slice(&h);
            self.fh_len = 0;
            self.state = if len == 0 {
                State::FrameHeader
            } else {
                State::Forward(len)
            };
            return;
        }
        if self.held.len() + FRAME_HEADER_LEN + len > MAX_BLOCK_BYTES {
            return self.give_up();
        }
        self.frame_start = self.held.len();
        self.held.extend_from_slice(&h);
        self.fh_len = 0;
        if len == 0 {
            self.on_block_frame();
        } else {
            self.state = State::BlockPayload(len);
        }
    }

    /// A complete HEADERS or CONTINUATION frame is at `held[frame_start..]`.
    fn on_block_frame(&mut self) {
        let frame = &self.held[self.frame_start..];
        let (typ, flags) = (frame[3], frame[4]);
        let payload = &frame[FRAME_HEADER_LEN..];
        let fragment = if typ == TYPE_HEADERS {
            let mut start = 0;
            let mut end = payload.len();
            if flags & FLAG_PADDED != 0 {
                let Some(&pad) = payload.first() else {
                    return self.give_up();
                };
                start = 1;
                match end.checked_sub(usize::from(pad)) {
                    Some(e) if e >= start => end = e,
                    _ => return self.give_up(),
                }
            }
            if flags & FLAG_PRIORITY != 0 {
                let Some(p) = payload.get(start..start + 5).filter(|_| start + 5 <= end) else {
                    return self.give_up();
                };
                let mut prio = [0u8; 5];
                prio.copy_from_slice(p);
                self.priority = Some(prio);
                start += 5;
            }
            &payload[start..end]
        } else {
            payload
        };
        self.block.extend_from_slice(fragment);
        if flags & FLAG_END_HEADERS == 0 {
            self.state = State::FrameHeader;
            return;
        }
        self.in_block = false;
        self.finish_block();
    }

    /// The header block is complete: decode, rewrite, re-encode, emit.
    fn finish_block(&mut self) {
        self.arena.clear();
        self.fields.clear();
        if self
            .decoder
            .decode(&self.block, &mut self.arena, &mut self.fields)
            .is_err()
        {
            return self.give_up();
        }
        self.encoded.clear();
        for f in &self.fields {
            let name = &self.arena[f.name.clone()];
            let mut value = &self.arena[f.value.clone()];
            if name == b":authority" {
                value = strip_scheme(value);
            }
            encode_field(&mut self.encoded, name, value, f.never_indexed);
        }

        let mut rest = &self.encoded[..];
        let prio_len = if self.priority.is_some() { 5 } else { 0 };
        let first = rest.len().min(MAX_FRAME_PAYLOAD - prio_len);
        let mut flags = self.block_flags & FLAG_END_STREAM;
        if self.priority.is_some() {
            flags |= FLAG_PRIORITY;
        }
        if first == rest.len() {
            flags |= FLAG_END_HEADERS;
        }
        push_frame_header(
            &mut self.out,
            prio_len + first,
            TYPE_HEADERS,
            flags,
            self.block_stream,
        );
        if let Some(p) = self.priority {
            self.out.extend_from_slice(&p);
        }
        self.out.extend_from_slice(&rest[..first]);
        rest = &rest[first..];
        while !rest.is_empty() {
            let n = rest.len().min(MAX_FRAME_PAYLOAD);
            let flags = if n == rest.len() { FLAG_END_HEADERS } else { 0 };
            push_frame_header(&mut self.out, n, TYPE_CONTINUATION, flags, self.block_stream);
            self.out.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        self.held.clear();
        self.block.clear();
        self.state = State::FrameHeader;
    }
}

/// `http://host:port/` -> `host:port`; values without "://" are returned unchanged.
fn strip_scheme(value: &[u8]) -> &[u8] {
    let Some(pos) = value.windows(3).position(|w| w == b"://") else {
        // clientv3 names a `unix:///abs/path` endpoint by its path
        if value.starts_with(b"/") {
            return b"localhost";
        }
        return value;
    };
    let rest = &value[pos + 3..];
    match rest.iter().position(|&b| b == b'/') {
        // `unix:///abs/path`: a socket path, no host (an empty authority is malformed)
        Some(0) => b"localhost",
        Some(slash) => &rest[..slash],
        None => rest,
    }
}

fn push_frame_header(out: &mut Vec<u8>, len: usize, typ: u8, flags: u8, stream: u32) {
    let len = len as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(typ);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// HPACK (RFC 7541)
// ---------------------------------------------------------------------------------------------

/// The static table (RFC 7541 Appendix A); index `i` here is HPACK index `i + 1`.
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// Per-entry overhead in the dynamic table size accounting.
const ENTRY_OVERHEAD: usize = 32;
/// The initial SETTINGS_HEADER_TABLE_SIZE.
const DEFAULT_TABLE_SIZE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HpackError;

/// An HPACK decoder whose dynamic table mirrors the client's encoder.
struct HpackDecoder {
    /// Newest entry first: dynamic index 62 is `table[0]`.
    table: std::collections::VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
}

impl HpackDecoder {
    fn new() -> Self {
        HpackDecoder {
            table: std::collections::VecDeque::new(),
            size: 0,
            max_size: DEFAULT_TABLE_SIZE,
        }
    }

    /// Decodes one complete header block, appending fields (whose bytes go to `arena`).
    fn decode(
        &mut self,
        mut src: &[u8],
        arena: &mut Vec<u8>,
        fields: &mut Vec<Field>,
    ) -> Result<(), HpackError> {
        let mut decoded = 0usize;
        while let Some(&b) = src.first() {
            if b & 0x80 != 0 {
                // Indexed header field.
                let idx = decode_int(&mut src, 7)?;
                let (name, value) = self.get(idx)?;
                fields.push(push_pair(arena, name, value));
            } else if b & 0xe0 == 0x20 {
                // Dynamic table size update: only before the first field of a block.
                if !fields.is_empty() {
                    return Err(HpackError);
                }
                let size = decode_int(&mut src, 5)?;
                if size > MAX_DYNAMIC_TABLE_SIZE {
                    return Err(HpackError);
                }
                self.max_size = size;
                self.evict(0);
                continue;
            } else {
                // Literal: with incremental indexing (01), without indexing (0000) or never
                // indexed (0001).
                let (prefix, index, never_indexed) = if b & 0xc0 == 0x40 {
                    (6, true, false)
                } else {
                    (4, false, b & 0x10 != 0)
                };
                let name_idx = decode_int(&mut src, prefix)?;
                let start = arena.len();
                if name_idx == 0 {
                    decode_string(&mut src, arena)?;
                } else {
                    let (name, _) = self.get(name_idx)?;
                    arena.extend_from_slice(name);
                }
                let name = start..arena.len();
                decode_string(&mut src, arena)?;
                let value = name.end..arena.len();
                if index {
                    self.insert(&arena[name.clone()], &arena[value.clone()]);
                }
                fields.push(Field {
                    name,
                    value,
                    never_indexed,
                });
            }
            decoded += fields
                .last()
                .map_or(0, |f| f.name.len() + f.value.len() + ENTRY_OVERHEAD);
            if decoded > MAX_DECODED_BYTES {
                return Err(HpackError);
            }
        }
        Ok(())
    }

    fn get(&self, idx: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match idx {
            0 => Err(HpackError),
            1..=61 => Ok(STATIC_TABLE[idx - 1]),
            _ => self
                .table
                .get(idx - 62)
                .map(|(n, v)| (n.as_slice(), v.as_slice()))
                .ok_or(HpackError),
        }
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            // An entry larger than the table empties it and is not added (RFC 7541 4.4).
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.table.push_front((name.to_vec(), value.to_vec()));
        self.size += size;
    }

    /// Evicts the oldest entries until `extra` more bytes fit.
    fn evict(&mut self, extra: usize) {
        while self.size + extra > self.max_size {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + ENTRY_OVERHEAD,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

fn push_pair(arena: &mut Vec<u8>, name: &[u8], value: &[u8]) -> Field {
    let start = arena.len();
    arena.extend_from_slice(name);
    let mid = arena.len();
    arena.extend_from_slice(value);
    Field {
        name: start..mid,
        value: mid..arena.len(),
        never_indexed: false,
    }
}

/// Decodes an HPACK integer with an `n`-bit prefix (RFC 7541 5.1).
fn decode_int(src: &mut &[u8], n: u8) -> Result<usize, HpackError> {
    let (&first, mut rest) = src.split_first().ok_or(HpackError)?;
    let max = (1usize << n) - 1;
    let mut value = usize::from(first) & max;
    if value == max {
        let mut shift = 0u32;
        loop {
            let (&b, r) = rest.split_first().ok_or(HpackError)?;
            rest = r;
            // Anything beyond 2^28 is far larger than any sane length or index.
            if shift > 21 {
                return Err(HpackError);
            }
            value += usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    *src = rest;
    Ok(value)
}

/// Decodes a string literal (RFC 7541 5.2), appending it to `dst`.
fn decode_string(src: &mut &[u8], dst: &mut Vec<u8>) -> Result<(), HpackError> {
    let huffman = src.first().ok_or(HpackError)? & 0x80 != 0;
    let len = decode_int(src, 7)?;
    if len > src.len() {
        return Err(HpackError);
    }
    let (s, rest) = src.split_at(len);
    *src = rest;
    if huffman {
        huffman_decode(s, dst)
    } else {
        dst.extend_from_slice(s);
        Ok(())
    }
}

/// Encodes an integer with an `n`-bit prefix; `first` holds the representation's flag bits.
fn encode_int(dst: &mut Vec<u8>, first: u8, n: u8, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        dst.push(first | value as u8);
        return;
    }
    dst.push(first | max as u8);
    value -= max;
    while value >= 0x80 {
        dst.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    dst.push(value as u8);
}

fn encode_raw_string(dst: &mut Vec<u8>, s: &[u8]) {
    encode_int(dst, 0, 7, s.len());
    dst.extend_from_slice(s);
}

/// Encodes one field without touching the dynamic table: a static-table index when the whole
/// field is there, else a literal without indexing (or never indexed, as the client marked it),
/// naming a static entry when the name is there.
fn encode_field(dst: &mut Vec<u8>, name: &[u8], value: &[u8], never_indexed: bool) {
    let mut name_idx = 0;
    for (i, &(n, v)) in STATIC_TABLE.iter().enumerate() {
        if n == name {
            if v == value && !never_indexed {
                encode_int(dst, 0x80, 7, i + 1);
                return;
            }
            if name_idx == 0 {
                name_idx = i + 1;
            }
        }
    }
    let flags = if never_indexed { 0x10 } else { 0x00 };
    encode_int(dst, flags, 4, name_idx);
    if name_idx == 0 {
        encode_raw_string(dst, name);
    }
    encode_raw_string(dst, value);
}

/// Huffman code lengths for symbols 0..=256 (256 is EOS), RFC 7541 Appendix B. The code is
/// canonical, so the codes follow from the lengths.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];
const HUFFMAN_MAX_LEN: usize = 30;
const HUFFMAN_EOS: u16 = 256;

/// Canonical-code decoding tables: for each length, the first code, how many codes have that
/// length, and where their symbols start in `symbols` (sorted by length, then symbol).
struct HuffmanTable {
    first: [u32; HUFFMAN_MAX_LEN + 1],
    count: [u32; HUFFMAN_MAX_LEN + 1],
    offset: [u32; HUFFMAN_MAX_LEN + 1],
    symbols: [u16; 257],
}

const HUFFMAN: HuffmanTable = build_huffman();

const fn build_huffman() -> HuffmanTable {
    let mut t = HuffmanTable {
        first: [0; HUFFMAN_MAX_LEN + 1],
        count: [0; HUFFMAN_MAX_LEN + 1],
        offset: [0; HUFFMAN_MAX_LEN + 1],
        symbols: [0; 257],
    };
    let mut s = 0;
    while s < 257 {
        t.count[HUFFMAN_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut code = 0u32;
    let mut off = 0u32;
    let mut len = 1;
    while len <= HUFFMAN_MAX_LEN {
        code = (code + t.count[len - 1]) << 1;
        t.first[len] = code;
        t.offset[len] = off;
        let mut s = 0;
        while s < 257 {
            if HUFFMAN_LENGTHS[s] as usize == len {
                t.symbols[off as usize] = s as u16;
                off += 1;
            }
            s += 1;
        }
        len += 1;
    }
    t
}

/// Decodes a Huffman-coded string (RFC 7541 5.2), appending it to `dst`.
fn huffman_decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HpackError> {
    let t = &HUFFMAN;
    let mut code = 0u32;
    let mut len = 0usize;
    for &byte in src {
        for bit in (0..8).rev() {
            code = code << 1 | u32::from(byte >> bit & 1);
            len += 1;
            let idx = code.wrapping_sub(t.first[len]);
            if code >= t.first[len] && idx < t.count[len] {
                let sym = t.symbols[(t.offset[len] + idx) as usize];
                if sym == HUFFMAN_EOS {
                    return Err(HpackError);
                }
                dst.push(sym as u8);
                code = 0;
                len = 0;
            } else if len == HUFFMAN_MAX_LEN {
                return Err(HpackError);
            }
        }
    }
    // Padding: at most 7 bits, all ones (a prefix of EOS).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HpackError);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// The canonical codes, from the decoding tables.
    fn huffman_codes() -> [u32; 257] {
        let mut codes = [0u32; 257];
        for len in 1..=HUFFMAN_MAX_LEN {
            for i in 0..HUFFMAN.count[len] {
                let sym = HUFFMAN.symbols[(HUFFMAN.offset[len] + i) as usize];
                codes[usize::from(sym)] = HUFFMAN.first[len] + i;
            }
        }
        codes
    }

    fn huffman_encode(s: &[u8]) -> Vec<u8> {
        let codes = huffman_codes();
        let mut out = Vec::new();
        let (mut bits, mut nbits) = (0u64, 0u32);
        for &b in s {
            let len = u32::from(HUFFMAN_LENGTHS[b as usize]);
            bits = bits << len | u64::from(codes[b as usize]);
            nbits += len;
            while nbits >= 8 {
                nbits -= 8;
                out.push((bits >> nbits) as u8);
            }
            bits &= (1 << nbits) - 1;
        }
        if nbits > 0 {
            let pad = 8 - nbits;
            out.push((bits << pad | ((1 << pad) - 1)) as u8);
        }
        out
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode_all(d: &mut HpackDecoder, block: &[u8]) -> Vec<(String, String)> {
        let (mut arena, mut fields) = (Vec::new(), Vec::new());
        d.decode(block, &mut arena, &mut fields).expect("decode");
        fields
            .iter()
            .map(|f| {
                (
                    String::from_utf8(arena[f.name.clone()].to_vec()).unwrap(),
                    String::from_utf8(arena[f.value.clone()].to_vec()).unwrap(),
                )
            })
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    /// Literal with incremental indexing, new name, Huffman-coded name and value.
    fn lit_indexed_huff(dst: &mut Vec<u8>, name: &str, value: &str) {
        dst.push(0x40);
        for s in [name, value] {
            let h = huffman_encode(s.as_bytes());
            encode_int(dst, 0x80, 7, h.len());
            dst.extend_from_slice(&h);
        }
    }

    fn frame(typ: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        push_frame_header(&mut f, payload.len(), typ, flags, stream);
        f.extend_from_slice(payload);
        f
    }

    const SETTINGS: &[u8] = &[0, 0, 6, 0x4, 0, 0, 0, 0, 0, 0, 0x3, 0, 0, 0, 100];

    /// A parsed frame of the rewritten stream.
    #[derive(Debug)]
    struct Frame {
        typ: u8,
        flags: u8,
        stream: u32,
        payload: Vec<u8>,
    }

    fn parse_frames(mut b: &[u8]) -> Vec<Frame> {
        assert!(b.starts_with(PREFACE));
        b = &b[PREFACE.len()..];
        let mut v = Vec::new();
        while !b.is_empty() {
            let len = usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
            let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
            v.push(Frame {
                typ: b[3],
                flags: b[4],
                stream,
                payload: b[9..9 + len].to_vec(),
            });
            b = &b[9 + len..];
        }
        v
    }

    /// Header blocks of the rewritten stream, decoded by a fresh decoder (the server's), with
    /// the dynamic table checked to stay empty.
    fn server_blocks(frames: &[Frame]) -> Vec<Vec<(String, String)>> {
        let mut d = HpackDecoder::new();
        let mut out = Vec::new();
        let mut block = Vec::new();
        for f in frames {
            match f.typ {
                TYPE_HEADERS => {
                    assert_eq!(f.flags & FLAG_PADDED, 0);
                    let skip = if f.flags & FLAG_PRIORITY != 0 { 5 } else { 0 };
                    assert!(f.payload.len() <= MAX_FRAME_PAYLOAD);
                    block.extend_from_slice(&f.payload[skip..]);
                }
                TYPE_CONTINUATION => block.extend_from_slice(&f.payload),
                _ => continue,
            }
            if f.flags & FLAG_END_HEADERS != 0 {
                out.push(decode_all(&mut d, &block));
                assert!(d.table.is_empty(), "server dynamic table must stay empty");
                block.clear();
            }
        }
        out
    }

    fn rewrite(input: &[u8]) -> Vec<u8> {
        let mut rw = Rewriter::new();
        rw.push_input(input);
        let mut out = vec![0u8; input.len() * 2 + 64 * 1024];
        let mut rb = ReadBuf::new(&mut out);
        rw.emit(&mut rb);
        let n = rb.filled().len();
        out.truncate(n);
        out
    }

    /// Client blocks: the first indexes `:authority: http://127.0.0.1:1` (Huffman), the second
    /// refers to that dynamic entry.
    fn client_blocks() -> (Vec<u8>, Vec<u8>) {
        let mut b1 = vec![0x83, 0x86]; // :method POST, :scheme http
        lit_indexed_huff(&mut b1, ":authority", "http://127.0.0.1:1");
        lit_indexed_huff(&mut b1, ":path", "/etcdserverpb.Maintenance/Status");
        lit_indexed_huff(&mut b1, "content-type", "application/grpc");
        b1.push(0x10); // never indexed, new name, raw strings
        encode_raw_string(&mut b1, b"authorization");
        encode_raw_string(&mut b1, b"secret");
        // Dynamic table now: 62 content-type, 63 :path, 64 :authority.
        let mut b2 = vec![0x83, 0x86, 0x80 | 64, 0x80 | 63, 0x80 | 62];
        lit_indexed_huff(&mut b2, "te", "trailers");
        (b1, b2)
    }

    fn expected_blocks() -> Vec<Vec<(String, String)>> {
        vec![
            pairs(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", "127.0.0.1:1"),
                (":path", "/etcdserverpb.Maintenance/Status"),
                ("content-type", "application/grpc"),
                ("authorization", "secret"),
            ]),
            pairs(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", "127.0.0.1:1"),
                (":path", "/etcdserverpb.Maintenance/Status"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ]),
        ]
    }

    /// Preface, SETTINGS, block 1 (as built by `headers1`), DATA, block 2, DATA.
    fn client_stream(headers1: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let (b1, b2) = client_blocks();
        let mut s = PREFACE.to_vec();
        s.extend_from_slice(SETTINGS);
        s.extend(headers1(&b1));
        s.extend(frame(0x0, 0x0, 1, b"\0\0\0\0\x05hello"));
        s.extend(frame(0x0, FLAG_END_STREAM, 1, b""));
        s.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &b2));
        s.extend(frame(0x8, 0, 0, &[0, 0, 0, 9])); // WINDOW_UPDATE
        s
    }

    fn check(out: &[u8]) {
        let frames = parse_frames(out);
        assert_eq!(server_blocks(&frames), expected_blocks());
        let kinds: Vec<(u8, u8, u32)> = frames
            .iter()
            .filter(|f| f.typ != TYPE_CONTINUATION)
            .map(|f| (f.typ, f.flags & !FLAG_END_HEADERS & !FLAG_PRIORITY, f.stream))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (0x4, 0, 0),
                (TYPE_HEADERS, 0, 1),
                (0x0, 0, 1),
                (0x0, FLAG_END_STREAM, 1),
                (TYPE_HEADERS, FLAG_END_STREAM, 3),
                (0x8, 0, 0),
            ]
        );
        assert_eq!(frames[2].payload, b"\0\0\0\0\x05hello");
        assert_eq!(frames.last().unwrap().payload, [0, 0, 0, 9]);
    }

    #[test]
    fn huffman_matches_rfc_examples() {
        // RFC 7541 C.4.
        assert_eq!(
            huffman_encode(b"www.example.com"),
            hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")
        );
        assert_eq!(huffman_encode(b"no-cache"), hex("a8eb 1064 9cbf"));
        assert_eq!(huffman_encode(b"custom-key"), hex("25a8 49e9 5ba9 7d7f"));
        assert_eq!(huffman_encode(b"custom-value"), hex("25a8 49e9 5bb8 e8b4 bf"));
        // RFC 7541 Appendix B spot checks, including EOS.
        let codes = huffman_codes();
        assert_eq!(codes[b'0' as usize], 0x0);
        assert_eq!(codes[b'a' as usize], 0x3);
        assert_eq!(codes[0], 0x1ff8);
        assert_eq!(codes[255], 0x3ffffee);
        assert_eq!(codes[256], 0x3fffffff);
        let all: Vec<u8> = (0..=255).collect();
        let mut dst = Vec::new();
        huffman_decode(&huffman_encode(&all), &mut dst).unwrap();
        assert_eq!(dst, all);
    }

    #[test]
    fn huffman_rejects_bad_padding_and_eos() {
        let mut dst = Vec::new();
        // 'a' (00011) padded with zeros instead of ones.
        assert!(huffman_decode(&[0x18], &mut dst).is_err());
        // A full byte of padding (more than 7 bits).
        assert!(huffman_decode(&[0x1f, 0xff], &mut dst).is_err());
        // EOS encoded explicitly.
        assert!(huffman_decode(&[0xff, 0xff, 0xff, 0xff], &mut dst).is_err());
    }

    #[test]
    fn decoder_matches_rfc_c4() {
        let mut d = HpackDecoder::new();
        let base = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
        let mut want = base.to_vec();
        want.push((":authority", "www.example.com"));
        assert_eq!(
            decode_all(&mut d, &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")),
            pairs(&want)
        );
        want.push(("cache-control", "no-cache"));
        assert_eq!(
            decode_all(&mut d, &hex("8286 84be 5886 a8eb 1064 9cbf")),
            pairs(&want)
        );
        let block = hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf");
        assert_eq!(
            decode_all(&mut d, &block),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ])
        );
        assert_eq!(d.size, 164);
    }

    #[test]
    fn decoder_table_size_update_and_eviction() {
        let mut d = HpackDecoder::new();
        let mut b = Vec::new();
        lit_indexed_huff(&mut b, "k", "v");
        decode_all(&mut d, &b);
        assert_eq!(d.table.len(), 1);
        // Size update to 0 empties the table; then a reference to 62 fails.
        decode_all(&mut d, &[0x20]);
        assert!(d.table.is_empty());
        assert!(d.decode(&[0x80 | 62], &mut Vec::new(), &mut Vec::new()).is_err());
        // A size update after a field is an error.
        assert!(d.decode(&[0x82, 0x20], &mut Vec::new(), &mut Vec::new()).is_err());
        // Index 0, truncated integers and strings are errors.
        let mut d = HpackDecoder::new();
        for bad in [
            &[0x80][..],
            &[0xff],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x40, 0x05, b'a'],
        ] {
            assert!(
                d.decode(bad, &mut Vec::new(), &mut Vec::new()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn integer_round_trip() {
        for v in [0usize, 1, 14, 15, 16, 126, 127, 128, 1337, 1 << 20] {
            for n in [4u8, 5, 6, 7] {
                let mut b = Vec::new();
                encode_int(&mut b, 0, n, v);
                let mut s = &b[..];
                assert_eq!(decode_int(&mut s, n), Ok(v));
                assert!(s.is_empty());
            }
        }
    }

    #[test]
    fn strip_scheme_cases() {
        assert_eq!(strip_scheme(b"http://127.0.0.1:1"), b"127.0.0.1:1");
        assert_eq!(strip_scheme(b"https://127.0.0.1:1/"), b"127.0.0.1:1");
        assert_eq!(strip_scheme(b"127.0.0.1:1"), b"127.0.0.1:1");
        assert_eq!(strip_scheme(b"localhost"), b"localhost");
        assert_eq!(strip_scheme(b"unix://localhost:2379"), b"localhost:2379");
        assert_eq!(strip_scheme(b"unix:///run/etcd/localhost:2379"), b"localhost");
        assert_eq!(strip_scheme(b"/run/etcd/localhost:2379"), b"localhost");
    }

    #[test]
    fn rewrites_authority_in_plain_headers() {
        let out = rewrite(&client_stream(|b| frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, b)));
        check(&out);
    }

    #[test]
    fn rewrites_padded_headers_with_priority() {
        let out = rewrite(&client_stream(|b| {
            let mut p = vec![3u8]; // pad length
            p.extend_from_slice(&[0x80, 0, 0, 0, 200]); // exclusive dependency on 0, weight
            p.extend_from_slice(b);
            p.extend_from_slice(&[0, 0, 0]);
            frame(
                TYPE_HEADERS,
                FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY,
                1,
                &p,
            )
        }));
        check(&out);
        let frames = parse_frames(&out);
        let h = &frames[1];
        assert_eq!(h.flags & (FLAG_PRIORITY | FLAG_PADDED), FLAG_PRIORITY);
        assert_eq!(h.payload[..5], [0x80, 0, 0, 0, 200]);
    }

    #[test]
    fn rewrites_across_continuations() {
        let out = rewrite(&client_stream(|b| {
            let mut v = frame(TYPE_HEADERS, 0, 1, &b[..5]);
            v.extend(frame(TYPE_CONTINUATION, 0, 1, &b[5..6]));
            v.extend(frame(TYPE_CONTINUATION, 0, 1, b""));
            v.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &b[6..]));
            v
        }));
        check(&out);
        // Re-emitted as one frame (it fits).
        assert!(parse_frames(&out).iter().all(|f| f.typ != TYPE_CONTINUATION));
    }

    #[test]
    fn large_block_is_split_into_continuations() {
        let mut b = vec![0x83, 0x86];
        lit_indexed_huff(&mut b, ":authority", "http://127.0.0.1:1");
        let big = "x".repeat(40_000);
        b.push(0x00);
        encode_raw_string(&mut b, b"big");
        encode_raw_string(&mut b, big.as_bytes());
        let mut s = PREFACE.to_vec();
        s.extend(frame(TYPE_HEADERS, 0, 1, &b[..16_000]));
        s.extend(frame(TYPE_CONTINUATION, 0, 1, &b[16_000..32_000]));
        s.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &b[32_000..]));
        let frames = parse_frames(&rewrite(&s));
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2].flags, FLAG_END_HEADERS);
        assert_eq!(
            server_blocks(&frames),
            vec![pairs(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", "127.0.0.1:1"),
                ("big", big.as_str()),
            ])]
        );
    }

    /// Yields its data in pieces of `step` bytes, one per poll (with a wake-up in between).
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        pending: bool,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.pending {
                self.pending = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.pending = true;
            let n = self.step.min(self.data.len() - self.pos).min(buf.remaining());
            let pos = self.pos;
            buf.put_slice(&self.data[pos..pos + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    async fn read_through(data: Vec<u8>, step: usize, read_size: usize) -> Vec<u8> {
        let mut io = H2AuthorityFix::new(Trickle {
            data,
            pos: 0,
            step,
            pending: false,
        });
        let mut out = Vec::new();
        let mut buf = vec![0u8; read_size];
        loop {
            let n = io.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn partial_reads_one_byte_at_a_time() {
        let input = client_stream(|b| {
            let mut v = frame(TYPE_HEADERS, 0, 1, &b[..7]);
            v.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &b[7..]));
            v
        });
        for (step, read_size) in [(1, 1), (1, 4096), (3, 7), (4096, 1), (4096, 5), (7, 64 * 1024)] {
            check(&read_through(input.clone(), step, read_size).await);
        }
    }

    #[tokio::test]
    async fn non_http2_passes_through() {
        let req = b"GET /v3/kv/range HTTP/1.1\r\nHost: http://x\r\n\r\n".to_vec();
        for (step, read_size) in [(1, 1), (5, 3), (4096, 4096)] {
            assert_eq!(read_through(req.clone(), step, read_size).await, req);
        }
        // A prefix of the preface followed by something else.
        let odd = b"PRI * HTTP/1.1\r\n".to_vec();
        assert_eq!(read_through(odd.clone(), 1, 1).await, odd);
    }

    #[tokio::test]
    async fn large_data_frames_pass_unchanged() {
        let mut s = PREFACE.to_vec();
        s.extend_from_slice(SETTINGS);
        let payload: Vec<u8> = (0..16_384u32).map(|i| (i * 7) as u8).collect();
        for i in 0..5 {
            s.extend(frame(0x0, 0, 1 + 2 * i, &payload));
        }
        for (step, read_size) in [(100_000, 100_000), (1000, 20_000), (4096, 8192), (1, 3)] {
            assert_eq!(read_through(s.clone(), step, read_size).await, s);
        }
    }

    #[tokio::test]
    async fn malformed_input_is_forwarded_unchanged() {
        let mut s = PREFACE.to_vec();
        // HPACK index 0 is invalid.
        s.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0x80]));
        s.extend(frame(0x0, 0, 1, b"abc"));
        assert_eq!(read_through(s.clone(), 1, 1).await, s);
        // Padding longer than the payload.
        let mut s = PREFACE.to_vec();
        s.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_PADDED, 1, &[9, 0x82]));
        assert_eq!(read_through(s.clone(), 2, 5).await, s);
        // A DATA frame interleaved into an unfinished header block.
        let mut s = PREFACE.to_vec();
        s.extend(frame(TYPE_HEADERS, 0, 1, &[0x82]));
        s.extend(frame(0x0, 0, 1, b"abc"));
        assert_eq!(read_through(s.clone(), 4096, 4096).await, s);
        // Truncated mid-frame: the partial bytes still reach the server.
        let mut s = PREFACE.to_vec();
        s.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0x82, 0x86, 0x84]));
        s.truncate(s.len() - 1);
        assert_eq!(read_through(s.clone(), 4096, 4096).await, s);
        s.truncate(PREFACE.len() + 4);
        assert_eq!(read_through(s.clone(), 1, 1).await, s);
    }
}
