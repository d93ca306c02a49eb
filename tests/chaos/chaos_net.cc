#include "tests/chaos/chaos_net.h"

#include <unistd.h>

#include <chrono>

#include "tests/integration/process.h"

namespace sluice::chaos {

namespace {
constexpr const char* kIp = "/usr/sbin/ip";
constexpr const char* kIptables = "/usr/sbin/iptables";
constexpr const char* kTc = "/usr/sbin/tc";
constexpr const char* kSysctl = "/usr/sbin/sysctl";
}  // namespace

bool ChaosNet::run(const std::vector<std::string>& argv, std::string* err) {
  auto r = it::run_command(argv, std::chrono::seconds(20));
  if (r.exit_code != 0 && err) {
    for (const auto& a : argv) *err += a + " ";
    *err += ": " + r.err;
  }
  return r.exit_code == 0;
}

std::string ChaosNet::ns_name(int i) const { return "sluice-chaos-" + tag_ + "-tm" + std::to_string(i); }
std::string ChaosNet::host_veth(int i) const { return "sc" + tag_ + "h" + std::to_string(i); }
std::string ChaosNet::ip(int i) const { return prefix_ + std::to_string(10 + i); }

std::vector<std::string> ChaosNet::with_ns(int i, std::vector<std::string> argv) const {
  std::vector<std::string> out = {kIp, "netns", "exec", ns_name(i)};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

std::vector<std::string> ChaosNet::exec_in(int i) const { return {kIp, "netns", "exec", ns_name(i)}; }

std::unique_ptr<ChaosNet> ChaosNet::create(int namespaces, const std::vector<int>& forwarded, std::string* error) {
  if (::geteuid() != 0) {
    *error = "the chaos suite needs root (network namespaces, iptables, tc)";
    return nullptr;
  }
  std::unique_ptr<ChaosNet> n(new ChaosNet());
  const int pid = static_cast<int>(::getpid());
  n->tag_ = std::to_string(pid % 100000);
  n->bridge_ = "sc" + n->tag_ + "br";
  n->forwarded_ = forwarded;
  // A /24 no route of this machine uses yet.
  auto routes = it::run_command({kIp, "-4", "route", "show"}, std::chrono::seconds(5)).out;
  for (int k = 0; k < 200 && n->prefix_.empty(); ++k) {
    int b = 200 + (pid + k) % 50, c = (pid / 50 + 7 * k) % 250 + 1;
    std::string p = "10." + std::to_string(b) + "." + std::to_string(c) + ".";
    if (routes.find(p) == std::string::npos) n->prefix_ = p;
  }
  n->host_ip_ = n->prefix_ + "1";
  std::string err;
  auto& net = *n;
  bool ok = net.run({kIp, "link", "add", net.bridge_, "type", "bridge"}, &err) &&
            net.run({kIp, "addr", "add", net.host_ip_ + "/24", "dev", net.bridge_}, &err) &&
            net.run({kIp, "link", "set", net.bridge_, "up"}, &err) &&
            net.run({kSysctl, "-qw", "net.ipv4.conf." + net.bridge_ + ".route_localnet=1"}, &err);
  // Bridged traffic between namespaces may pass the host's FORWARD chain
  // (br_netfilter); a host firewall (e.g. Docker's) must not drop it.
  if (ok) {
    std::vector<std::string> fwd = {kIptables, "-I", "FORWARD", "-i", net.bridge_, "-o", net.bridge_, "-j", "ACCEPT"};
    ok = net.run(fwd, &err);
    if (ok) net.undo_.push_back({kIptables, "-D", "FORWARD", "-i", net.bridge_, "-o", net.bridge_, "-j", "ACCEPT"});
  }
  for (int port : forwarded) {
    if (!ok) break;
    std::vector<std::string> rule = {"PREROUTING", "-i", net.bridge_, "-d", net.host_ip_, "-p", "tcp", "--dport",
                                     std::to_string(port), "-j", "DNAT", "--to-destination",
                                     "127.0.0.1:" + std::to_string(port)};
    std::vector<std::string> add = {kIptables, "-t", "nat", "-A"}, del = {kIptables, "-t", "nat", "-D"};
    add.insert(add.end(), rule.begin(), rule.end());
    del.insert(del.end(), rule.begin(), rule.end());
    ok = net.run(add, &err);
    if (ok) net.undo_.push_back(del);
  }
  for (int i = 0; i < namespaces && ok; ++i) {
    const std::string ns = net.ns_name(i), hv = net.host_veth(i), cv = "sc" + net.tag_ + "c" + std::to_string(i);
    ok = net.run({kIp, "netns", "add", ns}, &err);
    if (!ok) break;
    net.count_ = i + 1;
    ok = net.run({kIp, "link", "add", hv, "type", "veth", "peer", "name", cv}, &err) &&
         net.run({kIp, "link", "set", cv, "netns", ns}, &err) &&
         net.run({kIp, "link", "set", hv, "master", net.bridge_}, &err) &&
         net.run({kIp, "link", "set", hv, "up"}, &err) &&
         net.run({kIp, "-n", ns, "link", "set", cv, "name", "eth0"}, &err) &&
         net.run({kIp, "-n", ns, "addr", "add", net.ip(i) + "/24", "dev", "eth0"}, &err) &&
         net.run({kIp, "-n", ns, "link", "set", "eth0", "up"}, &err) &&
         net.run({kIp, "-n", ns, "link", "set", "lo", "up"}, &err) &&
         net.run({kIp, "-n", ns, "route", "add", "default", "via", net.host_ip_}, &err) &&
         net.run(net.with_ns(i, {kSysctl, "-qw", "net.ipv4.conf.all.route_localnet=1"}), &err) &&
         net.run(net.with_ns(i, {kIptables, "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-s", "127.0.0.1", "-j",
                                 "SNAT", "--to-source", net.ip(i)}),
                 &err);
    for (int port : forwarded) {
      if (!ok) break;
      ok = net.run(net.with_ns(i, {kIptables, "-t", "nat", "-A", "OUTPUT", "-d", "127.0.0.1", "-p", "tcp", "--dport",
                                   std::to_string(port), "-j", "DNAT", "--to-destination",
                                   net.host_ip_ + ":" + std::to_string(port)}),
                   &err);
    }
  }
  if (!ok) {
    *error = "setting up the chaos network failed: " + err;
    return nullptr;
  }
  // Does this kernel have netem? (Debian's does; some VM kernels do not.)
  net.netem_ = net.in_ns(0, {kTc, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms"});
  if (net.netem_) net.in_ns(0, {kTc, "qdisc", "del", "dev", "eth0", "root"});
  return n;
}

ChaosNet::~ChaosNet() {
  for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) run(*it);
  for (int i = 0; i < count_; ++i) {
    run({kIp, "link", "del", host_veth(i)});
    run({kIp, "netns", "del", ns_name(i)});
  }
  if (!bridge_.empty()) run({kIp, "link", "del", bridge_});
}

bool ChaosNet::isolate(int i, bool on) { return run({kIp, "link", "set", host_veth(i), on ? "down" : "up"}); }

bool ChaosNet::partition(int i, int j, bool on) {
  const char* op = on ? "-I" : "-D";
  return in_ns(i, {kIptables, op, "INPUT", "-s", ip(j), "-j", "DROP"}) &&
         in_ns(i, {kIptables, op, "OUTPUT", "-d", ip(j), "-j", "DROP"});
}

bool ChaosNet::partition_from_jobmanager(int i, int jm_port, int tm_control_port, bool on) {
  const char* op = on ? "-I" : "-D";
  return in_ns(i, {kIptables, op, "OUTPUT", "-d", host_ip_, "-p", "tcp", "--dport", std::to_string(jm_port), "-j",
                   "DROP"}) &&
         in_ns(i, {kIptables, op, "INPUT", "-s", host_ip_, "-p", "tcp", "--dport", std::to_string(tm_control_port),
                   "-j", "DROP"});
}

std::string ChaosNet::degrade(int i, bool on) {
  if (netem_) {
    if (!on) return in_ns(i, {kTc, "qdisc", "del", "dev", "eth0", "root"}) ? "healed" : "";
    return in_ns(i, {kTc, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "40ms", "20ms", "loss", "5%"})
               ? "netem delay 40ms±20ms, loss 5%"
               : "";
  }
  const char* op = on ? "-I" : "-D";
  bool ok = in_ns(i, {kIptables, op, "INPUT", "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j",
                      "DROP"}) &&
            in_ns(i, {kIptables, op, "OUTPUT", "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j",
                      "DROP"});
  ok = ok && (on ? in_ns(i, {kTc, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "4mbit", "burst", "32kb",
                             "latency", "200ms"})
                 : in_ns(i, {kTc, "qdisc", "del", "dev", "eth0", "root"}));
  if (!ok) return "";
  return on ? "loss 5% each way (iptables statistic) and 4 Mbit/s (tc tbf); no sch_netem in this kernel for delay"
            : "healed";
}

}  // namespace sluice::chaos
