//! The peer transport: openraft's RPCs, proposal forwarding, read-index and application
//! calls over gRPC between members (`proto/retcd/raftpb/peer.proto`), served on the peer
//! URLs.
//!
//! Outgoing: [`PeerNetwork`] is openraft's network factory; one lazily connected tonic
//! channel per member, to the first of its peer URLs (TLS for `https://` URLs, with the
//! member's peer TLS configuration). A send never blocks the consensus
//! loop beyond the RPC's own timeout (openraft calls these from its replication tasks).
//! Incoming: [`PeerService`] hands every message to the local `Raft`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::error::{
    ClientWriteError, LinearizableReadError, NetworkError, RPCError, RaftError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendError, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{RaftNetworkV2, ReadPolicy};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::log_store::{decode_payload, encode_payload};
use crate::state_machine::SnapshotData;
use crate::types::{Entry, LogId, MemberNode, TypeConfig, Vote, log_id};

/// Generated code for `retcd.raftpb`.
pub mod pb {
    tonic::include_proto!("retcd.raftpb");
}

type Raft = openraft::Raft<TypeConfig, crate::node::StateMachineStoreAny>;

// ---------------------------------------------------------------------------------------
// Wire conversions
// ---------------------------------------------------------------------------------------

fn vote_to(v: &Vote) -> pb::Vote {
    pb::Vote {
        term: v.leader_id.term,
        node_id: v.leader_id.voted_for,
        committed: v.committed,
    }
}

fn vote_from(v: Option<pb::Vote>) -> Result<Vote, String> {
    let v = v.ok_or("missing vote")?;
    Ok(if v.committed {
        Vote::new_committed(v.term, v.node_id)
    } else {
        Vote::new(v.term, v.node_id)
    })
}

fn log_id_to(l: &LogId) -> pb::LogId {
    pb::LogId {
        term: l.leader_id.term,
        index: l.index,
    }
}

fn log_id_from(l: Option<pb::LogId>) -> Option<LogId> {
    l.map(|l| log_id(l.term, l.index))
}

fn entry_to(e: &Entry) -> pb::Entry {
    pb::Entry {
        log_id: Some(log_id_to(&e.log_id)),
        payload: encode_payload(&e.payload),
    }
}

fn entry_from(e: pb::Entry) -> Result<Entry, String> {
    let id = log_id_from(e.log_id).ok_or("entry without log id")?;
    let payload = decode_payload(&e.payload).map_err(|e| e.to_string())?;
    Ok(Entry { log_id: id, payload })
}

pub(crate) fn append_to(r: &AppendEntriesRequest<TypeConfig>) -> pb::AppendEntriesRequest {
    pb::AppendEntriesRequest {
        vote: Some(vote_to(&r.vote)),
        prev_log_id: r.prev_log_id.as_ref().map(log_id_to),
        entries: r.entries.iter().map(entry_to).collect(),
        leader_commit: r.leader_commit.as_ref().map(log_id_to),
    }
}

pub(crate) fn append_from(r: pb::AppendEntriesRequest) -> Result<AppendEntriesRequest<TypeConfig>, String> {
    Ok(AppendEntriesRequest {
        vote: vote_from(r.vote)?,
        prev_log_id: log_id_from(r.prev_log_id),
        entries: r.entries.into_iter().map(entry_from).collect::<Result<_, _>>()?,
        leader_commit: log_id_from(r.leader_commit),
    })
}

fn append_resp_to(r: &AppendEntriesResponse<TypeConfig>) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Kind;
    match r {
        AppendEntriesResponse::Success => pb::AppendEntriesResponse {
            kind: Kind::Success as i32,
            ..Default::default()
        },
        AppendEntriesResponse::PartialSuccess(m) => pb::AppendEntriesResponse {
            kind: Kind::PartialSuccess as i32,
            matching: m.as_ref().map(log_id_to),
            vote: None,
        },
        AppendEntriesResponse::Conflict => pb::AppendEntriesResponse {
            kind: Kind::Conflict as i32,
            ..Default::default()
        },
        AppendEntriesResponse::HigherVote(v) => pb::AppendEntriesResponse {
            kind: Kind::HigherVote as i32,
            matching: None,
            vote: Some(vote_to(v)),
        },
    }
}

fn append_resp_from(r: pb::AppendEntriesResponse) -> Result<AppendEntriesResponse<TypeConfig>, String> {
    use pb::append_entries_response::Kind;
    Ok(match Kind::try_from(r.kind).map_err(|e| e.to_string())? {
        Kind::Success => AppendEntriesResponse::Success,
        Kind::PartialSuccess => AppendEntriesResponse::PartialSuccess(log_id_from(r.matching)),
        Kind::Conflict => AppendEntriesResponse::Conflict,
        Kind::HigherVote => AppendEntriesResponse::HigherVote(vote_from(r.vote)?),
    })
}

