// Internal to the data plane (data_plane*.cc only): its wire messages
// (u8 type, u32 length, payload; see data_plane.h), their framing over a
// Connection, the handshake MACs, socket settings, and the Wake that the
// plane's threads wait on. Not an API: the plane's own files name these
// unqualified (the using-directive at the end).
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/status.h"
#include "engine/runtime/channel.h"
#include "engine/runtime/data_plane.h"
#include "engine/runtime/data_plane_transport.h"
#include "engine/runtime/frames.h"

namespace sluice::runtime {

namespace detail {

/// Wakes one data-plane thread: notified by a Channel (push into empty,
/// pop), by the plane (channel bound, stop) and by the thread's partner.
class Wake final : public ChannelObserver {
 public:
  void on_push() override { signal.notify(); }
  void on_pop() override { signal.notify(); }
  TaskSignal signal;
};

}  // namespace detail

namespace wire {

using namespace std::chrono_literals;

enum class MsgType : uint8_t {
  kHello = 1,
  kAccept = 2,
  kRefuse = 3,
  kCredit = 4,
  kData = 5,
  kChallenge = 6,
  kPreface = 7,
};

/// The payload of kPreface, the producer's first message (see data_plane.h).
inline constexpr std::string_view kPrefaceText = "sluice data plane";

inline constexpr size_t kNonceBytes = frames::kHelloNonceBytes;
inline constexpr size_t kHeaderBytes = 5;
inline constexpr uint32_t kMaxControlBytes = 64 * 1024;
inline constexpr auto kHandshakeTimeout = 5s;
// Data messages are read in steps that at most double what has arrived.
inline constexpr size_t kReadStep = 64 * 1024;
inline constexpr auto kConnectTimeout = 5s;
inline constexpr auto kInitialBackoff = 20ms;
inline constexpr auto kMaxBackoff = 1s;

void put_u32(std::string& out, uint32_t v);
uint32_t get_u32(const char* p);
/// "e<edge>:<producer>-><consumer>".
std::string key_name(const ChannelKey& k);
/// A channel that is failed already (`why`).
std::shared_ptr<Channel> broken_channel(const ChannelKey& key, size_t capacity, std::string why);
Status send_message(Connection& conn, MsgType type, std::string_view payload);
/// Reads exactly n bytes. *eof (if given) is set when the peer closed the
/// connection before the first byte; a close in the middle is an error.
Status read_exact(Connection& conn, char* p, size_t n, bool* eof);
/// One message of at most `max_bytes`, allocated as its bytes arrive; on a
/// clean close at a message boundary sets *eof.
Status read_message(Connection& conn, uint32_t max_bytes, MsgType& type, std::string& payload, bool* eof);
/// Up to the first `n` bytes the peer sent on `fd`, left unread: waits
/// until `n` arrived, the peer closed, or `deadline` passed (then fewer).
std::string peek_bytes(int fd, size_t n, std::chrono::steady_clock::time_point deadline);
/// Whether a stream's first bytes are a TLS record (a ClientHello: a
/// handshake record of version 3.x) rather than this protocol.
bool looks_like_tls(std::string_view first);
/// The plaintext bytes of one message, for a TLS consumer refusing a
/// plaintext producer in words it can read.
std::string plain_message(MsgType type, std::string_view payload);
/// No Nagle delay; a dead or unreachable peer noticed within ~3 s.
void configure_socket(int fd);
bool set_nonblocking(int fd, bool on);
/// "host:port" or "[v6]:port".
Result<std::pair<std::string, std::string>> split_address(const std::string& address);
std::string numeric_host(const sockaddr* sa, socklen_t len);
frames::WireHello to_wire(const DataPlane::Hello& h);
/// What the producer's mac covers: both nonces and every field of its hello.
std::string hello_mac(const std::string& key, const std::string& server_nonce, const DataPlane::Hello& h);
std::string accept_mac(const std::string& key, const std::string& server_nonce, const std::string& client_nonce);
/// Decodes every frame of a buffer: collects its barriers and whether it
/// holds the end of partition. Corruption if a frame does not decode.
Status scan_frames(std::string_view data, std::vector<Barrier>* barriers, bool* end_of_partition);

}  // namespace wire

using namespace wire;

}  // namespace sluice::runtime
