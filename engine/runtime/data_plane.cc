#include "engine/runtime/data_plane.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/common/auth.h"
#include "engine/proto/jobgraph.pb.h"
#include "engine/runtime/data_plane_receiver.h"
#include "engine/runtime/data_plane_sender.h"
#include "engine/runtime/data_plane_wire.h"

namespace sluice::runtime {

// --- DataPlane ----------------------------------------------------------------------

Result<std::unique_ptr<DataPlane>> DataPlane::start(const std::string& bind_host, int port,
                                                    DataPlaneOptions options) {
  if (options.secret.empty()) options.secret = auth::random_bytes(32);
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, Transport::create(options.tls));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  int rc = ::getaddrinfo(bind_host.empty() ? nullptr : bind_host.c_str(), port_s.c_str(), &hints, &res);
  if (rc != 0) return Status::invalid_argument("data plane: resolve " + bind_host + ": " + ::gai_strerror(rc));
  Status last = Status::unavailable("data plane: no address for " + bind_host);
  int fd = -1;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = Status::from_errno("data plane: socket", errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) break;
    last = Status::from_errno("data plane: bind " + bind_host + ":" + port_s, errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) return last;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    Status st = Status::from_errno("data plane: getsockname", errno);
    ::close(fd);
    return st;
  }
  int bound = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) {
    Status st = Status::from_errno("data plane: pipe", errno);
    ::close(fd);
    return st;
  }
  for (int p : pipe_fds) ::fcntl(p, F_SETFD, FD_CLOEXEC);
  std::unique_ptr<DataPlane> plane(
      new DataPlane(fd, bound, pipe_fds[0], pipe_fds[1], std::move(options.secret), std::move(transport)));
  plane->accept_thread_ = std::thread([p = plane.get()] { p->accept_loop(); });
  spdlog::info("data plane listening on {}:{}{}", bind_host, bound, plane->transport_->tls() ? " (mutual TLS)" : "");
  return plane;
}

DataPlane::DataPlane(int listen_fd, int port, int wake_read, int wake_write, std::string secret,
                     std::unique_ptr<Transport> transport)
    : listen_fd_(listen_fd), port_(port), wake_read_(wake_read), wake_write_(wake_write),
      secret_(std::move(secret)), transport_(std::move(transport)) {}

DataPlane::~DataPlane() {
  stopping_.store(true);
  char x = 1;
  (void)!::write(wake_write_, &x, 1);
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::shared_ptr<Slot>> slots;
  std::vector<std::shared_ptr<Sender>> senders;
  std::vector<std::shared_ptr<Receiver>> receivers;
  {
    std::lock_guard lk(mu_);
    for (auto& [k, s] : slots_) slots.push_back(s);
    for (auto& [k, s] : senders_) senders.push_back(s);
    receivers.swap(receivers_);
    slots_.clear();
    senders_.clear();
  }
  for (auto& r : receivers) r->stop_and_join();
  for (auto& s : slots) s->close();
  for (auto& s : senders) s->stop_and_join();
  ::close(listen_fd_);
  ::close(wake_read_);
  ::close(wake_write_);
}

void DataPlane::accept_loop() {
  while (!stopping_.load()) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    int n = ::poll(fds, 2, 1000);
    if (stopping_.load()) break;
    reap_receivers();
    if (n < 0) {
      if (errno != EINTR) {
        spdlog::error("data plane: poll: {}", std::strerror(errno));
        std::this_thread::sleep_for(100ms);
      }
      continue;
    }
    if (!(fds[0].revents & POLLIN)) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
        spdlog::warn("data plane: accept: {}", std::strerror(errno));
        std::this_thread::sleep_for(50ms);  // e.g. out of file descriptors
      }
      continue;
    }
    if (pending_handshakes_.load() >= kMaxPendingHandshakes) {
      // A flood of connections that do not complete their handshake.
      spdlog::warn("data plane: {} handshakes pending; dropping a connection from {}", kMaxPendingHandshakes,
                   numeric_host(reinterpret_cast<sockaddr*>(&ss), len));
      ::close(fd);
      continue;
    }
    pending_handshakes_.fetch_add(1);
    configure_socket(fd);
    auto r = std::make_shared<Receiver>(*this, transport_->accepted(fd),
                                        numeric_host(reinterpret_cast<sockaddr*>(&ss), len));
    {
      // Started under the lock: release() and the destructor may only see
      // it with its thread_ set (its thread needs mu_ to be admitted).
      std::lock_guard lk(mu_);
      receivers_.push_back(r);
      r->start();
    }
  }
}