fn stream_resp_to(r: &StreamAppendResult<TypeConfig>) -> pb::StreamAppendResponse {
    use pb::stream_append_response::Kind;
    match r {
        Ok(matching) => pb::StreamAppendResponse {
            kind: Kind::Ok as i32,
            log_id: matching.as_ref().map(log_id_to),
            vote: None,
        },
        Err(StreamAppendError::Conflict(prev)) => pb::StreamAppendResponse {
            kind: Kind::Conflict as i32,
            log_id: Some(log_id_to(prev)),
            vote: None,
        },
        Err(StreamAppendError::HigherVote(v)) => pb::StreamAppendResponse {
            kind: Kind::HigherVote as i32,
            log_id: None,
            vote: Some(vote_to(v)),
        },
    }
}

fn stream_resp_from(r: pb::StreamAppendResponse) -> Result<StreamAppendResult<TypeConfig>, String> {
    use pb::stream_append_response::Kind;
    Ok(match Kind::try_from(r.kind).map_err(|e| e.to_string())? {
        Kind::Ok => Ok(log_id_from(r.log_id)),
        Kind::Conflict => Err(StreamAppendError::Conflict(
            log_id_from(r.log_id).ok_or("conflict without a log id")?,
        )),
        Kind::HigherVote => Err(StreamAppendError::HigherVote(vote_from(r.vote)?)),
    })
}

fn vote_req_to(r: &VoteRequest<TypeConfig>) -> pb::VoteRequest {
    pb::VoteRequest {
        vote: Some(vote_to(&r.vote)),
        last_log_id: r.last_log_id.as_ref().map(log_id_to),
        leadership_transfer: r.leadership_transfer,
    }
}

fn vote_req_from(r: pb::VoteRequest) -> Result<VoteRequest<TypeConfig>, String> {
    let mut req = VoteRequest::new(vote_from(r.vote)?, log_id_from(r.last_log_id));
    req.leadership_transfer = r.leadership_transfer;
    Ok(req)
}

fn vote_resp_to(r: &VoteResponse<TypeConfig>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: r.last_log_id.as_ref().map(log_id_to),
    }
}

fn vote_resp_from(r: pb::VoteResponse) -> Result<VoteResponse<TypeConfig>, String> {
    Ok(VoteResponse::new(
        vote_from(r.vote)?,
        log_id_from(r.last_log_id),
        r.vote_granted,
    ))
}

// ---------------------------------------------------------------------------------------
// Outgoing
// ---------------------------------------------------------------------------------------

/// Test failpoint: when `RETCD_FAILPOINT_ISOLATE` names a file and that file exists, this
/// member drops all peer traffic, in and out, as if its network were cut (the isolation
/// tests create and remove the file). Unset (always, outside tests): no check at all.
pub(crate) fn isolated() -> bool {
    static PATH: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    PATH.get_or_init(|| std::env::var_os("RETCD_FAILPOINT_ISOLATE").map(std::path::PathBuf::from))
        .as_ref()
        .is_some_and(|p| p.exists())
}

fn cut_off() -> Status {
    Status::unavailable("peer traffic dropped (failpoint)")
}

/// The metadata every peer request carries: the sender's cluster id (hex), so members of
/// different clusters never mix (etcd's `X-Etcd-Cluster-ID`). 0: a new member that does not
/// know its cluster yet (it may only ask for the member list).
const CLUSTER_ID_HEADER: &str = "x-retcd-cluster-id";

/// The application call a new member makes before it knows its cluster id.
pub const JOIN_INFO_METHOD: &str = "etcdserverpb.Cluster/MemberList";

/// Adds [`CLUSTER_ID_HEADER`] to every outgoing peer request.
#[derive(Clone)]
pub struct AddClusterId(u64);

impl tonic::service::Interceptor for AddClusterId {
    fn call(&mut self, mut r: Request<()>) -> Result<Request<()>, Status> {
        if let Ok(v) = format!("{:x}", self.0).parse() {
            r.metadata_mut().insert(CLUSTER_ID_HEADER, v);
        }
        Ok(r)
    }
}

/// A client of one peer.
pub type Client =
    pb::peer_client::PeerClient<tonic::service::interceptor::InterceptedService<Channel, AddClusterId>>;

pub(crate) fn make_client(ch: Channel, cluster_id: u64) -> Client {
    pb::peer_client::PeerClient::with_interceptor(ch, AddClusterId(cluster_id))
        .max_decoding_message_size(usize::MAX)
}

/// Lazily connected channels to peers, shared by openraft's network and the forwarding
/// calls.
#[derive(Clone, Default)]
pub struct PeerClients {
    channels: Arc<Mutex<HashMap<u64, (String, Channel)>>>,
    cluster_id: u64,
    /// How to dial `https://` peer URLs (the member's peer certificate, the peer CA).
    tls: Option<PeerTls>,
}

/// The TLS client configuration members dial each other's `https://` peer URLs with.
pub type PeerTls = Arc<retcd_tls::rustls::ClientConfig>;

impl PeerClients {
    pub(crate) fn new(cluster_id: u64, tls: Option<PeerTls>) -> PeerClients {
        PeerClients {
            channels: Default::default(),
            cluster_id,
            tls,
        }
    }

