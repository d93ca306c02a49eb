// The network data plane, with two DataPlane instances in one process on
// 127.0.0.1 standing for two taskmanagers: plane `a` runs the producers,
// plane `b` the consumers (unless a test says otherwise).
#include "engine/runtime/data_plane.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/proto/jobgraph.pb.h"
#include "tests/harness/test_pki.h"
#include "tests/runtime/data_plane_buffers.h"
#include "tests/runtime/test_job.h"

namespace sluice::runtime {
namespace {

using namespace std::chrono_literals;

// Generous bound for "this happens promptly"; a test only waits this long
// when the behaviour under test is broken.
constexpr auto kTimeout = 10s;
const std::string kJob = "job-1";
// Every plane of a test shares one cluster secret, as a cluster's
// taskmanagers do. Built into data_plane_tls_test with
// SLUICE_DATA_PLANE_TLS, every test runs again over mutual TLS (one CA and
// certificate for the whole process).
runtime::DataPlaneOptions cluster_options() {
  runtime::DataPlaneOptions o{"test-cluster-secret", {}};
#ifdef SLUICE_DATA_PLANE_TLS
  static const harness::TestPki pki;
  if (!pki.ok) {
    std::fprintf(stderr, "cannot make test certificates: %s\n", pki.error.c_str());
    std::abort();
  }
  o.tls = {pki.cert, pki.key, pki.ca};
#endif
  return o;
}
const runtime::DataPlaneOptions kCluster = cluster_options();

std::string address(const DataPlane& p) { return "127.0.0.1:" + std::to_string(p.port()); }

std::unique_ptr<DataPlane> start_plane() {
  auto r = DataPlane::start("127.0.0.1", 0, kCluster);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? std::move(r).value() : nullptr;
}

using test_buffers::end_of_partition;
using test_buffers::records;

struct Decoded {
  std::vector<std::string> records;
  std::vector<Barrier> barriers;
  bool end_of_partition = false;
};

Decoded decode(const Buffer& b) {
  Decoded d;
  size_t pos = 0;
  frames::Frame f;
  while (pos < b.data.size()) {
    if (!frames::next(b.data, pos, f)) {
      ADD_FAILURE() << "undecodable buffer";
      break;
    }
    if (f.kind == FrameKind::kRecord) d.records.emplace_back(f.payload);
    if (f.kind == FrameKind::kBarrier) d.barriers.push_back(f.barrier);
    if (f.kind == FrameKind::kEndOfPartition) d.end_of_partition = true;
  }
  return d;
}

/// Pops like a task does (signal-driven, no busy loop), with a deadline.
class Reader {
 public:
  explicit Reader(std::shared_ptr<Channel> ch) : ch_(std::move(ch)) { ch_->set_consumer_signal(&signal_); }
  ~Reader() { ch_->set_consumer_signal(nullptr); }
  bool pop(Buffer& out, std::chrono::milliseconds timeout = kTimeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!ch_->try_pop(out)) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      signal_.wait_until(std::min(deadline, std::chrono::steady_clock::now() + 20ms));
    }
    return true;
  }
  Channel& channel() { return *ch_; }

 private:
  std::shared_ptr<Channel> ch_;
  TaskSignal signal_;
};