// Joins receivers whose connection ended on its own (end of partition,
// error, refused). Accept thread only.
void DataPlane::reap_receivers() {
  std::vector<std::shared_ptr<Receiver>> done;
  {
    std::lock_guard lk(mu_);
    auto it = std::stable_partition(receivers_.begin(), receivers_.end(),
                                    [](const auto& r) { return !r->done(); });
    done.assign(std::make_move_iterator(it), std::make_move_iterator(receivers_.end()));
    receivers_.erase(it, receivers_.end());
  }
  for (auto& r : done) r->stop_and_join();
}

std::string DataPlane::refusal(const std::string& job_id, int attempt, bool stale_too) const {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return "";
  const JobAttempts& j = it->second;
  if (attempt <= j.released_through || j.released.count(attempt)) {
    return "attempt " + std::to_string(attempt) + " of job " + job_id + " was released";
  }
  if (stale_too && attempt < j.newest) {
    return "attempt " + std::to_string(attempt) + " of job " + job_id + " is stale (attempt " +
           std::to_string(j.newest) + " is running)";
  }
  return "";
}

void DataPlane::note_attempt(const std::string& job_id, int attempt) {
  auto& j = jobs_[job_id];
  j.newest = std::max(j.newest, attempt);
}

Result<std::shared_ptr<DataPlane::Slot>> DataPlane::admit(const Hello& hello, Receiver* r) {
  std::lock_guard lk(mu_);
  if (stopping_.load()) return Status::unavailable("data plane is stopping");
  std::string why = refusal(hello.job_id, hello.attempt, /*stale_too=*/true);
  if (!why.empty()) return Status::permission_denied(why);
  note_attempt(hello.job_id, hello.attempt);
  auto& slot = slots_[SlotKey{hello.job_id, hello.attempt, hello.key}];
  if (!slot) slot = std::make_shared<Slot>(key_name(hello.key));
  if (!slot->attach(r->wake())) {
    return Status::failed_precondition("channel " + slot->name + " already has a connection");
  }
  r->admitted = true;
  r->job_id = hello.job_id;
  r->attempt = hello.attempt;
  return slot;
}

std::shared_ptr<Channel> DataPlane::inbound(const std::string& job_id, int attempt,
                                            const ChannelKey& key, size_t capacity) {
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard lk(mu_);
    std::string why = refusal(job_id, attempt, /*stale_too=*/false);
    if (!why.empty()) return broken_channel(key, capacity, why);
    note_attempt(job_id, attempt);
    auto& s = slots_[SlotKey{job_id, attempt, key}];
    if (!s) s = std::make_shared<Slot>(key_name(key));
    slot = s;
  }
  return slot->bind(capacity);
}

std::shared_ptr<Channel> DataPlane::outbound(const std::string& peer_address, const std::string& job_id,
                                             int attempt, const ChannelKey& key, size_t capacity) {
  if (job_id.empty() || job_id.size() > kMaxControlBytes / 2) {
    return broken_channel(key, capacity, "job id of " + std::to_string(job_id.size()) +
                                             " bytes cannot go over the data plane");
  }
  std::lock_guard lk(mu_);
  std::string why = refusal(job_id, attempt, /*stale_too=*/false);
  if (!why.empty()) return broken_channel(key, capacity, why);
  if (stopping_.load()) return broken_channel(key, capacity, "data plane is stopping");
  note_attempt(job_id, attempt);
  auto& s = senders_[SlotKey{job_id, attempt, key}];
  if (!s) {
    s = std::make_shared<Sender>(*transport_, Hello{job_id, attempt, key, port_, {}, {}},
                                 auth::derive_attempt_key(secret_, job_id, attempt), peer_address,
                                 std::make_shared<Channel>(key_name(key), capacity));
    s->start();
  }
  return s->channel();
}

