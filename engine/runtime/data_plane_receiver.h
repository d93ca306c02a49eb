// Internal to the data plane (included by data_plane.cc only): the
// consumer end of a remote channel — the Slot a task and a connection
// meet at, and the Receiver that serves one accepted connection.
#pragma once

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/auth.h"
#include "engine/runtime/data_plane_wire.h"

namespace sluice::runtime {

// --- Slot: the inbound channel of one key --------------------------------------

/// The consumer end of one remote channel. Created by whichever comes first:
/// the consuming task (inbound()) or the producer's connection (admit()).
/// The Channel itself exists once the task asked, because only the task
/// knows its capacity; until then the connection grants no credit, so no
/// data can arrive. Shared by the plane's map and the connection.
struct DataPlane::Slot {
  explicit Slot(std::string n) : name(std::move(n)) {}

  /// The task's side: creates the channel (failed already if the connection
  /// broke before) and lets the connection start granting credit.
  std::shared_ptr<Channel> bind(size_t capacity) {
    std::shared_ptr<detail::Wake> wake;
    std::shared_ptr<Channel> ch;
    {
      std::lock_guard lk(mu);
      if (!channel) {
        channel = std::make_shared<Channel>(name, capacity);
        if (!failure.empty()) channel->fail(failure);
        else if (closed) channel->close();
        if (observer) channel->set_observer(observer);
      }
      wake = observer;
      ch = channel;
    }
    if (wake) wake->signal.notify();
    return ch;
  }
  /// The connection's side; false if another connection already had it.
  bool attach(std::shared_ptr<detail::Wake> wake) {
    std::lock_guard lk(mu);
    if (connected) return false;
    connected = true;
    observer = wake;
    if (channel) channel->set_observer(wake);
    return true;
  }
  std::shared_ptr<Channel> get() {
    std::lock_guard lk(mu);
    return channel;
  }
  void fail(const std::string& why) {
    std::lock_guard lk(mu);
    if (channel) channel->fail(why);
    else if (failure.empty()) failure = why;
  }
  void close() {
    std::lock_guard lk(mu);
    closed = true;
    if (channel) {
      channel->set_observer(nullptr);
      channel->close();
    }
  }

  const std::string name;
  std::mutex mu;  // guards the fields below
  std::shared_ptr<Channel> channel;  // null until the consuming task asks
  std::string failure;               // the connection broke before that
  bool closed = false;
  bool connected = false;
  std::shared_ptr<detail::Wake> observer;  // the connection's credit thread
};

// --- Receiver: one accepted connection -----------------------------------------

/// One accepted connection, the consumer side of one remote channel.
/// Threads: `thread_` reads the hello, binds the slot, then reads kData
/// messages and pushes them into the inbound Channel; `credits_` (started
/// after the handshake) grants credit whenever the Channel has room not yet
/// promised. Owned (shared) by the plane, which stops and joins it.
class DataPlane::Receiver {
 public:
  Receiver(DataPlane& plane, std::unique_ptr<Connection> conn, std::string remote_ip)
      : plane_(plane), conn_(std::move(conn)), remote_ip_(std::move(remote_ip)), peer_(remote_ip_),
        wake_(std::make_shared<detail::Wake>()) {}
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  void start() { thread_ = std::thread([this] { run(); }); }
  /// Called once, by whoever took the receiver out of the plane's list.
  void stop_and_join() {
    stop_.store(true);
    conn_->abort();
    wake_->signal.notify();
    if (thread_.joinable()) thread_.join();
  }
  bool done() const { return done_.load(); }
  const std::shared_ptr<detail::Wake>& wake() const { return wake_; }

  // Set by DataPlane::admit under the plane's mutex.
  bool admitted = false;
  std::string job_id;
  int attempt = 0;