template <class F>
bool eventually(F&& cond, std::chrono::milliseconds timeout = kTimeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

/// Reads one channel to its end of partition, checking order and content.
void expect_stream(Reader& r, const std::string& tag, int buffers, int per_buffer) {
  int next = 0;
  for (int i = 0; i <= buffers; ++i) {
    Buffer b;
    ASSERT_TRUE(r.pop(b)) << tag << ": buffer " << i << " did not arrive";
    Decoded d = decode(b);
    if (i == buffers) {
      EXPECT_TRUE(d.end_of_partition) << tag;
      break;
    }
    ASSERT_EQ(d.records.size(), static_cast<size_t>(per_buffer)) << tag;
    for (const auto& rec : d.records) ASSERT_EQ(rec, tag + ":" + std::to_string(next++));
  }
  EXPECT_FALSE(r.channel().broken()) << r.channel().failure();
}

TEST(DataPlane, DeliversBuffersInOrderAndIntactAcrossManyChannels) {
  auto a = start_plane(), b = start_plane();
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->port(), b->port());
  constexpr int kProducers = 4, kConsumers = 3, kBuffers = 300, kPerBuffer = 7;
  constexpr size_t kCapacity = 4;
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<Reader>> readers;
  std::vector<std::string> tags;
  for (int p = 0; p < kProducers; ++p) {
    for (int c = 0; c < kConsumers; ++c) {
      ChannelKey key{0, p, c};
      std::string tag = "p" + std::to_string(p) + "c" + std::to_string(c);
      // Half the consumers ask before the producer connects, half after.
      if ((p + c) % 2 == 0) readers.push_back(std::make_unique<Reader>(b->inbound(kJob, 0, key, kCapacity)));
      auto out = a->outbound(address(*b), kJob, 0, key, kCapacity);
      EXPECT_EQ(out, a->outbound(address(*b), kJob, 0, key, kCapacity)) << "same key, same channel";
      if ((p + c) % 2 == 1) readers.push_back(std::make_unique<Reader>(b->inbound(kJob, 0, key, kCapacity)));
      tags.push_back(tag);
      threads.emplace_back([out, tag] {
        for (int i = 0; i < kBuffers; ++i) {
          ASSERT_TRUE(out->push(records(tag, i * kPerBuffer, kPerBuffer), nullptr)) << tag;
        }
        out->push_unbounded(end_of_partition());
      });
    }
  }
  for (size_t i = 0; i < readers.size(); ++i) {
    threads.emplace_back([&, i] { expect_stream(*readers[i], tags[i], kBuffers, kPerBuffer); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(b->num_inbound(), static_cast<size_t>(kProducers * kConsumers));
  // After the end of partition went through, losing the producer is normal.
  a.reset();
  std::this_thread::sleep_for(50ms);
  for (auto& r : readers) EXPECT_FALSE(r->channel().broken()) << r->channel().failure();
}

TEST(DataPlane, InboundRequestedAfterTheConnectionArrivedGetsEverything) {
  auto a = start_plane(), b = start_plane();
  ASSERT_TRUE(a && b);
  ChannelKey key{3, 1, 2};
  auto out = a->outbound(address(*b), kJob, 0, key, 4);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(out->push(records("x", i, 1), nullptr));
  out->push_unbounded(end_of_partition());
  // The connection creates the slot; with no task asking yet, no credit is
  // granted, so everything waits on the producer side.
  ASSERT_TRUE(eventually([&] { return b->num_inbound() == 1; }));
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(out->size(), 5u);
  Reader r(b->inbound(kJob, 0, key, 4));
  expect_stream(r, "x", 4, 1);
}

TEST(DataPlane, ProducerStartedBeforeTheConsumerPlaneRetriesUntilItIsUp) {
  auto a = start_plane();
  ASSERT_TRUE(a);
  // Reserve a free port, then free it: nothing listens there yet.
  int port;
  {
    auto tmp = start_plane();
    ASSERT_TRUE(tmp);
    port = tmp->port();
  }
  ChannelKey key{0, 0, 0};
  auto out = a->outbound("127.0.0.1:" + std::to_string(port), kJob, 0, key, 4);
  ASSERT_TRUE(out->push(records("late", 0, 3), nullptr));
  out->push_unbounded(end_of_partition());
  std::this_thread::sleep_for(100ms);  // a few refused connects
  auto b = DataPlane::start("127.0.0.1", port, kCluster);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  Reader r((*b)->inbound(kJob, 0, key, 4));
  expect_stream(r, "late", 1, 3);
  EXPECT_FALSE(out->broken());
}

TEST(DataPlane, SlowConsumerBlocksItsProducerWhileOtherChannelsFlow) {
  auto a = start_plane(), b = start_plane();
  ASSERT_TRUE(a && b);
  constexpr size_t kCapacity = 4;
  ChannelKey slow_key{0, 0, 0}, fast_key{0, 1, 0};
  auto slow_in = b->inbound(kJob, 0, slow_key, kCapacity);
  auto slow_out = a->outbound(address(*b), kJob, 0, slow_key, kCapacity);
  std::atomic<int> pushed{0};
  CancelFlag cancel{false};
  std::thread slow_producer([&] {
    for (int i = 0; i < 100; ++i) {
      if (!slow_out->push(records("slow", i, 1), &cancel)) return;
      pushed.fetch_add(1);
    }
    slow_out->push_unbounded(end_of_partition());
  });
  // Both ends fill up; then the producer is stuck in push().
  ASSERT_TRUE(eventually([&] { return slow_in->size() == kCapacity && slow_out->size() == kCapacity; }));
  std::this_thread::sleep_for(50ms);  // let the last successful push be counted
  int stuck_at = pushed.load();
  EXPECT_LE(stuck_at, static_cast<int>(2 * kCapacity + 1));

  // Meanwhile another channel between the same two planes keeps flowing.
  auto fast_out = a->outbound(address(*b), kJob, 0, fast_key, kCapacity);
  Reader fast(b->inbound(kJob, 0, fast_key, kCapacity));
  std::thread fast_producer([&] {
    for (int i = 0; i < 500; ++i) ASSERT_TRUE(fast_out->push(records("fast", i, 1), nullptr));
    fast_out->push_unbounded(end_of_partition());
  });
  expect_stream(fast, "fast", 500, 1);
  fast_producer.join();

  EXPECT_EQ(pushed.load(), stuck_at) << "the slow producer must stay blocked";
  EXPECT_LE(slow_in->size(), kCapacity);
  EXPECT_LE(slow_out->size(), kCapacity);

  // The consumer catches up: credit flows again and the producer finishes.
  Reader slow(slow_in);
  expect_stream(slow, "slow", 100, 1);
  slow_producer.join();
  EXPECT_EQ(pushed.load(), 100);
}

TEST(DataPlane, ReceivedBarriersAreAnnouncedForUnalignedCheckpoints) {
  auto a = start_plane(), b = start_plane();
  ASSERT_TRUE(a && b);
  ChannelKey key{0, 0, 0};
  auto in = b->inbound(kJob, 0, key, 4);
  auto out = a->outbound(address(*b), kJob, 0, key, 4);
  Buffer buf = records("r", 0, 2);
  Barrier barrier{CheckpointId(42), 1000};
  barrier.set(BarrierFlag::kUnaligned);
  frames::append_barrier(buf.data, barrier);
  ASSERT_TRUE(out->push(std::move(buf), nullptr));
  ASSERT_TRUE(eventually([&] { return in->announced_barrier() == 42; }));
  Reader r(in);
  Buffer got;
  ASSERT_TRUE(r.pop(got));
  Decoded d = decode(got);
  EXPECT_EQ(d.records.size(), 2u);
  ASSERT_EQ(d.barriers.size(), 1u);
  EXPECT_EQ(d.barriers[0].id, CheckpointId(42));
}

TEST(DataPlane, ReleasingTheProducerBeforeEndOfPartitionBreaksTheInbound) {
  auto a = start_plane(), b = start_plane();
  ASSERT_TRUE(a && b);
  ChannelKey key{0, 0, 0};
  Reader r(b->inbound(kJob, 0, key, 4));
  auto out = a->outbound(address(*b), kJob, 0, key, 4);
  ASSERT_TRUE(out->push(records("r", 0, 1), nullptr));
  Buffer got;
  ASSERT_TRUE(r.pop(got));
  a->release(kJob, 0);
  EXPECT_FALSE(out->push(records("r", 1, 1), nullptr)) << "a released outbound channel is closed";
  ASSERT_TRUE(eventually([&] { return r.channel().broken(); }));
  std::string why = r.channel().failure();
  EXPECT_NE(why.find("127.0.0.1:" + std::to_string(a->port())), std::string::npos) << why;
  EXPECT_NE(why.find("before end of partition"), std::string::npos) << why;
}

TEST(DataPlane, DestroyingTheProducerPlaneBreaksTheInboundEvenBeforeTheTaskAsked) {
  auto a = start_plane(), b = start_plane();
  ASSERT_TRUE(a && b);
  ChannelKey key{0, 0, 0};
  auto out = a->outbound(address(*b), kJob, 0, key, 4);
  ASSERT_TRUE(out->push(records("r", 0, 1), nullptr));
  ASSERT_TRUE(eventually([&] { return b->num_inbound() == 1; }));
  a.reset();
  std::this_thread::sleep_for(50ms);  // the receiver notices the lost connection
  auto in = b->inbound(kJob, 0, key, 4);
  ASSERT_TRUE(eventually([&] { return in->broken(); }));
  EXPECT_NE(in->failure().find("lost"), std::string::npos) << in->failure();
}

TEST(DataPlane, ConsumerGoingAwayFailsTheProducersChannel) {
  auto a = start_plane(), b = start_plane();
  ASSERT_TRUE(a && b);
  ChannelKey key{0, 0, 0};
  auto in = b->inbound(kJob, 0, key, 2);
  auto out = a->outbound(address(*b), kJob, 0, key, 2);
  std::atomic<bool> push_failed{false};
  std::thread producer([&] {
    for (int i = 0; i < 1000; ++i) {
      if (!out->push(records("r", i, 1), nullptr)) {
        push_failed = true;
        return;
      }
    }
  });
  ASSERT_TRUE(eventually([&] { return in->size() == 2; }));  // producer now blocked on credit
  b.reset();
  producer.join();  // the blocked push returns false
  EXPECT_TRUE(push_failed.load());
  ASSERT_TRUE(out->broken());
  EXPECT_NE(out->failure().find("consumer at"), std::string::npos) << out->failure();
}

TEST(DataPlane, ReleasedAttemptsAreRefused) {
  auto a = start_plane(), b = start_plane();
  ASSERT_TRUE(a && b);
  ChannelKey key{0, 0, 0};
  {
    auto in = b->inbound(kJob, 0, key, 4);
    b->release(kJob, 0);
    EXPECT_TRUE(in->closed());
    EXPECT_EQ(b->num_inbound(), 0u);
  }
  // A late producer of the released attempt is refused, not left retrying.
  auto out = a->outbound(address(*b), kJob, 0, key, 4);
  ASSERT_TRUE(eventually([&] { return out->broken(); }));
  EXPECT_NE(out->failure().find("refused"), std::string::npos) << out->failure();
  EXPECT_NE(out->failure().find("released"), std::string::npos) << out->failure();
  EXPECT_EQ(b->num_inbound(), 0u) << "a refused connection creates nothing";
  // The consuming side of a released attempt gets a broken channel too.
  EXPECT_TRUE(b->inbound(kJob, 0, key, 4)->broken());

  // The next attempt of the same job is welcome.
  auto out1 = a->outbound(address(*b), kJob, 1, key, 4);
  Reader r1(b->inbound(kJob, 1, key, 4));
  ASSERT_TRUE(out1->push(records("one", 0, 1), nullptr));
  out1->push_unbounded(end_of_partition());
  expect_stream(r1, "one", 1, 1);

  // An older attempt still retrying is stale once a newer one is running.
  auto newer = b->inbound("job-3", 2, key, 4);
  auto stale = a->outbound(address(*b), "job-3", 1, key, 4);
  ASSERT_TRUE(eventually([&] { return stale->broken(); }));
  EXPECT_NE(stale->failure().find("stale"), std::string::npos) << stale->failure();
  // Refusals of old attempts are part of a restart, not a reason to fail the job for good.
  EXPECT_FALSE(is_permanent_error(stale->failure_status("output channel")));
  EXPECT_FALSE(is_permanent_error(out->failure_status("output channel")));

  // attempt -1 releases every attempt seen so far.
  b->release(kJob, -1);
  auto out2 = a->outbound(address(*b), kJob, 1, ChannelKey{2, 0, 0}, 4);
  ASSERT_TRUE(eventually([&] { return out2->broken(); }));
  EXPECT_NE(out2->failure().find("released"), std::string::npos) << out2->failure();
  // Other jobs are not affected.
  auto other = a->outbound(address(*b), "job-2", 0, key, 4);
  Reader r2(b->inbound("job-2", 0, key, 4));
  ASSERT_TRUE(other->push(records("j2", 0, 1), nullptr));
  other->push_unbounded(end_of_partition());
  expect_stream(r2, "j2", 1, 1);
}

TEST(DataPlane, GarbageFromTheNetworkDropsOnlyThatConnection) {
  auto a = start_plane(), b = start_plane();
  ASSERT_TRUE(a && b);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(b->port()));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL), static_cast<ssize_t>(junk.size()));
  // The plane's challenge, then the close.
  char buf[256];
  ssize_t n;
  size_t got = 0;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got += static_cast<size_t>(n);
  EXPECT_EQ(n, 0) << "the plane closes the connection";
  EXPECT_LT(got, sizeof buf) << "and says no more than its challenge";
  ::close(fd);
  // The plane still works.
  ChannelKey key{0, 0, 0};
  auto out = a->outbound(address(*b), kJob, 0, key, 4);
  Reader r(b->inbound(kJob, 0, key, 4));
  ASSERT_TRUE(out->push(records("ok", 0, 2), nullptr));
  out->push_unbounded(end_of_partition());
  expect_stream(r, "ok", 1, 2);
}

