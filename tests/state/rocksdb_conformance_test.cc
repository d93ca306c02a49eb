// Runs the keyed-state conformance suite on the RocksDB backend.
#include <unistd.h>

#include <memory>

#include "state/rocksdb_backend.h"
#include "tests/state/backend_conformance.h"

namespace sluice::state::conformance {
namespace {

std::unique_ptr<KeyedStateBackend> make_rocksdb(const BackendParams& p) {
  BackendSpec spec;
  spec.range = p.range;
  spec.max_parallelism = p.max_parallelism;
  spec.clock = p.clock;
  spec.instance_name = p.instance_name;
  RocksDBOptions options;
  const char* tmp = std::getenv("TMPDIR");
  options.local_dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/sluice-rocksdb-test";
  options.memory_bytes = 64LL << 20;
  auto b = RocksDBKeyedStateBackend::create(spec, options);
  EXPECT_TRUE(b.is_ok()) << b.status().to_string();
  if (!b.is_ok()) return nullptr;
  return std::move(*b);
}

INSTANTIATE_TEST_SUITE_P(RocksDB, KeyedStateConformance,
                         ::testing::Values(BackendFactory{"RocksDB", &make_rocksdb}),
                         BackendFactory::Name());

}  // namespace
}  // namespace sluice::state::conformance