 private:
  void run() {
    Status st = handshake();
    plane_.pending_handshakes_.fetch_sub(1);
    if (st.is_ok()) {
      credits_ = std::thread([this] { grant_credits(); });
      st = read_loop();
      const bool stopping = stop_.load();
      if (!eop_seen_.load() && !stopping) {
        std::string why = "connection from producer " + peer_ + " lost before end of partition: " +
                          (st.is_ok() ? std::string("closed by the peer") : st.message());
        spdlog::warn("data plane: channel {} of job {} attempt {}: {}", slot_->name, job_id, attempt,
                     why);
        slot_->fail(why);
      } else if (!st.is_ok() && !stopping) {
        spdlog::warn("data plane: dropping connection from {} after end of partition: {}", peer_,
                     st.to_string());
      }
      stop_.store(true);
      wake_->signal.notify();
      conn_->abort();
      credits_.join();
    } else {
      if (slot_) slot_->fail("connection from producer " + peer_ + " lost during handshake: " +
                             st.message());
      if (!stop_.load()) {
        spdlog::warn("data plane: {} connection from {}: {}",
                     st.code() == StatusCode::kPermissionDenied ? "refused" : "dropped", peer_, st.to_string());
      }
    }
    // FIN (never RST): the producer waits for it after its last buffer.
    conn_->abort();
    done_.store(true);
  }

  Status handshake() {
    const auto deadline = std::chrono::steady_clock::now() + kHandshakeTimeout;
    const bool tls = plane_.transport_->tls();
    if (tls) {
      // A plaintext producer's first bytes are its preface, not a
      // ClientHello: refused at once, in clear words it can read, instead
      // of both ends waiting out the handshake timeout.
      const std::string first = peek_bytes(conn_->fd(), 1, deadline);
      if (first.size() == 1 && first[0] == static_cast<char>(MsgType::kPreface)) return refuse_plaintext_producer();
      // The TLS handshake: a peer without a certificate of the cluster CA
      // is refused before it can send a byte of protocol.
      SLUICE_RETURN_IF_ERROR(conn_->handshake(std::chrono::duration_cast<std::chrono::milliseconds>(
          std::max(deadline - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration(0)))));
    }
    conn_->set_read_timeout(kHandshakeTimeout);
    const std::string server_nonce = auth::random_bytes(kNonceBytes);
    SLUICE_RETURN_IF_ERROR(send_message(*conn_, MsgType::kChallenge, server_nonce));
    if (!tls) {
      const std::string first = peek_bytes(conn_->fd(), 2, deadline);
      if (looks_like_tls(first)) {
        // A TLS producer: the challenge in clear already failed its
        // handshake (it reports the mismatch itself); this end says why it
        // drops the connection.
        count_tls_mismatch("consumer");
        return Status::permission_denied(std::string(kTlsMismatch) + "the producer at " + peer_ +
                                         " speaks TLS (its taskmanager has --tls-cert, --tls-key, --tls-ca), this "
                                         "taskmanager's data plane runs without: give every taskmanager of the "
                                         "cluster the same TLS settings");
      }
      if (first.empty() && std::chrono::steady_clock::now() >= deadline) return Status::timeout("read timed out");
    }
    MsgType type;
    std::string payload;
    bool eof = false;
    SLUICE_RETURN_IF_ERROR(read_message(*conn_, kMaxControlBytes, type, payload, &eof));
    if (!eof && type == MsgType::kPreface) {
      SLUICE_RETURN_IF_ERROR(read_message(*conn_, kMaxControlBytes, type, payload, &eof));
    }
    if (eof) return Status::unavailable("closed before the handshake");
    if (type != MsgType::kHello) return Status::corruption("expected a hello");
    SLUICE_ASSIGN_OR_RETURN(Hello hello, decode_hello(payload));
    const std::string key = auth::derive_attempt_key(plane_.secret_, hello.job_id, hello.attempt);
    if (!auth::constant_time_equal(hello_mac(key, server_nonce, hello), hello.mac)) {
      (void)send_message(*conn_, MsgType::kRefuse, "not authenticated (wrong cluster secret?)");
      return Status::permission_denied("refused a hello for job " + hello.job_id.substr(0, 64) + " attempt " +
                                       std::to_string(hello.attempt) +
                                       " that does not prove the cluster secret");
    }
    peer_ = remote_ip_ + ":" + std::to_string(hello.sender_port);
    auto slot = plane_.admit(hello, this);
    if (!slot.is_ok()) {
      (void)send_message(*conn_, MsgType::kRefuse, slot.status().message());
      return slot.status().with_context("refused " + key_name(hello.key) + " of job " +
                                        hello.job_id);
    }
    slot_ = *slot;
    SLUICE_RETURN_IF_ERROR(send_message(*conn_, MsgType::kAccept, accept_mac(key, server_nonce, hello.nonce)));
    conn_->set_read_timeout(0ms);
    spdlog::debug("data plane: accepted {} of job {} attempt {} from {}", slot_->name, job_id,
                  attempt, peer_);
    return Status::ok();
  }