// ---- NetworkChannelProvider --------------------------------------------------

/// source (vertex 10, parallelism 2) --rebalance edge 7--> sink (vertex 20,
/// parallelism 2); subtask i of both vertices runs on taskmanager i. A
/// dead-letter edge comes first so that edge ids do not match positions.
std::shared_ptr<proto::JobGraph> two_vertex_graph() {
  auto g = std::make_shared<proto::JobGraph>();
  g->set_name("two-vertex");
  auto* src = g->add_vertices();
  src->set_id(10);
  src->set_parallelism(2);
  src->set_is_source(true);
  auto* sink = g->add_vertices();
  sink->set_id(20);
  sink->set_parallelism(2);
  auto* dlq = g->add_edges();
  dlq->set_id(3);
  dlq->set_source_vertex(20);
  dlq->set_target_vertex(10);
  dlq->set_dead_letter(true);
  auto* e = g->add_edges();
  e->set_id(7);
  e->set_source_vertex(10);
  e->set_target_vertex(20);
  e->set_partitioner(proto::PARTITIONER_REBALANCE);
  return g;
}

TEST(NetworkChannelProvider, RoutesLocalAndRemoteChannels) {
  auto tm0 = start_plane(), tm1 = start_plane();
  ASSERT_TRUE(tm0 && tm1);
  auto graph = two_vertex_graph();
  std::vector<std::string> where_calls;
  auto placement = [&](int self) {
    return [&, self](int vertex, int subtask) -> std::string {
      EXPECT_TRUE(vertex == 10 || vertex == 20) << vertex;
      if (subtask == self) return "";
      return address(subtask == 0 ? *tm0 : *tm1);
    };
  };
  NetworkChannelProvider p0(kJob, 0, 4, *tm0, graph, placement(0));
  NetworkChannelProvider p1(kJob, 0, 4, *tm1, graph, placement(1));

  // 0 -> 0 and 1 -> 1 stay in memory: producer and consumer share one Channel.
  auto local0 = p0.output_channel({7, 0, 0});
  EXPECT_EQ(local0, p0.input_channel({7, 0, 0}));
  EXPECT_EQ(p1.output_channel({7, 1, 1}), p1.input_channel({7, 1, 1}));
  EXPECT_EQ(tm0->num_outbound() + tm1->num_outbound(), 0u);

  // 0 -> 1 and 1 -> 0 cross the network.
  auto out01 = p0.output_channel({7, 0, 1});
  auto in01 = p1.input_channel({7, 0, 1});
  auto out10 = p1.output_channel({7, 1, 0});
  auto in10 = p0.input_channel({7, 1, 0});
  EXPECT_NE(out01, in01);
  EXPECT_EQ(tm0->num_outbound(), 1u);
  EXPECT_EQ(tm1->num_outbound(), 1u);
  EXPECT_EQ(tm0->num_inbound(), 1u);
  EXPECT_EQ(tm1->num_inbound(), 1u);
  ASSERT_TRUE(out01->push(records("01", 0, 3), nullptr));
  out01->push_unbounded(end_of_partition());
  ASSERT_TRUE(out10->push(records("10", 0, 2), nullptr));
  out10->push_unbounded(end_of_partition());
  Reader r01(in01), r10(in10);
  expect_stream(r01, "01", 1, 3);
  expect_stream(r10, "10", 1, 2);

  // The dead-letter edge 3 runs sink -> source: looked up by id, not position.
  auto dl = p0.output_channel({3, 0, 1});
  EXPECT_EQ(tm0->num_outbound(), 2u);
  EXPECT_FALSE(dl->broken());
  // An edge the graph does not have yields a broken channel, not a hang.
  auto bad = p0.input_channel({99, 0, 0});
  EXPECT_TRUE(bad->broken());
  EXPECT_NE(bad->failure().find("no edge 99"), std::string::npos);

  p0.close_all();
  EXPECT_TRUE(local0->closed());
  EXPECT_EQ(tm0->num_outbound(), 0u);
  EXPECT_EQ(tm0->num_inbound(), 0u);
  p1.close_all();
}

}  // namespace
}  // namespace sluice::runtime