    /// A client for member `target` at `url` (the channel is reused while the URL stays).
    pub(crate) fn client(&self, target: u64, url: &str) -> Result<Client, String> {
        if isolated() {
            return Err("peer traffic dropped (failpoint)".into());
        }
        let mut map = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((u, ch)) = map.get(&target)
            && u == url
        {
            return Ok(make_client(ch.clone(), self.cluster_id));
        }
        let ch = retcd_tls::Dialer::new(url, self.tls.as_ref())
            .map_err(|e| format!("bad peer URL {url}: {e}"))?
            .configure(|ep| {
                ep.connect_timeout(Duration::from_secs(1))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(5))
                    .keep_alive_timeout(Duration::from_secs(5))
            })
            .connect_lazy();
        map.insert(target, (url.to_string(), ch.clone()));
        Ok(make_client(ch, self.cluster_id))
    }
}

/// openraft's network factory over [`PeerClients`].
#[derive(Clone)]
pub struct PeerNetwork {
    pub(crate) clients: PeerClients,
    /// Writes the images sent to lagging members.
    pub(crate) source: Arc<dyn crate::SnapshotSource>,
    /// Where images in transit are kept.
    pub(crate) snap_dir: std::path::PathBuf,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &MemberNode) -> Self::Network {
        PeerConnection {
            target,
            url: node.peer_urls.first().cloned().unwrap_or_default(),
            clients: self.clients.clone(),
            source: self.source.clone(),
            snap_dir: self.snap_dir.clone(),
        }
    }
}

pub struct PeerConnection {
    target: u64,
    url: String,
    clients: PeerClients,
    source: Arc<dyn crate::SnapshotSource>,
    snap_dir: std::path::PathBuf,
}

/// How many RPC timeouts (soft) the answer to a pipelined append may take.
const STREAM_ANSWER_TTLS: u32 = 10;

/// Size of the pieces an image is streamed in.
const SNAPSHOT_CHUNK: usize = 1 << 20;

/// A temporary file name unique in this process.
fn temp_name(prefix: &str) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}.snap.tmp", std::process::id())
}

/// Removes a file when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn unreachable(e: impl std::fmt::Display) -> Unreachable<TypeConfig> {
    Unreachable::new(&std::io::Error::other(e.to_string()))
}

/// A transport failure: unreachable (openraft backs off) unless the peer answered.
fn rpc_err(st: Status) -> RPCError<TypeConfig> {
    match st.code() {
        tonic::Code::Unavailable
        | tonic::Code::Cancelled
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Unknown => RPCError::Unreachable(unreachable(st.message())),
        _ => RPCError::Network(NetworkError::new(&std::io::Error::other(
            st.message().to_string(),
        ))),
    }
}

fn decode_err(e: String) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(e)))
}

impl PeerConnection {
    fn client(&self) -> Result<Client, RPCError<TypeConfig>> {
        self.clients
            .client(self.target, &self.url)
            .map_err(|e| RPCError::Unreachable(unreachable(e)))
    }
}

fn with_timeout<T>(msg: T, option: &RPCOption) -> Request<T> {
    let mut r = Request::new(msg);
    r.set_timeout(option.hard_ttl());
    r
}