  /// A TLS plane's answer to a plaintext producer: kRefuse in clear (its
  /// reason names the fix), then the close.
  Status refuse_plaintext_producer() {
    count_tls_mismatch("consumer");
    const std::string why = std::string(kTlsMismatch) + "the consumer at this address runs the data plane with "
                            "mutual TLS, the producer's taskmanager without (--tls-cert, --tls-key, --tls-ca): give "
                            "every taskmanager of the cluster the same TLS settings";
    const std::string m = plain_message(MsgType::kRefuse, why);
    (void)!::send(conn_->fd(), m.data(), m.size(), MSG_NOSIGNAL | MSG_DONTWAIT);  // a few bytes: the buffer takes them
    return Status::permission_denied(std::string(kTlsMismatch) + "the producer at " + peer_ +
                                     " runs the data plane without TLS, this taskmanager with mutual TLS: give "
                                     "every taskmanager of the cluster the same TLS settings");
  }

  Status read_loop() {
    MsgType type;
    std::string payload;
    std::vector<Barrier> barriers;
    while (true) {
      bool eof = false;
      SLUICE_RETURN_IF_ERROR(read_message(*conn_, kMaxMessageBytes, type, payload, &eof));
      if (eof) return Status::ok();
      if (type != MsgType::kData) {
        return Status::corruption("unexpected message type " + std::to_string(static_cast<int>(type)));
      }
      if (eop_seen_.load()) return Status::corruption("data after the end of partition");
      barriers.clear();
      bool eop = false;
      SLUICE_RETURN_IF_ERROR(scan_frames(payload, &barriers, &eop));
      std::shared_ptr<Channel> ch = slot_->get();
      {
        std::lock_guard lk(mu_);
        if (outstanding_ <= 0 || !ch) return Status::corruption("data without credit");
        // Never blocks: the credit promised this much room.
        ch->push_unbounded(Buffer{std::move(payload)});
        --outstanding_;
      }
      payload = std::string();
      for (const auto& b : barriers) ch->announce_barrier(b);
      if (eop) eop_seen_.store(true);
    }
  }

  void grant_credits() {
    while (!stop_.load()) {
      std::shared_ptr<Channel> ch = eop_seen_.load() ? nullptr : slot_->get();
      if (ch && !ch->closed()) {
        int64_t n;
        {
          std::lock_guard lk(mu_);
          n = static_cast<int64_t>(ch->capacity()) - static_cast<int64_t>(ch->size()) - outstanding_;
          if (n > 0) outstanding_ += n;
        }
        if (n > 0) {
          std::string p;
          put_u32(p, static_cast<uint32_t>(n));
          Status st = send_message(*conn_, MsgType::kCredit, p);
          if (!st.is_ok()) {
            if (!stop_.load()) spdlog::debug("data plane: credit to {} failed: {}", peer_, st.to_string());
            conn_->abort();  // the read loop ends too
            return;
          }
        }
      }
      // Woken by pops, by the task binding the channel, and by stop.
      wake_->signal.wait_until(std::chrono::steady_clock::now() + 200ms);
    }
  }

  DataPlane& plane_;
  const std::unique_ptr<Connection> conn_;
  const std::string remote_ip_;
  std::string peer_;  // "ip:data-port" of the producer once the hello names it
  const std::shared_ptr<detail::Wake> wake_;
  std::shared_ptr<Slot> slot_;  // set by the handshake, before credits_ starts
  std::mutex mu_;               // guards outstanding_ together with the push
  int64_t outstanding_ = 0;     // credit granted and not yet used
  std::atomic<bool> stop_{false};
  std::atomic<bool> eop_seen_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
  std::thread credits_;
};

}  // namespace sluice::runtime