// ---- whole jobs on two "taskmanagers" ----------------------------------------

namespace sluice::rt_test {
namespace {

using runtime::TaskState;
using runtime::eventually;

/// Real Tasks of one job attempt spread over two DataPlanes in this
/// process: `tm_of(vertex, subtask)` says which plane's process runs it.
class TwoTaskmanagers final : public runtime::TaskListener {
 public:
  /// `tm1_plane`: taskmanager 1's data-plane settings (default: the cluster's).
  TwoTaskmanagers(std::function<void(api::StreamExecutionEnvironment&)> build, int parallelism,
                  std::function<int(const proto::JobVertex&, int subtask)> tm_of,
                  const runtime::DataPlaneOptions& tm1_plane = runtime::kCluster)
      : tm_of_(std::move(tm_of)) {
    for (auto& p : planes_) {
      auto r = runtime::DataPlane::start("127.0.0.1", 0, &p == &planes_[1] ? tm1_plane : runtime::kCluster);
      EXPECT_TRUE(r.is_ok()) << r.status().to_string();
      p = std::move(r).value();
    }
    auto graph = std::make_unique<runtime::StreamGraph>();
    graph->job_name = "net";
    {
      api::StreamExecutionEnvironment env(*graph);
      build(env);
    }
    graph::JobGraphOptions go;
    go.default_parallelism = parallelism;
    auto jg = graph::build_job_graph(*graph, go);
    EXPECT_TRUE(jg.is_ok()) << jg.status().to_string();
    auto job = std::make_shared<runtime::JobInstance>();
    job->job_id = "net-job";
    job->config = graph->config;
    job->graph = std::shared_ptr<const runtime::StreamGraph>(std::move(graph));
    job->job_graph = std::make_shared<const proto::JobGraph>(std::move(jg).value());
    job_ = job;
    for (int tm = 0; tm < 2; ++tm) {
      providers_[tm] = std::make_unique<runtime::NetworkChannelProvider>(
          job_->job_id, 0, 4, *planes_[tm], job_->job_graph, [this, tm](int vertex, int subtask) {
            int where = tm_of_(*vertex_of(vertex), subtask);
            return where == tm ? std::string() : "127.0.0.1:" + std::to_string(planes_[where]->port());
          });
    }
    runtime::TaskServices services;
    services.clock = &SystemClock::instance();
    services.listener = this;
    for (const auto& v : job_->job_graph->vertices()) {
      for (int s = 0; s < v.parallelism(); ++s) {
        int tm = tm_of_(v, s);
        tasks_.push_back(std::make_unique<runtime::Task>(runtime::TaskId{job_->job_id, v.id(), s, 0}, job_,
                                                         *providers_[tm], services, runtime::TaskOptions{}));
        tm_of_task_.push_back(tm);
      }
    }
  }
  ~TwoTaskmanagers() override {
    for (auto& t : tasks_) t->cancel();
    for (auto& p : providers_)
      if (p) p->close_all();
    tasks_.clear();  // joins
  }

