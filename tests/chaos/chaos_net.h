// The chaos suite's network: one Linux network namespace per taskmanager,
// joined to a bridge in the root namespace by a veth pair, and the faults
// injected into it (iproute2, iptables, tc; needs root).
//
//   root namespace: bridge <host ip>/24 — the jobmanager binds here;
//                   Kafka (dev-kafka) and Postgres stay on 127.0.0.1
//   namespace i:    eth0 <ip(i)>/24, default route via the bridge; its
//                   127.0.0.1:<forwarded port> reaches the root's (DNAT both
//                   ways with route_localnet), so the addresses Kafka's
//                   metadata and the Postgres URI name work unchanged.
//
// Everything is named after this process (several test runs may share a
// machine) and removed by the destructor.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace sluice::chaos {

class ChaosNet {
 public:
  /// `forwarded`: loopback ports of the root namespace reachable from every
  /// namespace at 127.0.0.1. nullptr and `error` (e.g. not root) on failure.
  static std::unique_ptr<ChaosNet> create(int namespaces, const std::vector<int>& forwarded, std::string* error);
  ~ChaosNet();
  ChaosNet(const ChaosNet&) = delete;
  ChaosNet& operator=(const ChaosNet&) = delete;

  const std::string& host_ip() const { return host_ip_; }
  std::string ip(int i) const;
  std::string subnet() const { return prefix_ + "0/24"; }
  /// argv prefix that runs a command inside namespace i.
  std::vector<std::string> exec_in(int i) const;

  // ---- faults (on = inject, off = heal); false if a command failed
  /// Namespace i loses its link: nothing in or out.
  bool isolate(int i, bool on);
  /// Nothing passes between namespaces i and j (either way).
  bool partition(int i, int j, bool on);
  /// Namespace i and the jobmanager (host `jm_port`, and i's control port
  /// `tm_control_port` the jobmanager calls) cannot reach each other; Kafka,
  /// Postgres and the other taskmanagers still can.
  bool partition_from_jobmanager(int i, int jm_port, int tm_control_port, bool on);
  /// Degrades namespace i's link: packet loss and delay with tc netem where
  /// the kernel has it; else random drops (iptables statistic) and a
  /// bandwidth limit (tc tbf). Returns what was applied ("" on failure).
  std::string degrade(int i, bool on);
  /// Whether this kernel has sch_netem.
  bool netem() const { return netem_; }

 private:
  ChaosNet() = default;
  bool run(const std::vector<std::string>& argv, std::string* err = nullptr);
  bool in_ns(int i, std::vector<std::string> argv) { return run(with_ns(i, std::move(argv))); }
  std::vector<std::string> with_ns(int i, std::vector<std::string> argv) const;
  std::string ns_name(int i) const;
  std::string host_veth(int i) const;

  std::string tag_, bridge_, prefix_, host_ip_;
  int count_ = 0;
  bool netem_ = false;
  std::vector<std::vector<std::string>> undo_;  // root-namespace iptables rules to delete, in order
  std::vector<int> forwarded_;
};

}  // namespace sluice::chaos