impl RaftNetworkV2<TypeConfig> for PeerConnection {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut c = self.client()?;
        let sent = std::time::Instant::now();
        let resp = c
            .append_entries(with_timeout(append_to(&rpc), &option))
            .await
            .map_err(rpc_err)?;
        if let Some(o) = crate::observe::observer() {
            o.peer_round_trip(self.target, sent.elapsed());
        }
        append_resp_from(resp.into_inner()).map_err(decode_err)
    }

    /// Pipelined replication over one `StreamAppend` call: every request openraft yields is
    /// sent at once, without waiting for the answers to the earlier ones (which come back in
    /// order). While requests are unanswered, the oldest one's answer must come within
    /// [`STREAM_ANSWER_TTLS`] times the RPC's soft timeout (the answers to pipelined requests
    /// queue behind each other's appends), else the stream fails as unreachable (a member
    /// that stopped answering); an idle stream (nothing unanswered) may wait for new entries
    /// indefinitely.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> futures::future::BoxFuture<
        's,
        Result<
            futures::stream::BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        use futures::StreamExt;
        Box::pin(async move {
            let mut c = self.client()?;
            // When each unanswered request was sent (for the answer timeout and the peer
            // round-trip metric).
            let sent: Arc<Mutex<std::collections::VecDeque<std::time::Instant>>> = Arc::default();
            let requests = {
                let sent = sent.clone();
                // The failpoint cuts the stream at the next request.
                input
                    .take_while(|_| std::future::ready(!isolated()))
                    .map(move |req| {
                        sent.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push_back(std::time::Instant::now());
                        append_to(&req)
                    })
            };
            let answers = c.stream_append(requests).await.map_err(rpc_err)?.into_inner();
            let target = self.target;
            let ttl = option.soft_ttl() * STREAM_ANSWER_TTLS;
            let out = futures::stream::unfold(Some(answers), move |state| {
                let sent = sent.clone();
                async move {
                    let mut answers = state?;
                    let oldest = sent
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .front()
                        .copied();
                    let next = match oldest {
                        // Unanswered requests: the oldest one's answer is due within the timeout.
                        Some(at) => match tokio::time::timeout_at((at + ttl).into(), answers.message()).await
                        {
                            Ok(r) => r,
                            Err(_) => {
                                let e = unreachable(format!("no answer to an append within {ttl:?}"));
                                return Some((Err(RPCError::Unreachable(e)), None));
                            }
                        },
                        None => answers.message().await,
                    };
                    let msg = match next {
                        Ok(Some(m)) => m,
                        Ok(None) => return None,
                        Err(st) => return Some((Err(rpc_err(st)), None)),
                    };
                    if let Some(at) = sent.lock().unwrap_or_else(PoisonError::into_inner).pop_front()
                        && let Some(o) = crate::observe::observer()
                    {
                        o.peer_round_trip(target, at.elapsed());
                    }
                    match stream_resp_from(msg) {
                        // A refusal ends the stream (the follower ends it too).
                        Ok(r) => {
                            let more = r.is_ok();
                            Some((Ok(r), more.then_some(answers)))
                        }
                        Err(e) => Some((Err(decode_err(e)), None)),
                    }
                }
            });
            Ok(out.boxed())
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut c = self.client()?;
        let resp = c
            .vote(with_timeout(vote_req_to(&rpc), &option))
            .await
            .map_err(rpc_err)?;
        vote_resp_from(resp.into_inner()).map_err(decode_err)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut c = self.client()?;
        let resp = c
            .pre_vote(with_timeout(vote_req_to(&rpc), &option))
            .await
            .map_err(rpc_err)?;
        vote_resp_from(resp.into_inner()).map_err(decode_err)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut c = self.client()?;
        let msg = pb::TransferLeaderRequest {
            from_leader: Some(vote_to(req.from_leader())),
            to_node_id: *req.to_node_id(),
            last_log_id: req.last_log_id().map(log_id_to),
        };
        let resp = c
            .transfer_leader(with_timeout(msg, &option))
            .await
            .map_err(rpc_err)?;
        let error = resp.into_inner().error;
        if error.is_empty() {
            Ok(Ok(()))
        } else {
            // the target refused; the leader simply stays
            Err(decode_err(error))
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: openraft::alias::SnapshotOf<TypeConfig, SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let stream_err = |e: String| StreamingError::Unreachable(unreachable(e));
        // An image of the backend as it is now (at or beyond the snapshot's log id).
        let file = TempFile(self.snap_dir.join(temp_name(&format!("send-{:x}", self.target))));
        let (source, path) = (self.source.clone(), file.0.clone());
        let size = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
            let n = source.write_image(&mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(n)
        })
        .await
        .map_err(|e| stream_err(e.to_string()))?
        .map_err(|e| stream_err(format!("writing a snapshot image: {e}")))?;
        tracing::info!(
            target = format!("{:x}", self.target),
            bytes = size,
            last_log_id = ?snapshot.meta.last_log_id,
            "sending a snapshot image"
        );
        let meta = &snapshot.meta;
        let first = pb::SnapshotChunk {
            vote: Some(vote_to(&vote)),
            last_log_id: meta.last_log_id.as_ref().map(log_id_to),
            membership_log_id: meta.last_membership.log_id().as_ref().map(log_id_to),
            membership: crate::log_store::encode_membership(meta.last_membership.membership()),
            data: Vec::new(),
        };
        let path = file.0.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::SnapshotChunk>(4);
        // read the file on a blocking thread, feeding the stream with back-pressure
        let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Read;
            let mut f = std::fs::File::open(&path)?;
            if tx.blocking_send(first).is_err() {
                return Ok(());
            }
            loop {
                let mut buf = vec![0u8; SNAPSHOT_CHUNK];
                let n = f.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                let chunk = pb::SnapshotChunk {
                    data: buf,
                    ..Default::default()
                };
                if tx.blocking_send(chunk).is_err() {
                    return Ok(());
                }
            }
        });
        let mut c = self.client().map_err(|e| stream_err(e.to_string()))?;
        let call = c.install_snapshot(tokio_stream::wrappers::ReceiverStream::new(rx));
        let resp = tokio::select! {
            r = call => r.map_err(|st| stream_err(st.message().to_string()))?,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        let _ = reader.await;
        drop(file);
        let vote = vote_from(resp.into_inner().vote).map_err(stream_err)?;
        Ok(SnapshotResponse { vote })
    }
}

/// One application call to the member at `url`, outside any running raft (a new member
/// asks an existing one about the cluster before it starts); `tls` dials `https://` URLs.
pub async fn call_member(
    url: &str,
    method: &str,
    data: Vec<u8>,
    tls: Option<&PeerTls>,
) -> Result<Vec<u8>, Status> {
    let dialer = retcd_tls::Dialer::new(url, tls)
        .map_err(|e| Status::invalid_argument(format!("bad peer URL {url}: {e}")))?
        .configure(|ep| {
            ep.connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5))
        });
    let ch = dialer
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("{url}: {e}")))?;
    let mut c = make_client(ch, 0);
    let resp = c
        .app(pb::AppRequest {
            method: method.to_string(),
            data,
        })
        .await?;
    Ok(resp.into_inner().data)
}

// ---------------------------------------------------------------------------------------
// Incoming
// ---------------------------------------------------------------------------------------

/// The call a follower makes to have the leader change the membership (handled here).
pub(crate) const MEMBER_CHANGE_METHOD: &str = "retcd.raft/member-change";