  void start() {
    for (auto& t : tasks_) t->start();
  }
  int port(int tm) const { return planes_[tm]->port(); }
  runtime::DataPlane& plane(int tm) { return *planes_[tm]; }
  size_t num_tasks(int tm) const { return std::count(tm_of_task_.begin(), tm_of_task_.end(), tm); }

  /// Taskmanager `tm` dies: its connections drop, then its tasks stop.
  void kill(int tm) {
    providers_[tm]->close_all();
    for (size_t i = 0; i < tasks_.size(); ++i)
      if (tm_of_task_[i] == tm) tasks_[i]->cancel();
  }

  /// Waits until every task of `tm` (-1: all) has ended; returns their end states.
  std::vector<std::pair<TaskState, Status>> wait_ended(int tm, std::chrono::milliseconds timeout = kWait) {
    std::vector<std::pair<TaskState, Status>> out;
    std::unique_lock lk(mu_);
    bool all = cv_.wait_for(lk, timeout, [&] {
      for (size_t i = 0; i < tasks_.size(); ++i)
        if ((tm < 0 || tm_of_task_[i] == tm) && !ended_.count(tasks_[i]->id().to_string())) return false;
      return true;
    });
    EXPECT_TRUE(all) << "tasks did not end in time";
    for (size_t i = 0; i < tasks_.size(); ++i) {
      if (tm >= 0 && tm_of_task_[i] != tm) continue;
      auto it = ended_.find(tasks_[i]->id().to_string());
      if (it != ended_.end()) out.push_back(it->second);
    }
    return out;
  }

