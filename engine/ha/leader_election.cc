#include "engine/ha/leader_election.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <cctype>

#include "engine/common/json.h"

namespace sluice::ha {

namespace {

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool valid_host_port(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size() || s.size() > 255) return false;
  for (size_t i = colon + 1; i < s.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  for (size_t i = 0; i < colon; ++i) {
    char c = s[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' && c != '[' && c != ']' &&
        c != ':')
      return false;
  }
  return true;
}

}  // namespace

Result<HaConfig> HaConfig::parse(const std::string& uri) {
  const std::string usage = "'" + uri + "' is not etcd://HOST:PORT[,HOST:PORT...]/CLUSTER (--ha, --jobmanager)";
  if (!is_ha_uri(uri)) return Status::invalid_argument(usage);
  std::string rest = uri.substr(7);
  HaConfig c;
  auto slash = rest.find('/');
  std::string hosts = rest.substr(0, slash);
  c.cluster = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (c.cluster.empty()) c.cluster = "default";
  if (c.cluster.size() > 64) return Status::invalid_argument(usage + ": the cluster name is longer than 64");
  for (char ch : c.cluster) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') {
      return Status::invalid_argument(usage + ": the cluster name may hold letters, digits, - and _");
    }
  }
  size_t start = 0;
  while (start <= hosts.size()) {
    auto comma = hosts.find(',', start);
    std::string h = hosts.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!valid_host_port(h)) return Status::invalid_argument(usage);
    c.endpoints.push_back("http://" + h);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (c.endpoints.empty()) return Status::invalid_argument(usage);
  return c;
}

std::string LeaderInfo::to_json() const {
  std::string o = "{\"address\":";
  json_append_string(o, address);
  o += ",\"http\":";
  json_append_string(o, http);
  return o + "}";
}

Result<LeaderInfo> LeaderInfo::from_key(const EtcdKeyValue& kv) {
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(kv.value).get(doc) != simdjson::SUCCESS) {
    return Status::corruption("the leader key " + kv.key + " does not hold a jobmanager's JSON");
  }
  LeaderInfo l;
  std::string_view a, h;
  if (doc["address"].get(a) != simdjson::SUCCESS || !valid_host_port(std::string(a))) {
    return Status::corruption("the leader key " + kv.key + " holds no address");
  }
  l.address = std::string(a);
  if (doc["http"].get(h) == simdjson::SUCCESS) l.http = std::string(h);
  l.epoch = kv.create_revision;
  return l;
}

Result<LeaderInfo> lookup_leader(const HaConfig& config) {
  EtcdClient etcd(config.endpoints);
  SLUICE_ASSIGN_OR_RETURN(auto kv, etcd.get(config.leader_key()));
  if (!kv) return Status::unavailable("no jobmanager leads cluster '" + config.cluster + "' (etcd " +
                                      config.endpoints.front() + "): none running, or an election under way");
  return LeaderInfo::from_key(*kv);
}

// ------------------------------------------------------------- LeaderElection

LeaderElection::LeaderElection(HaConfig config, LeaderInfo self)
    : config_(std::move(config)), self_(std::move(self)), etcd_(config_.endpoints) {}

LeaderElection::~LeaderElection() { resign(); }

void LeaderElection::start(std::function<void(int64_t)> on_elected, std::function<void(const std::string&)> on_lost) {
  on_elected_ = std::move(on_elected);
  on_lost_ = std::move(on_lost);
  thread_ = std::thread([this] { run(); });
}

