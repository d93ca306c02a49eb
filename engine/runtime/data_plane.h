// The network data plane: moves channel Buffers between taskmanager
// processes over TCP — mutual TLS when the cluster has certificates
// (data_plane_transport.h) — one connection per remote channel.
//
// Wire protocol (all integers little-endian). Every message is
//   u8 type, u32 payload length, payload
// and one Buffer travels as one kData message, its bytes untouched (the
// frames inside already encode records, watermarks, barriers, end markers).
//
//   producer (client)                     consumer (server)
//   kPreface{"sluice data plane"} ──▶
//                                     ◀── kChallenge{server nonce}
//   kHello{job, attempt, edge, p, c, client nonce, mac} ──▶
//                                     ◀── kAccept{mac'} | kRefuse{reason}
//                                     ◀── kCredit{n}   (free space in the consumer's Channel)
//   kData{buffer bytes}  ──▶               (only with credit; one credit per buffer)
//                                     ◀── kCredit{n}   (as the consuming task pops)
//   ... kData{... end of partition}, then FIN ──▶  FIN
//
// Authentication: the key of (job, attempt) is derived from the cluster
// secret (auth::derive_attempt_key), which only cluster members hold. The
// hello's mac = HMAC(key, "hello" | server nonce | client nonce | fields)
// proves the producer belongs to that attempt of that job; the consumer
// answers mac' = HMAC(key, "accept" | both nonces), so the producer knows it
// talks to a member too. A hello that does not verify is refused and logged
// and changes nothing (no channel, no attempt number noted). Before the
// handshake completes a peer can make the server hold at most
// kMaxPendingHandshakes connections for at most the handshake timeout, and
// no message larger than 64 KiB; data messages are read as their bytes
// arrive (no allocation of an announced size up front).
//
// TLS on one end only: the producer speaks first (with TLS its
// ClientHello, else the preface), so the consumer knows at once. A TLS
// consumer answers a plaintext preface with kRefuse in clear; a plaintext
// consumer's challenge fails a TLS producer's handshake. Both ends fail
// the connection for good (no retries), say "TLS mismatch: …" with the fix
// in the log and the channel's failure, and count it
// (sluice_data_plane_tls_mismatches_total{side}). The producer's channel
// fails with a permanent error (kFailedPrecondition) naming the consumer's
// address, as it does for a certificate the other end refuses: a wrong
// cluster configuration fails the job at once instead of restarting it.
//
// Credit-based flow control: the receiver never grants more credit than
// its bounded Channel has room for, so a slow consumer stops its sender,
// the producer's outbound Channel fills and the producing task blocks in
// Channel::push — backpressure, without touching any other connection.
// Memory per channel: `capacity` buffers on each side plus at most
// `capacity` buffers in flight.
//
// Failure: a connection that ends before the producer's end-of-partition
// frame went through fails the inbound Channel (Channel::fail), naming the
// producer; a send error or a consumer that goes away fails the outbound
// Channel. Tasks fail when a channel they use is broken.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/status.h"
#include "engine/runtime/channel.h"
#include "engine/runtime/data_plane_transport.h"
#include "engine/runtime/task.h"

namespace sluice::proto {
class JobGraph;
}

namespace sluice::runtime {

/// One process's data-plane endpoint: a TCP server on `bind_host:port`
/// accepting connections from remote producers, plus the client side that
/// connects to peers. One per taskmanager, owned by it; thread-safe.
///
/// Threads: one accept thread. Per accepted connection a receiver thread
/// (handshake, then reads kData and pushes into the inbound Channel) and a
/// credit thread (grants credit as the task pops). Per outbound channel a
/// sender thread (connects with backoff, handshakes, pops and writes while
/// it has credit) and a credit-reader thread. Tasks never block on a
/// socket; they only push into and pop from Channels.
///
/// Attempts: an arriving connection creates the inbound channel of its
/// (job, attempt) if the task has not asked yet, so deployment order does
/// not matter. Connections are refused for attempts that were released and
/// for attempts older than the newest one this plane has seen of the job
/// (a stale attempt still retrying).
struct DataPlaneOptions {
  /// The cluster secret. Empty: a random one (the plane then only talks
  /// to itself). Default empty.
  std::string secret;
  /// Mutual TLS on every connection (both ends present a certificate of
  /// the cluster CA; the secret's challenge runs inside). Default empty:
  /// plaintext. Every plane of a cluster must agree.
  DataPlaneTls tls;
};

class DataPlane {
 public:
  /// Largest kData message accepted (a Buffer is normally ~32 KiB; one huge
  /// record may make it larger). Bigger messages are treated as corruption.
  static constexpr uint32_t kMaxMessageBytes = 256u << 20;

  /// Connections that have not finished their handshake, at most; more are closed at once.
  static constexpr int kMaxPendingHandshakes = 64;

  static Result<std::unique_ptr<DataPlane>> start(const std::string& bind_host, int port,
                                                  DataPlaneOptions options = {});
  ~DataPlane();  // stops server and all connections
  DataPlane(const DataPlane&) = delete;
  DataPlane& operator=(const DataPlane&) = delete;