  void on_task_state(const runtime::TaskId& id, TaskState state, const Status& cause) override {
    if (state == TaskState::kCreated || state == TaskState::kRunning) return;
    {
      std::lock_guard lk(mu_);
      ended_[id.to_string()] = {state, cause};
    }
    cv_.notify_all();
  }

 private:
  const proto::JobVertex* vertex_of(int id) const {
    for (const auto& v : job_->job_graph->vertices())
      if (v.id() == id) return &v;
    ADD_FAILURE() << "no vertex " << id;
    return &job_->job_graph->vertices(0);
  }

  std::function<int(const proto::JobVertex&, int)> tm_of_;
  std::unique_ptr<runtime::DataPlane> planes_[2];
  std::shared_ptr<const runtime::JobInstance> job_;
  std::unique_ptr<runtime::NetworkChannelProvider> providers_[2];
  std::vector<std::unique_ptr<runtime::Task>> tasks_;
  std::vector<int> tm_of_task_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::pair<TaskState, Status>> ended_;
};

std::vector<Event> numbered(int n) {
  std::vector<Event> out;
  for (int i = 0; i < n; ++i) out.push_back(Event{"k" + std::to_string(i % 7), 1'000 + i, i});
  return out;
}

/// Endless records keyed by the emitting subtask ("s0", "s1").
std::shared_ptr<ScriptedSource<Event>> endless() {
  return std::make_shared<ScriptedSource<Event>>([](ReaderCtx& c) {
    return Step<Event>::record(Event{"s" + std::to_string(c.subtask), 1'000 + c.seq, c.seq});
  });
}

size_t count_key(const Collected<Event>& out, const std::string& key) {
  size_t n = 0;
  for (const auto& i : out.items()) n += i.value.key == key;
  return n;
}

TEST(DataPlaneJob, RebalancedJobAcrossTwoTaskmanagersDeliversEveryRecordOnce) {
  auto events = numbered(5000);
  auto out = std::make_shared<Collected<Event>>();
  TwoTaskmanagers cluster(
      [&](api::StreamExecutionEnvironment& env) {
        env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), event_time(), "events")
            .rebalance()
            .map([](const Event& e) { return e; }, "identity")
            .sink_to(collect_into(out));
      },
      2, [](const proto::JobVertex&, int subtask) { return subtask % 2; });
  EXPECT_GT(cluster.plane(0).num_outbound(), 0u);
  EXPECT_GT(cluster.plane(1).num_outbound(), 0u);
  cluster.start();
  for (const auto& [state, cause] : cluster.wait_ended(-1)) {
    EXPECT_EQ(state, TaskState::kFinished) << cause.to_string();
  }
  auto got = out->values();
  std::sort(got.begin(), got.end());
  std::sort(events.begin(), events.end());
  EXPECT_EQ(got, events);
}

TEST(DataPlaneJob, ConsumerTaskFailsNamingTheProducerWhoseTaskmanagerDied) {
  auto out = std::make_shared<Collected<Event>>();
  // Taskmanager 1 runs only sink subtask 1; both sources are on taskmanager 0.
  TwoTaskmanagers cluster(
      [&](api::StreamExecutionEnvironment& env) {
        env.from_source<Event>(endless(), event_time(), "endless").rebalance().sink_to(collect_into(out));
      },
      2, [](const proto::JobVertex& v, int subtask) { return !v.is_source() && subtask == 1 ? 1 : 0; });
  ASSERT_EQ(cluster.num_tasks(1), 1u);
  cluster.start();
  ASSERT_TRUE(eventually([&] {
    for (const auto& i : out->items())
      if (i.subtask == 1) return true;
    return false;
  }));
  cluster.kill(0);
  auto ended = cluster.wait_ended(1);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].first, TaskState::kFailed);
  const std::string& why = ended[0].second.message();
  EXPECT_EQ(ended[0].second.code(), StatusCode::kUnavailable) << ended[0].second.to_string();
  EXPECT_NE(why.find("127.0.0.1:" + std::to_string(cluster.port(0))), std::string::npos) << why;
  EXPECT_NE(why.find("before end of partition"), std::string::npos) << why;
}

TEST(DataPlaneJob, ProducerTaskFailsWhenItsConsumersTaskmanagerDied) {
  auto out = std::make_shared<Collected<Event>>();
  // Taskmanager 1 runs only source subtask 1; both sinks are on taskmanager 0.
  TwoTaskmanagers cluster(
      [&](api::StreamExecutionEnvironment& env) {
        env.from_source<Event>(endless(), event_time(), "endless").rebalance().sink_to(collect_into(out));
      },
      2, [](const proto::JobVertex& v, int subtask) { return v.is_source() && subtask == 1 ? 1 : 0; });
  ASSERT_EQ(cluster.num_tasks(1), 1u);
  cluster.start();
  ASSERT_TRUE(eventually([&] { return count_key(*out, "s1") > 100; }));
  cluster.kill(0);
  auto ended = cluster.wait_ended(1);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].first, TaskState::kFailed);
  const std::string& why = ended[0].second.message();
  EXPECT_NE(why.find("output channel"), std::string::npos) << why;
  EXPECT_NE(why.find("consumer at 127.0.0.1:" + std::to_string(cluster.port(0))), std::string::npos) << why;
  EXPECT_FALSE(is_permanent_error(ended[0].second)) << "a lost peer restarts the job: " << ended[0].second.to_string();
}