void DataPlane::release(const std::string& job_id, int attempt) {
  std::vector<std::shared_ptr<Slot>> slots;
  std::vector<std::shared_ptr<Sender>> senders;
  std::vector<std::shared_ptr<Receiver>> receivers;
  {
    std::lock_guard lk(mu_);
    JobAttempts& j = jobs_[job_id];
    if (attempt < 0) {
      int top = std::max(j.newest, j.released.empty() ? -1 : *j.released.rbegin());
      j.released_through = std::max(j.released_through, top);
    } else {
      j.released.insert(attempt);
    }
    auto matches = [&](const std::string& job, int a) {
      return job == job_id && (attempt < 0 || a == attempt);
    };
    for (auto it = slots_.begin(); it != slots_.end();) {
      if (matches(it->first.job_id, it->first.attempt)) {
        slots.push_back(std::move(it->second));
        it = slots_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = senders_.begin(); it != senders_.end();) {
      if (matches(it->first.job_id, it->first.attempt)) {
        senders.push_back(std::move(it->second));
        it = senders_.erase(it);
      } else {
        ++it;
      }
    }
    auto it = std::stable_partition(receivers_.begin(), receivers_.end(), [&](const auto& r) {
      return !(r->admitted && matches(r->job_id, r->attempt));
    });
    receivers.assign(std::make_move_iterator(it), std::make_move_iterator(receivers_.end()));
    receivers_.erase(it, receivers_.end());
  }
  // Outside the lock: the threads being joined may need it (admit).
  for (auto& r : receivers) r->stop_and_join();
  for (auto& s : slots) s->close();
  for (auto& s : senders) s->stop_and_join();
}

size_t DataPlane::num_inbound() const {
  std::lock_guard lk(mu_);
  return slots_.size();
}

size_t DataPlane::num_outbound() const {
  std::lock_guard lk(mu_);
  return senders_.size();
}

// --- NetworkChannelProvider ---------------------------------------------------------

NetworkChannelProvider::NetworkChannelProvider(
    std::string job_id, int attempt, size_t capacity, DataPlane& plane,
    std::shared_ptr<const proto::JobGraph> graph,
    std::function<std::string(int vertex, int subtask)> remote_of)
    : job_id_(std::move(job_id)), attempt_(attempt), capacity_(capacity), plane_(plane),
      graph_(std::move(graph)), remote_of_(std::move(remote_of)) {}

namespace {
const proto::JobEdge* find_edge(const proto::JobGraph& g, int id) {
  for (const auto& e : g.edges())
    if (e.id() == id) return &e;
  return nullptr;
}
}  // namespace

std::shared_ptr<Channel> NetworkChannelProvider::output_channel(const ChannelKey& key) {
  const proto::JobEdge* e = find_edge(*graph_, key.edge);
  if (!e) return broken_channel(key, capacity_, "no edge " + std::to_string(key.edge) + " in the job graph");
  std::string remote = remote_of_(e->target_vertex(), key.consumer);
  if (remote.empty()) return local(key);
  return plane_.outbound(remote, job_id_, attempt_, key, capacity_);
}

std::shared_ptr<Channel> NetworkChannelProvider::input_channel(const ChannelKey& key) {
  const proto::JobEdge* e = find_edge(*graph_, key.edge);
  if (!e) return broken_channel(key, capacity_, "no edge " + std::to_string(key.edge) + " in the job graph");
  std::string remote = remote_of_(e->source_vertex(), key.producer);
  if (remote.empty()) return local(key);
  return plane_.inbound(job_id_, attempt_, key, capacity_);
}

std::shared_ptr<Channel> NetworkChannelProvider::local(const ChannelKey& key) {
  std::lock_guard lk(mu_);
  auto& c = local_[key];
  if (!c) c = std::make_shared<Channel>(key_name(key), capacity_);
  return c;
}

void NetworkChannelProvider::close_all() {
  {
    std::lock_guard lk(mu_);
    for (auto& [k, c] : local_) c->close();
  }
  plane_.release(job_id_, attempt_);
}

}  // namespace sluice::runtime