  int port() const { return port_; }  // the bound port

  /// Consumer side: the Channel the local consuming task reads for (job,
  /// attempt, key). Created on first request by either the task or an
  /// arriving connection (deployment order must not matter); no credit is
  /// granted before the task has asked. A released attempt gets a broken
  /// channel.
  std::shared_ptr<Channel> inbound(const std::string& job_id, int attempt, const ChannelKey& key,
                                   size_t capacity);
  /// Producer side: a Channel the local producing task pushes into; a
  /// sender drains it to the peer at `peer_address` ("host:port" of the
  /// consumer's DataPlane). Connect is retried with backoff until it
  /// succeeds or the attempt is released. Asking again for the same key
  /// returns the same channel. A released attempt gets a broken channel.
  std::shared_ptr<Channel> outbound(const std::string& peer_address, const std::string& job_id,
                                    int attempt, const ChannelKey& key, size_t capacity);
  /// Closes every inbound/outbound channel and connection of (job, attempt)
  /// and forgets them; later connections for it are refused. attempt = -1:
  /// every attempt of the job seen so far (a newer attempt deployed later is
  /// still accepted). Blocks until the connection threads have ended.
  void release(const std::string& job_id, int attempt);

  /// Remote channels currently known (tests, metrics).
  size_t num_inbound() const;
  size_t num_outbound() const;

  // Implementation types (public only so the .cc's helpers can name them).
  struct Slot;
  class Receiver;
  class Sender;
  struct Hello {
    std::string job_id;
    int attempt = 0;
    ChannelKey key;
    int sender_port = 0;  // the producer plane's data port, to name it in errors
    std::string nonce;    // the producer's (16 bytes)
    std::string mac;      // see the file comment (32 bytes)
  };
  /// The hello codec (public for the fuzzer and tests).
  static std::string encode_hello(const Hello& hello);
  static Result<Hello> decode_hello(std::string_view payload);

 private:
  DataPlane(int listen_fd, int port, int wake_read, int wake_write, std::string secret,
            std::unique_ptr<Transport> transport);
  struct SlotKey {
    std::string job_id;
    int attempt = 0;
    ChannelKey key;
    auto operator<=>(const SlotKey&) const = default;
  };
  struct JobAttempts {
    int newest = -1;
    int released_through = -1;  // every attempt <= this was released
    std::set<int> released;
  };
  friend class Receiver;

  void accept_loop();
  void reap_receivers();
  /// Receiver thread, after reading kHello: checks the attempt and binds the
  /// connection to its slot; an error is the refusal reason.
  Result<std::shared_ptr<Slot>> admit(const Hello& hello, Receiver* r);
  /// Why connections for (job, attempt) are refused; empty if they are not.
  std::string refusal(const std::string& job_id, int attempt, bool stale_too) const;  // mu_ held
  void note_attempt(const std::string& job_id, int attempt);                          // mu_ held

  const int listen_fd_;
  const int port_;
  const int wake_read_, wake_write_;  // self-pipe that stops the accept thread
  const std::string secret_;
  const std::unique_ptr<Transport> transport_;
  std::atomic<int> pending_handshakes_{0};
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;

  mutable std::mutex mu_;  // guards everything below
  std::map<std::string, JobAttempts> jobs_;
  std::map<SlotKey, std::shared_ptr<Slot>> slots_;        // inbound channels
  std::map<SlotKey, std::shared_ptr<Sender>> senders_;    // outbound channels
  // Shared: the accept thread, release() and the destructor each may be the
  // one that stops and joins a receiver.
  std::vector<std::shared_ptr<Receiver>> receivers_;
};

/// ChannelProvider of one job attempt on one taskmanager: in-memory
/// channels between subtasks placed in this process, DataPlane channels
/// to/from subtasks placed elsewhere. Owned by the taskmanager for the
/// attempt's lifetime; the plane must outlive it. Thread-safe.
class NetworkChannelProvider final : public ChannelProvider {
 public:
  /// `remote_of(vertex, subtask)`: the data address of the process running
  /// that subtask, or "" if it runs here. Called from task threads.
  NetworkChannelProvider(std::string job_id, int attempt, size_t capacity, DataPlane& plane,
                         std::shared_ptr<const proto::JobGraph> graph,
                         std::function<std::string(int vertex, int subtask)> remote_of);
  /// Consumer = the edge's target_vertex, subtask key.consumer.
  std::shared_ptr<Channel> output_channel(const ChannelKey& key) override;
  /// Producer = the edge's source_vertex, subtask key.producer.
  std::shared_ptr<Channel> input_channel(const ChannelKey& key) override;
  /// Closes the local channels and releases (job, attempt) on the plane.
  void close_all();

 private:
  std::shared_ptr<Channel> local(const ChannelKey& key);

  const std::string job_id_;
  const int attempt_;
  const size_t capacity_;
  DataPlane& plane_;
  std::shared_ptr<const proto::JobGraph> graph_;  // shared with the job's tasks
  std::function<std::string(int, int)> remote_of_;
  std::mutex mu_;
  std::map<ChannelKey, std::shared_ptr<Channel>> local_;
};

}  // namespace sluice::runtime
