// Standby jobmanagers: leader election, leader retrieval and the leader's
// fenced writes, in etcd.
//
// - Election: every jobmanager of a cluster campaigns for the key
//   /sluice/<cluster>/leader by creating it (a transaction: only if absent)
//   bound to a lease of --ha-lease-ttl it keeps alive. The creator leads;
//   the others poll until the key is gone (the leader resigned, or its
//   lease expired because it died or lost etcd) and campaign again.
// - Epoch: the key's creation revision. etcd revisions only grow, so every
//   new leader has a higher epoch than all before it. The leader signs it
//   into its calls to taskmanagers, which refuse lower ones: a deposed
//   leader that has not noticed yet cannot deploy, cancel or commit.
// - The leader proves its leadership to itself too: it stops acting as
//   leader when its lease was not renewed within the TTL (measured from
//   when the last successful renewal was sent), before etcd can elect
//   another one.
// - Fenced writes: the pointer to a job's latest completed checkpoint is
//   written in a transaction that succeeds only while the leader key is
//   the one this process created (put_as_leader).
// - Retrieval: taskmanagers and clients read the key to find the leader's
//   address (and epoch).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"
#include "engine/ha/etcd_client.h"

namespace sluice::ha {

/// Where a cluster's coordination lives: `etcd://host:port[,host:port...]/<cluster>`.
struct HaConfig {
  std::vector<std::string> endpoints;  // http://host:port
  std::string cluster;                 // [A-Za-z0-9_-], default "default"
  /// The leader's lease. Default 3 s: a dead leader is replaced within it
  /// plus one poll.
  Duration lease_ttl{3000};
  /// How often standbys and followers read the leader key. Default 250 ms.
  Duration poll{250};

  /// Parses `etcd://h:p,h:p/cluster`; false with no error if `uri` is not etcd://.
  static bool is_ha_uri(const std::string& uri) { return uri.rfind("etcd://", 0) == 0; }
  static Result<HaConfig> parse(const std::string& uri);

  std::string prefix() const { return "/sluice/" + cluster + "/"; }
  std::string leader_key() const { return prefix() + "leader"; }
  std::string checkpoint_key(const std::string& job_id) const { return prefix() + "jobs/" + job_id + "/checkpoint"; }
};

/// Who leads: the leader's gRPC and HTTP addresses and its epoch.
struct LeaderInfo {
  std::string address;  // gRPC host:port
  std::string http;     // HTTP status host:port (may be empty)
  int64_t epoch = 0;    // the leader key's creation revision
  bool operator==(const LeaderInfo&) const = default;
  std::string to_json() const;
  static Result<LeaderInfo> from_key(const EtcdKeyValue& kv);
};

/// The current leader, read once (the CLI).
Result<LeaderInfo> lookup_leader(const HaConfig& config);

/// One jobmanager's candidacy. start() once; on_elected runs (on the
/// election's thread) when it wins, with the epoch; on_lost when it can no
/// longer prove its leadership — it never leads again in this process (the
/// jobmanager stops; a supervisor starts it again as a standby). Thread-safe.
class LeaderElection {
 public:
  LeaderElection(HaConfig config, LeaderInfo self);
  ~LeaderElection();
  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  void start(std::function<void(int64_t epoch)> on_elected, std::function<void(const std::string& why)> on_lost);
  /// Stops campaigning; a leader revokes its lease so a standby takes over
  /// at once (clean shutdown).
  void resign();

  /// True while this process leads and its lease is provably alive.
  bool is_leader() const;
  int64_t epoch() const { return epoch_.load(); }
  /// Who leads, as this candidate last saw it (no etcd call): itself while
  /// leading, else the leader its last campaign found.
  std::optional<LeaderInfo> current_leader() const;
  /// Writes `key` = `value` only while this process still leads.
  Status put_as_leader(const std::string& key, const std::string& value);
  Result<std::optional<std::string>> get(const std::string& key);
  const HaConfig& config() const { return config_; }

 private:
  void run();
  /// One campaign attempt: true if this process now leads.
  bool campaign();
  void lose(const std::string& why);

  const HaConfig config_;
  const LeaderInfo self_;
  EtcdClient etcd_;
  std::function<void(int64_t)> on_elected_;
  std::function<void(const std::string&)> on_lost_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool leading_ = false;
  int64_t lease_ = 0;
  int64_t valid_until_ms_ = 0;  // steady: leadership is proven until then
  std::optional<LeaderInfo> other_;  // the leader the last lost campaign found
  std::atomic<int64_t> epoch_{0};
  std::thread thread_;
};

/// Follows the leader key for taskmanagers: polls it on a thread of its own
/// and keeps the latest answer. Thread-safe; stop() or the destructor joins.
class LeaderRetriever {
 public:
  explicit LeaderRetriever(HaConfig config);
  ~LeaderRetriever();
  LeaderRetriever(const LeaderRetriever&) = delete;
  LeaderRetriever& operator=(const LeaderRetriever&) = delete;

  void start();
  void stop();
  /// The leader last seen; nullopt while there is none (or etcd is unreachable).
  std::optional<LeaderInfo> leader() const;
  /// Waits (bounded) for the next poll; tests and start-up.
  std::optional<LeaderInfo> wait_for_leader(Duration timeout);

 private:
  void run();
  const HaConfig config_;
  EtcdClient etcd_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::optional<LeaderInfo> leader_;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace sluice::ha