/// The leader's refusal of a membership change, back as the follower's error.
pub(crate) fn member_change_error(st: &Status) -> crate::RaftNodeError {
    use crate::RaftNodeError as E;
    match st.code() {
        tonic::Code::FailedPrecondition if st.message() == "learner not ready" => E::LearnerNotReady,
        tonic::Code::FailedPrecondition => E::LeaderChanged,
        tonic::Code::InvalidArgument => E::Membership(st.message().to_string()),
        _ => E::NoLeader,
    }
}

/// What the server answers to application calls forwarded from followers.
pub type AppHandler = Arc<
    dyn Fn(String, Vec<u8>) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, Status>> + Send>> + Send + Sync,
>;

/// The peer gRPC service of this member.
#[derive(Clone)]
pub struct PeerService {
    pub(crate) raft: Raft,
    pub(crate) app: Arc<Mutex<Option<AppHandler>>>,
    /// Where received images are kept until installed.
    pub(crate) snap_dir: std::path::PathBuf,
    pub(crate) cluster_id: u64,
}

impl PeerService {
    /// Admits a request: not while the isolation failpoint is on, and only from a member
    /// of this cluster (`join_info`: a new member that does not know its cluster yet may
    /// ask for the member list).
    fn admit(&self, md: &tonic::metadata::MetadataMap, join_info: bool) -> Result<(), Status> {
        if isolated() {
            return Err(cut_off());
        }
        let theirs = md
            .get(CLUSTER_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| u64::from_str_radix(v, 16).ok());
        match theirs {
            Some(id) if id == self.cluster_id => Ok(()),
            Some(0) if join_info => Ok(()),
            Some(id) => {
                tracing::warn!(
                    local_cluster = format!("{:x}", self.cluster_id),
                    remote_cluster = format!("{id:x}"),
                    "rejected a peer request: cluster ID mismatch"
                );
                Err(Status::failed_precondition(format!(
                    "cluster ID mismatch: the sender is in cluster {id:x}, this member in {:x}",
                    self.cluster_id
                )))
            }
            None => Err(Status::failed_precondition(
                "not a member of this cluster (no cluster ID in the request)",
            )),
        }
    }
}

