// The conformance suite's fixture (backend_conformance.h): backends built
// by the parameter's factory, keys, snapshots and restores.
#include "tests/state/backend_conformance.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "state/checkpoint_storage.h"

namespace sluice::state::conformance {

KeyedStateBackend& KeyedStateConformance::make_backend(KeyGroupRange range,
                                                       int32_t max_parallelism) {
  BackendParams params;
  params.range = range;
  params.max_parallelism = max_parallelism;
  params.clock = &clock_;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  params.instance_name = std::string(info->test_suite_name()) + "." + info->name() + "." +
                         std::to_string(next_instance_++);
  std::replace(params.instance_name.begin(), params.instance_name.end(), '/', '_');
  auto b = GetParam().make(params);
  EXPECT_NE(b, nullptr);
  EXPECT_EQ(b->key_group_range(), range);
  EXPECT_EQ(b->max_parallelism(), max_parallelism);
  backends_.push_back(std::move(b));
  return *backends_.back();
}

void KeyedStateConformance::use_key(KeyedStateBackend& b, const std::string& key) {
  std::string bytes = serialize(key);
  b.set_current_key(bytes, key_group_for_key(bytes, b.max_parallelism()));
}

void KeyedStateConformance::use_key(KeyedStateBackend& b, int64_t key) {
  std::string bytes = serialize(key);
  b.set_current_key(bytes, key_group_for_key(bytes, b.max_parallelism()));
}

std::vector<std::string> KeyedStateConformance::keys_in_range(KeyGroupRange range,
                                                              int32_t max_parallelism, size_t n) {
  std::vector<std::string> out;
  for (int i = 0; out.size() < n; ++i) {
    std::string k = "key-" + std::to_string(i);
    if (range.contains(key_group_for_key(serialize(k), max_parallelism))) out.push_back(k);
  }
  return out;
}

std::pair<std::string, std::string> KeyedStateConformance::keys_sharing_a_group(int32_t m) {
  std::map<int32_t, std::string> seen;
  for (int i = 0;; ++i) {
    std::string k = "user-" + std::to_string(i);
    int32_t kg = key_group_for_key(serialize(k), m).value();
    auto [it, fresh] = seen.emplace(kg, k);
    if (!fresh) return {it->second, k};
  }
}

std::pair<std::string, std::string> KeyedStateConformance::keys_in_different_groups(int32_t m) {
  std::string a = "alice";
  int32_t kg = key_group_for_key(serialize(a), m).value();
  for (int i = 0;; ++i) {
    std::string k = "bob-" + std::to_string(i);
    if (key_group_for_key(serialize(k), m).value() != kg) return {a, k};
  }
}

std::string KeyedStateConformance::ns(const std::string& name) { return serialize(name); }

KeyedStateConformance::~KeyedStateConformance() {
  backends_.clear();  // before their snapshots' directory goes
  if (!checkpoint_dir_.empty()) (void)remove_tree(checkpoint_dir_);
}

const std::string& KeyedStateConformance::checkpoint_dir() {
  if (checkpoint_dir_.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/sluice-conformance-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    checkpoint_dir_ = tmpl;
  }
  return checkpoint_dir_;
}

KeyedStateHandle KeyedStateConformance::snapshot(KeyedStateBackend& b, int64_t id) {
  CheckpointStorage storage(checkpoint_dir(), "job");
  auto part = b.snapshot(CheckpointId(id),
                         storage.target(id, false, "op-" + std::to_string(next_snapshot_++)));
  EXPECT_TRUE(part.is_ok()) << part.status().to_string();
  if (!part.is_ok()) return {};
  auto handle = (*part)();
  EXPECT_TRUE(handle.is_ok()) << handle.status().to_string();
  if (!handle.is_ok()) return {};
  b.notify_checkpoint_complete(CheckpointId(id));
  return *handle;
}

KeyedStateBackend& KeyedStateConformance::restore(const std::vector<KeyedStateHandle>& handles,
                                                  KeyGroupRange range) {
  KeyedStateBackend& b = make_backend(range);
  CheckpointStorage storage(checkpoint_dir(), "job");
  Status st = b.restore(handles, storage.job_dir());
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return b;
}

}  // namespace sluice::state::conformance
