#include "state/backend_factory.h"

#include "state/heap_backend.h"
#include "state/rocksdb_backend.h"

namespace sluice::state {

Result<std::unique_ptr<KeyedStateBackend>> create_keyed_backend(const Configuration& job_config,
                                                                 const BackendSpec& spec,
                                                                 BackendKind default_kind) {
  BackendKind kind = default_kind;
  if (auto v = job_config.get("state.backend")) {
    SLUICE_ASSIGN_OR_RETURN(kind, parse_backend_kind(*v));
  }
  switch (kind) {
    case BackendKind::kHeap:
      return std::unique_ptr<KeyedStateBackend>(
          std::make_unique<HeapKeyedStateBackend>(spec.range, spec.max_parallelism, spec.clock));
    case BackendKind::kRocksDB: {
      SLUICE_ASSIGN_OR_RETURN(RocksDBOptions options, RocksDBOptions::from_config(job_config));
      SLUICE_ASSIGN_OR_RETURN(auto backend, RocksDBKeyedStateBackend::create(spec, options));
      return std::unique_ptr<KeyedStateBackend>(std::move(backend));
    }
  }
  return Status::internal("unknown state backend kind");
}

}  // namespace sluice::state