fn fatal(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft: {e}"))
}

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    async fn append_entries(
        &self,
        request: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        self.admit(request.metadata(), false)?;
        let req = append_from(request.into_inner()).map_err(Status::invalid_argument)?;
        let resp = self.raft.append_entries(req).await.map_err(fatal)?;
        Ok(Response::new(append_resp_to(&resp)))
    }

    type StreamAppendStream = futures::stream::BoxStream<'static, Result<pb::StreamAppendResponse, Status>>;

    /// The follower side of pipelined replication: the requests go to openraft as they
    /// arrive and the answers return in order. A request that cannot be decoded, the
    /// sender going away or the isolation failpoint end the input; the answers to what was
    /// accepted still go out, then the stream ends with the error.
    async fn stream_append(
        &self,
        request: Request<tonic::Streaming<pb::AppendEntriesRequest>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        use futures::StreamExt;
        self.admit(request.metadata(), false)?;
        let (broken_tx, mut broken_rx) = tokio::sync::oneshot::channel::<Status>();
        let input = futures::stream::unfold(
            (request.into_inner(), Some(broken_tx)),
            |(mut incoming, mut broken)| async move {
                let fail = |broken: &mut Option<tokio::sync::oneshot::Sender<Status>>, st: Status| {
                    if let Some(tx) = broken.take() {
                        let _ = tx.send(st);
                    }
                };
                let msg = incoming.message().await;
                if isolated() {
                    fail(&mut broken, cut_off());
                    return None;
                }
                match msg {
                    Ok(Some(m)) => match append_from(m) {
                        Ok(req) => Some((req, (incoming, broken))),
                        Err(e) => {
                            fail(&mut broken, Status::invalid_argument(e));
                            None
                        }
                    },
                    Ok(None) => None,
                    Err(st) => {
                        fail(&mut broken, st);
                        None
                    }
                }
            },
        );
        let answers = self.raft.stream_append(input).map(|r| match r {
            Ok(res) => Ok(stream_resp_to(&res)),
            Err(e) => Err(fatal(e)),
        });
        // After the last answer: why the input ended, if it broke (known by then: the input
        // ends before openraft's answers do).
        let tail = futures::stream::once(async move { broken_rx.try_recv().ok() })
            .filter_map(|st| async move { st.map(Err) });
        Ok(Response::new(answers.chain(tail).boxed()))
    }

    async fn vote(&self, request: Request<pb::VoteRequest>) -> Result<Response<pb::VoteResponse>, Status> {
        self.admit(request.metadata(), false)?;
        let req = vote_req_from(request.into_inner()).map_err(Status::invalid_argument)?;
        let resp = self.raft.vote(req).await.map_err(fatal)?;
        Ok(Response::new(vote_resp_to(&resp)))
    }

    async fn pre_vote(
        &self,
        request: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        self.admit(request.metadata(), false)?;
        let req = vote_req_from(request.into_inner()).map_err(Status::invalid_argument)?;
        let resp = self.raft.pre_vote(req).await.map_err(fatal)?;
        Ok(Response::new(vote_resp_to(&resp)))
    }

    async fn install_snapshot(
        &self,
        request: Request<tonic::Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        self.admit(request.metadata(), false)?;
        let mut chunks = request.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let vote = vote_from(first.vote).map_err(Status::invalid_argument)?;
        let membership = crate::log_store::decode_membership(&first.membership)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let meta = openraft::SnapshotMeta {
            last_log_id: log_id_from(first.last_log_id),
            last_membership: crate::types::StoredMembership::new(
                log_id_from(first.membership_log_id),
                membership,
            ),
        };
        let path = self.snap_dir.join(temp_name("recv"));
        let file = TempFile(path.clone());
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut bytes = first.data.len() as u64;
        tokio::io::AsyncWriteExt::write_all(&mut out, &first.data)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        while let Some(chunk) = chunks.message().await? {
            bytes += chunk.data.len() as u64;
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk.data)
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        out.sync_all()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        drop(out);
        tracing::info!(bytes, last_log_id = ?meta.last_log_id, "received a snapshot image");
        let snapshot = openraft::Snapshot {
            meta,
            snapshot: SnapshotData::File(path),
        };
        let resp = self
            .raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(fatal)?;
        // the state machine removes the file once installed; this only cleans up otherwise
        drop(file);
        Ok(Response::new(pb::SnapshotResponse {
            vote: Some(vote_to(&resp.vote)),
        }))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        self.admit(request.metadata(), false)?;
        let r = request.into_inner();
        let from = vote_from(r.from_leader).map_err(Status::invalid_argument)?;
        let req = TransferLeaderRequest::new(from, r.to_node_id, log_id_from(r.last_log_id));
        let error = match self.raft.handle_transfer_leader(req).await.map_err(fatal)? {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        Ok(Response::new(pb::TransferLeaderResponse { error }))
    }

    async fn propose(
        &self,
        request: Request<pb::ProposeRequest>,
    ) -> Result<Response<pb::ProposeResponse>, Status> {
        self.admit(request.metadata(), false)?;
        let data = request.into_inner().data;
        match self.raft.client_write(crate::types::RaftRequest(data)).await {
            Ok(resp) => Ok(Response::new(pb::ProposeResponse {
                index: resp.log_id.index,
            })),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(Status::failed_precondition("not leader"))
            }
            Err(e) => Err(fatal(e)),
        }
    }

    async fn propose_batch(
        &self,
        request: Request<pb::ProposeBatchRequest>,
    ) -> Result<Response<pb::ProposeBatchResponse>, Status> {
        use futures::StreamExt;
        self.admit(request.metadata(), false)?;
        let data = request.into_inner().data;
        let n = data.len();
        // One message to the raft core for the whole batch; results come in order.
        let mut written = self
            .raft
            .client_write_many(data.into_iter().map(crate::types::RaftRequest))
            .await
            .map_err(fatal)?;
        let mut results = Vec::with_capacity(n);
        while let Some(r) = written.next().await {
            results.push(match r.map_err(fatal)? {
                Ok(resp) => pb::ProposeResult {
                    index: resp.log_id.index,
                    not_leader: false,
                },
                Err(_) => pb::ProposeResult {
                    index: 0,
                    not_leader: true,
                },
            });
        }
        Ok(Response::new(pb::ProposeBatchResponse { results }))
    }

    async fn read_index(
        &self,
        request: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        self.admit(request.metadata(), false)?;
        match self.raft.get_read_log_id(ReadPolicy::ReadIndex).await {
            Ok((read_log_id, _applied)) => Ok(Response::new(pb::ReadIndexResponse {
                index: read_log_id.index(),
            })),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_))) => {
                Err(Status::failed_precondition("not leader"))
            }
            Err(e) => Err(fatal(e)),
        }
    }

    async fn app(&self, request: Request<pb::AppRequest>) -> Result<Response<pb::AppResponse>, Status> {
        let join_info = request.get_ref().method == JOIN_INFO_METHOD;
        self.admit(request.metadata(), join_info)?;
        let r = request.into_inner();
        if r.method == MEMBER_CHANGE_METHOD {
            let change: crate::MemberChange =
                serde_json::from_slice(&r.data).map_err(|e| Status::invalid_argument(e.to_string()))?;
            return match crate::node::apply_member_change(&self.raft, change).await {
                Ok(()) => Ok(Response::new(pb::AppResponse { data: vec![] })),
                Err(crate::RaftNodeError::LearnerNotReady) => {
                    Err(Status::failed_precondition("learner not ready"))
                }
                Err(crate::RaftNodeError::Membership(m)) => Err(Status::invalid_argument(m)),
                Err(e) => Err(Status::failed_precondition(e.to_string())),
            };
        }
        let handler = self.app.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let Some(handler) = handler else {
            return Err(Status::unavailable("member is starting"));
        };
        let data = handler(r.method, r.data).await?;
        Ok(Response::new(pb::AppResponse { data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::RaftRequest;

    #[test]
    fn append_entries_roundtrip() {
        let req: AppendEntriesRequest<TypeConfig> = AppendEntriesRequest {
            vote: Vote::new_committed(3, 7),
            prev_log_id: Some(log_id(2, 10)),
            entries: vec![
                Entry {
                    log_id: log_id(3, 11),
                    payload: openraft::EntryPayload::Normal(RaftRequest(b"put".to_vec())),
                },
                Entry {
                    log_id: log_id(3, 12),
                    payload: openraft::EntryPayload::Blank,
                },
            ],
            leader_commit: Some(log_id(3, 11)),
        };
        let back = append_from(append_to(&req)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{req:?}"));
        let none: AppendEntriesRequest<TypeConfig> = AppendEntriesRequest {
            vote: Vote::new(1, 2),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        };
        assert_eq!(
            format!("{:?}", append_from(append_to(&none)).unwrap()),
            format!("{none:?}")
        );
    }

    #[test]
    fn responses_roundtrip() {
        for r in [
            AppendEntriesResponse::Success,
            AppendEntriesResponse::PartialSuccess(Some(log_id(4, 9))),
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(Vote::new(9, 1)),
        ] {
            assert_eq!(append_resp_from(append_resp_to(&r)).unwrap(), r);
        }
        let v: VoteResponse<TypeConfig> = VoteResponse::new(Vote::new(5, 2), Some(log_id(4, 100)), true);
        let back = vote_resp_from(vote_resp_to(&v)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{v:?}"));
        let mut req: VoteRequest<TypeConfig> = VoteRequest::new(Vote::new(6, 3), None);
        req.leadership_transfer = true;
        assert_eq!(
            format!("{:?}", vote_req_from(vote_req_to(&req)).unwrap()),
            format!("{req:?}")
        );
        assert!(vote_from(None).is_err());
    }

    struct NoImages;

    impl crate::SnapshotSource for NoImages {
        fn write_image(&self, _: &mut dyn std::io::Write) -> std::io::Result<u64> {
            Err(std::io::Error::other("no images here"))
        }
    }

    fn connection(url: String) -> PeerConnection {
        PeerConnection {
            target: 2,
            url,
            clients: PeerClients::new(7, None),
            source: Arc::new(NoImages),
            snap_dir: std::env::temp_dir(),
        }
    }

    fn append(prev: u64, entries: std::ops::RangeInclusive<u64>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: Some(log_id(1, prev)),
            entries: entries
                .map(|i| Entry {
                    log_id: log_id(1, i),
                    payload: openraft::EntryPayload::Normal(RaftRequest(vec![i as u8])),
                })
                .collect(),
            leader_commit: None,
        }
    }

    #[test]
    fn stream_answers_roundtrip() {
        for r in [
            Ok(Some(log_id(3, 8))),
            Ok(None),
            Err(StreamAppendError::Conflict(log_id(2, 5))),
            Err(StreamAppendError::HigherVote(Vote::new(9, 1))),
        ] {
            assert_eq!(stream_resp_from(stream_resp_to(&r)).unwrap(), r);
        }
        let conflict_without_id = pb::StreamAppendResponse {
            kind: pb::stream_append_response::Kind::Conflict as i32,
            ..Default::default()
        };
        assert!(stream_resp_from(conflict_without_id).is_err());
    }

    /// Requests leave without waiting for earlier answers: the follower answers nothing
    /// until it holds five requests (a transport sending one at a time would never get
    /// there); the answers come back in order, and a refusal ends the stream.
    #[tokio::test]
    async fn appends_are_pipelined_and_answered_in_order() {
        use futures::StreamExt;
        let follower = fake::FakePeer {
            hold: 5,
            ..Default::default()
        };
        let mut conn = connection(follower.clone().serve().await);
        let requests: Vec<_> = (0..5)
            .map(|i| append(i * 2, i * 2 + 1..=i * 2 + 2))
            .chain([append(999, 1000..=1000), append(1000, 1001..=1001)])
            .collect();
        let answers = tokio::time::timeout(Duration::from_secs(10), async {
            let out = conn
                .stream_append(
                    futures::stream::iter(requests),
                    RPCOption::new(Duration::from_secs(1)),
                )
                .await
                .unwrap();
            out.collect::<Vec<_>>().await
        })
        .await
        .expect("the stream did not pipeline its requests");
        assert_eq!(*follower.held_at_first_answer.lock().unwrap(), Some(5));
        let answers: Vec<_> = answers.into_iter().map(|a| a.unwrap()).collect();
        assert_eq!(
            answers,
            vec![
                Ok(Some(log_id(1, 2))),
                Ok(Some(log_id(1, 4))),
                Ok(Some(log_id(1, 6))),
                Ok(Some(log_id(1, 8))),
                Ok(Some(log_id(1, 10))),
                Err(StreamAppendError::Conflict(log_id(1, 999))),
            ]
        );
    }

    /// A member that takes requests but never answers: the stream fails as unreachable
    /// once the oldest unanswered request is ten soft timeouts old.
    #[tokio::test]
    async fn a_member_that_stops_answering_fails_the_stream() {
        use futures::StreamExt;
        let follower = fake::FakePeer {
            silent: true,
            ..Default::default()
        };
        let mut conn = connection(follower.serve().await);
        let requests = futures::stream::iter([append(0, 1..=1)]).chain(futures::stream::pending());
        let started = std::time::Instant::now();
        let mut out = conn
            .stream_append(Box::pin(requests), RPCOption::new(Duration::from_millis(40)))
            .await
            .unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), out.next())
            .await
            .unwrap();
        assert!(matches!(first, Some(Err(RPCError::Unreachable(_)))), "{first:?}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(out.next().await.is_none());
    }
}

/// A scripted member for transport tests.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures::StreamExt;
    use tonic::{Request, Response, Status};

    use super::{append_from, pb, stream_resp_to};

    /// ProposeBatch answers after 50 ms (recording each batch's size; a proposal whose data
    /// is "stale" was not committed: the leader lost its leadership); StreamAppend answers
    /// nothing until `hold` requests have arrived (or the input ended), then answers them
    /// and every later one in order: the last log id it got, or a conflict for a request
    /// whose `prev_log_id` index is 999 (the end of the stream); `silent` never answers.
    /// Everything else is unimplemented.
    #[derive(Clone, Default)]
    pub(crate) struct FakePeer {
        pub(crate) batch_sizes: Arc<Mutex<Vec<usize>>>,
        pub(crate) hold: usize,
        pub(crate) silent: bool,
        /// How many requests had arrived when the first answer left.
        pub(crate) held_at_first_answer: Arc<Mutex<Option<usize>>>,
    }

    type R<T> = Result<Response<T>, Status>;

    impl FakePeer {
        /// Serves it on a free loopback port; its URL.
        pub(crate) async fn serve(self) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(pb::peer_server::PeerServer::new(self))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
            );
            url
        }
    }

    fn answer(m: pb::AppendEntriesRequest) -> pb::StreamAppendResponse {
        let req = append_from(m).unwrap();
        if req.prev_log_id.is_some_and(|p| p.index == 999) {
            return stream_resp_to(&Err(openraft::raft::StreamAppendError::Conflict(
                req.prev_log_id.unwrap(),
            )));
        }
        let last = req.entries.last().map(|e| e.log_id).or(req.prev_log_id);
        stream_resp_to(&Ok(last))
    }

    #[tonic::async_trait]
    impl pb::peer_server::Peer for FakePeer {
        type StreamAppendStream =
            futures::stream::BoxStream<'static, Result<pb::StreamAppendResponse, Status>>;

        async fn stream_append(
            &self,
            r: Request<tonic::Streaming<pb::AppendEntriesRequest>>,
        ) -> R<Self::StreamAppendStream> {
            let mut incoming = r.into_inner();
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            let me = self.clone();
            tokio::spawn(async move {
                let mut held = Vec::new();
                let mut ended = false;
                while held.len() < me.hold.max(1) {
                    match incoming.message().await {
                        Ok(Some(m)) => held.push(m),
                        _ => {
                            ended = true;
                            break;
                        }
                    }
                }
                if me.silent {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                me.held_at_first_answer.lock().unwrap().get_or_insert(held.len());
                for m in held {
                    if tx.send(Ok(answer(m))).await.is_err() {
                        return;
                    }
                }
                while !ended {
                    match incoming.message().await {
                        Ok(Some(m)) => {
                            if tx.send(Ok(answer(m))).await.is_err() {
                                return;
                            }
                        }
                        _ => ended = true,
                    }
                }
            });
            Ok(Response::new(
                tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
            ))
        }
        async fn propose_batch(&self, r: Request<pb::ProposeBatchRequest>) -> R<pb::ProposeBatchResponse> {
            let data = r.into_inner().data;
            self.batch_sizes.lock().unwrap().push(data.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
            let results = data
                .iter()
                .map(|d| pb::ProposeResult {
                    index: u64::from(d[0]),
                    not_leader: d == b"stale",
                })
                .collect();
            Ok(Response::new(pb::ProposeBatchResponse { results }))
        }
        async fn append_entries(&self, _: Request<pb::AppendEntriesRequest>) -> R<pb::AppendEntriesResponse> {
            Err(Status::unimplemented(""))
        }
        async fn vote(&self, _: Request<pb::VoteRequest>) -> R<pb::VoteResponse> {
            Err(Status::unimplemented(""))
        }
        async fn pre_vote(&self, _: Request<pb::VoteRequest>) -> R<pb::VoteResponse> {
            Err(Status::unimplemented(""))
        }
        async fn transfer_leader(
            &self,
            _: Request<pb::TransferLeaderRequest>,
        ) -> R<pb::TransferLeaderResponse> {
            Err(Status::unimplemented(""))
        }
        async fn install_snapshot(
            &self,
            _: Request<tonic::Streaming<pb::SnapshotChunk>>,
        ) -> R<pb::SnapshotResponse> {
            Err(Status::unimplemented(""))
        }
        async fn propose(&self, _: Request<pb::ProposeRequest>) -> R<pb::ProposeResponse> {
            Err(Status::unimplemented(""))
        }
        async fn read_index(&self, _: Request<pb::ReadIndexRequest>) -> R<pb::ReadIndexResponse> {
            Err(Status::unimplemented(""))
        }
        async fn app(&self, _: Request<pb::AppRequest>) -> R<pb::AppResponse> {
            Err(Status::unimplemented(""))
        }
    }
}