#ifdef SLUICE_DATA_PLANE_TLS
// A taskmanager without TLS in a TLS cluster: its producing task fails at
// once with a permanent error (the jobmanager fails the job instead of
// restarting it until the restart policy gives up), naming the consumer's
// data-plane address (the jobmanager adds whose it is) and the fix.
TEST(DataPlaneJob, ProducerTaskFailsPermanentlyOnATlsMismatch) {
  auto out = std::make_shared<Collected<Event>>();
  // Taskmanager 1 (plaintext) runs only source subtask 1; both sinks are on taskmanager 0 (TLS).
  TwoTaskmanagers cluster(
      [&](api::StreamExecutionEnvironment& env) {
        env.from_source<Event>(endless(), event_time(), "endless").rebalance().sink_to(collect_into(out));
      },
      2, [](const proto::JobVertex& v, int subtask) { return v.is_source() && subtask == 1 ? 1 : 0; },
      runtime::DataPlaneOptions{runtime::kCluster.secret, {}});
  cluster.start();
  auto ended = cluster.wait_ended(1);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].first, TaskState::kFailed);
  const Status& cause = ended[0].second;
  EXPECT_TRUE(is_permanent_error(cause)) << cause.to_string();
  EXPECT_NE(cause.message().find("output channel"), std::string::npos) << cause.message();
  EXPECT_NE(cause.message().find("TLS mismatch: "), std::string::npos) << cause.message();
  EXPECT_NE(cause.message().find("127.0.0.1:" + std::to_string(cluster.port(0))), std::string::npos) << cause.message();
  EXPECT_NE(cause.message().find("same TLS settings"), std::string::npos) << "says what to fix: " << cause.message();
  EXPECT_EQ(count_key(*out, "s1"), 0u);
}
#endif

}  // namespace
}  // namespace sluice::rt_test
