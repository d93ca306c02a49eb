// Runs the keyed-state conformance suite on the heap backend.
#include <memory>

#include "state/heap_backend.h"
#include "tests/state/backend_conformance.h"

namespace sluice::state::conformance {
namespace {

std::unique_ptr<KeyedStateBackend> make_heap(const BackendParams& p) {
  return std::make_unique<HeapKeyedStateBackend>(p.range, p.max_parallelism, p.clock);
}

INSTANTIATE_TEST_SUITE_P(Heap, KeyedStateConformance,
                         ::testing::Values(BackendFactory{"Heap", &make_heap}),
                         BackendFactory::Name());

}  // namespace
}  // namespace sluice::state::conformance
