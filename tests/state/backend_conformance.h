// Conformance suite for keyed-state backends.
//
// Every KeyedStateBackend implementation must pass the same tests: they
// use only the public state API (state_factory.h get_*_state, handles,
// set_current_key) so the test bodies never know which backend runs.
// A backend joins the suite with one instantiation, e.g.
//
//   INSTANTIATE_TEST_SUITE_P(RocksDB, KeyedStateConformance,
//                            ::testing::Values(BackendFactory{"RocksDB", make_rocksdb}),
//                            BackendFactory::Name());
//
// (see heap_conformance_test.cc). The suite: backend_conformance_test.cc
// (value, list, map, reducing, aggregating state) and
// backend_conformance_ttl_test.cc (TTL); the fixture: backend_conformance.cc.
// Backend-specific tests (snapshot formats, files) belong in files of their
// own.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/clock.h"
#include "state/key_groups.h"
#include "state/keyed_state_backend.h"
#include "state/snapshot.h"
#include "state/state_factory.h"

namespace sluice::state::conformance {

/// What a factory gets to build one backend.
struct BackendParams {
  KeyGroupRange range;
  int32_t max_parallelism = kDefaultMaxParallelism;
  const Clock* clock = nullptr;
  /// Unique within the test binary run, for backends that need a working
  /// directory of their own.
  std::string instance_name;
};

/// One backend implementation under test. `make` may be called several
/// times per test (backends with different key-group ranges); whatever a
/// backend needs (e.g. a temporary directory) it must own and release.
struct BackendFactory {
  std::string name;
  std::function<std::unique_ptr<KeyedStateBackend>(const BackendParams&)> make;

  /// Test-name generator for INSTANTIATE_TEST_SUITE_P.
  struct Name {
    std::string operator()(const ::testing::TestParamInfo<BackendFactory>& info) const {
      return info.param.name;
    }
  };
};

inline void PrintTo(const BackendFactory& f, std::ostream* os) { *os << f.name; }

/// Fixture: a ManualClock, backends built by the parameter's factory and a
/// checkpoint directory (created on first use, removed after the test).
class KeyedStateConformance : public ::testing::TestWithParam<BackendFactory> {
 protected:
  ~KeyedStateConformance() override;

  static constexpr int64_t kStartMs = 1'700'000'000'000;

  /// A backend over `range` of `max_parallelism` key groups (default: all
  /// 128 groups), owned by the fixture.
  KeyedStateBackend& make_backend(KeyGroupRange range = {0, kDefaultMaxParallelism - 1},
                                  int32_t max_parallelism = kDefaultMaxParallelism);

  /// Selects `key` (serialized with Serde) and its key group on `b`.
  static void use_key(KeyedStateBackend& b, const std::string& key);
  static void use_key(KeyedStateBackend& b, int64_t key);

  /// `n` distinct string keys whose key groups lie in `range`.
  static std::vector<std::string> keys_in_range(KeyGroupRange range, int32_t max_parallelism,
                                                size_t n);
  /// Two distinct string keys that fall into the same key group.
  static std::pair<std::string, std::string> keys_sharing_a_group(int32_t max_parallelism);
  /// Two string keys in different key groups.
  static std::pair<std::string, std::string> keys_in_different_groups(int32_t max_parallelism);

  /// A serialized namespace, as operators pass them (e.g. a window).
  static std::string ns(const std::string& name);

  /// Both parts of a checkpoint `id` of `b` into the fixture's checkpoint
  /// directory; fails the test on error.
  KeyedStateHandle snapshot(KeyedStateBackend& b, int64_t id);
  /// A new backend over `range` restored from `handles` (before any state
  /// is registered, as operators do).
  KeyedStateBackend& restore(const std::vector<KeyedStateHandle>& handles,
                             KeyGroupRange range = {0, kDefaultMaxParallelism - 1});

  ManualClock clock_{kStartMs};

 private:
  const std::string& checkpoint_dir();

  std::vector<std::unique_ptr<KeyedStateBackend>> backends_;
  int next_instance_ = 0;
  int next_snapshot_ = 0;
  std::string checkpoint_dir_;
};

// Descriptors the suite's files share.

/// Average of int64 inputs: accumulator (sum, count).
class AvgFn final : public AggregateFunction<int64_t, std::pair<int64_t, int64_t>, double> {
 public:
  std::pair<int64_t, int64_t> create_accumulator() const override { return {0, 0}; }
  void add(std::pair<int64_t, int64_t>& acc, const int64_t& v) const override {
    acc.first += v;
    acc.second += 1;
  }
  double get_result(const std::pair<int64_t, int64_t>& acc) const override {
    return acc.second == 0 ? 0.0 : static_cast<double>(acc.first) / static_cast<double>(acc.second);
  }
  void merge(std::pair<int64_t, int64_t>& into,
             const std::pair<int64_t, int64_t>& other) const override {
    into.first += other.first;
    into.second += other.second;
  }
};

inline AggregatingStateDescriptor<int64_t, std::pair<int64_t, int64_t>, double> avg_desc(
    std::string name, StateTtl ttl = {}) {
  return {std::move(name), std::make_shared<const AvgFn>(), ttl};
}

inline ReducingStateDescriptor<int64_t> sum_desc(std::string name, StateTtl ttl = {}) {
  return {std::move(name), [](const int64_t& a, const int64_t& b) { return a + b; }, ttl};
}

}  // namespace sluice::state::conformance