void LeaderElection::resign() {
  int64_t lease = 0;
  bool leading = false;
  {
    std::lock_guard lk(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    lease = lease_;
    leading = leading_;
    leading_ = false;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (lease != 0) {
    Status st = etcd_.revoke_lease(lease);
    if (leading) {
      if (st.is_ok()) {
        spdlog::info("resigned the leadership of cluster '{}' (epoch {})", config_.cluster, epoch_.load());
      } else {
        spdlog::warn("could not revoke the leader lease ({}); a standby takes over when it expires", st.to_string());
      }
    }
  }
}

std::optional<LeaderInfo> LeaderElection::current_leader() const {
  std::lock_guard lk(mu_);
  if (leading_) return self_;
  return other_;
}

bool LeaderElection::is_leader() const {
  std::lock_guard lk(mu_);
  return leading_ && steady_ms() < valid_until_ms_;
}

void LeaderElection::lose(const std::string& why) {
  {
    std::lock_guard lk(mu_);
    if (!leading_) return;
    leading_ = false;
    stopping_ = true;
  }
  spdlog::error("lost the leadership of cluster '{}' (epoch {}): {}", config_.cluster, epoch_.load(), why);
  if (on_lost_) on_lost_(why);
}

bool LeaderElection::campaign() {
  const int64_t ttl_s = std::max<int64_t>(1, (config_.lease_ttl.count() + 999) / 1000);
  int64_t lease;
  {
    std::lock_guard lk(mu_);
    lease = lease_;
  }
  // A standby keeps its lease alive too, so that its campaign is one
  // transaction when the leader key goes. Leadership is proven from the
  // moment the renewal (or grant) was sent.
  int64_t renewed = steady_ms();
  if (lease != 0) {
    auto ttl = etcd_.keep_alive(lease);
    if (!ttl.is_ok() || *ttl <= 0) lease = 0;
  }
  if (lease == 0) {
    renewed = steady_ms();
    auto granted = etcd_.grant_lease(ttl_s);
    {
      std::lock_guard lk(mu_);
      lease_ = granted.is_ok() ? *granted : 0;
    }
    if (!granted.is_ok()) {
      spdlog::debug("etcd: {}", granted.status().to_string());
      return false;
    }
    lease = *granted;
  }
  auto r = etcd_.create(config_.leader_key(), self_.to_json(), lease);
  if (!r.is_ok()) {
    spdlog::debug("etcd: {}", r.status().to_string());
    return false;
  }
  if (!r->first) {  // someone else leads
    auto l = LeaderInfo::from_key(r->second);
    std::lock_guard lk(mu_);
    if (l.is_ok()) other_ = *l;
    return false;
  }
  epoch_.store(r->second.create_revision);
  {
    std::lock_guard lk(mu_);
    leading_ = true;
    valid_until_ms_ = renewed + ttl_s * 1000;
  }
  spdlog::info("elected leader of cluster '{}' with epoch {}", config_.cluster, epoch_.load());
  if (on_elected_) on_elected_(epoch_.load());
  return true;
}

void LeaderElection::run() {
  const int64_t ttl_s = std::max<int64_t>(1, (config_.lease_ttl.count() + 999) / 1000);
  // Four renewals per TTL: leadership survives three lost in a row.
  const Duration renew(std::max<int64_t>(100, config_.lease_ttl.count() / 4));
  bool announced_standby = false;
  for (;;) {
    bool leading;
    {
      std::unique_lock lk(mu_);
      if (stopping_) return;
      leading = leading_;
    }
    if (!leading) {
      if (campaign()) continue;
      if (!announced_standby) {
        auto cur = etcd_.get(config_.leader_key());
        if (cur.is_ok() && *cur) {
          auto l = LeaderInfo::from_key(**cur);
          if (l.is_ok()) spdlog::info("standby: jobmanager {} leads cluster '{}' (epoch {})", l->address,
                                      config_.cluster, l->epoch);
          announced_standby = true;
        }
      }
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, config_.poll, [&] { return stopping_; });
      continue;
    }
    // Leading: renew the lease; leadership holds until the TTL after the
    // last renewal that etcd confirmed was sent.
    int64_t lease, until;
    {
      std::lock_guard lk(mu_);
      lease = lease_;
      until = valid_until_ms_;
    }
    const int64_t sent = steady_ms();
    auto ttl = etcd_.keep_alive(lease);
    if (ttl.is_ok() && *ttl > 0) {
      // Also check the key is still ours (a revoked-and-recreated key would not be).
      auto cur = etcd_.get(config_.leader_key());
      if (cur.is_ok() && (!*cur || (*cur)->create_revision != epoch_.load())) {
        lose("the leader key now belongs to another jobmanager");
        return;
      }
      std::lock_guard lk(mu_);
      valid_until_ms_ = sent + std::min<int64_t>(*ttl, ttl_s) * 1000;
      until = valid_until_ms_;
    } else if (ttl.is_ok()) {
      lose("the leader lease expired");
      return;
    } else if (steady_ms() >= until) {
      lose("etcd unreachable for longer than the lease TTL: " + ttl.status().to_string());
      return;
    }
    std::unique_lock lk(mu_);
    auto wait = std::min<int64_t>(renew.count(), std::max<int64_t>(0, until - steady_ms()));
    cv_.wait_for(lk, Duration(wait), [&] { return stopping_; });
    if (!stopping_ && steady_ms() >= valid_until_ms_) {
      lk.unlock();
      lose("the leader lease could not be renewed within its TTL");
      return;
    }
  }
}

Status LeaderElection::put_as_leader(const std::string& key, const std::string& value) {
  if (!is_leader()) return Status::failed_precondition("this jobmanager no longer leads");
  SLUICE_ASSIGN_OR_RETURN(bool ok, etcd_.put_if(config_.leader_key(), epoch_.load(), key, value));
  if (!ok) {
    lose("a fenced write found another leader");
    return Status::failed_precondition("this jobmanager no longer leads (epoch " + std::to_string(epoch_.load()) + ")");
  }
  return Status::ok();
}

Result<std::optional<std::string>> LeaderElection::get(const std::string& key) {
  SLUICE_ASSIGN_OR_RETURN(auto kv, etcd_.get(key));
  if (!kv) return std::optional<std::string>();
  return std::optional<std::string>(kv->value);
}

// ------------------------------------------------------------- LeaderRetriever

LeaderRetriever::LeaderRetriever(HaConfig config) : config_(std::move(config)), etcd_(config_.endpoints) {}

LeaderRetriever::~LeaderRetriever() { stop(); }

void LeaderRetriever::start() { thread_ = std::thread([this] { run(); }); }

void LeaderRetriever::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<LeaderInfo> LeaderRetriever::leader() const {
  std::lock_guard lk(mu_);
  return leader_;
}

std::optional<LeaderInfo> LeaderRetriever::wait_for_leader(Duration timeout) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return stopping_ || leader_.has_value(); });
  return leader_;
}

void LeaderRetriever::run() {
  for (;;) {
    std::optional<LeaderInfo> seen;
    std::string error;
    auto kv = etcd_.get(config_.leader_key());
    if (!kv.is_ok()) {
      error = kv.status().to_string();
    } else if (*kv) {
      auto l = LeaderInfo::from_key(**kv);
      if (l.is_ok()) seen = *l;
      else error = l.status().to_string();
    }
    {
      std::unique_lock lk(mu_);
      if (seen != leader_) {
        if (seen) spdlog::info("jobmanager {} leads cluster '{}' (epoch {})", seen->address, config_.cluster, seen->epoch);
        else spdlog::warn("no jobmanager leads cluster '{}'{}", config_.cluster, error.empty() ? "" : ": " + error);
      } else if (!error.empty() && error != last_error_) {
        spdlog::warn("leader lookup: {}", error);
      }
      last_error_ = error;
      leader_ = seen;
      cv_.notify_all();
      cv_.wait_for(lk, config_.poll, [&] { return stopping_; });
      if (stopping_) return;
    }
  }
}

}  // namespace sluice::ha
