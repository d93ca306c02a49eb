// What the heap and RocksDB map-state implementations share: how user keys
// become the bytes both backends store and order by (Serde for MapState,
// any key type, the format existing map state has on disk; OrderedCodec for
// OrderedMapState), and the rule against changing a map while it is being
// iterated. Internal to the map state implementations.
#pragma once

#include <string>
#include <string_view>

#include "engine/common/serde.h"
#include "state/keyed_state.h"
#include "state/ordered_codec.h"

namespace sluice::state {

/// How a map state turns its user keys into the bytes it stores: Serde
/// (MapState, any key type) or OrderedCodec (OrderedMapState).
template <class K>
struct SerdeKeyCodec {
  static void encode(std::string& out, const K& k) {
    ByteWriter w(out);
    Serde<K>::write(w, k);
  }
  static bool decode(std::string_view bytes, K& k) {
    ByteReader r(bytes);
    return Serde<K>::read(r, k) && r.empty();
  }
};
template <class K>
struct OrderedKeyCodec {
  static void encode(std::string& out, const K& k) { ordered_encode(out, k); }
  static bool decode(std::string_view bytes, K& k) { return ordered_decode(bytes, k); }
};

/// Throws StateUsageError if `open_cursors` iterations of map state `name`
/// are open (`op` names the refused change).
inline void throw_if_iterating(int open_cursors, const std::string& name, const char* op) {
  if (open_cursors == 0) return;
  throw StateUsageError("map state '" + name + "': " + op +
                        " while an iteration over the state is open; collect the changes and "
                        "apply them after the loop");
}

}  // namespace sluice::state
