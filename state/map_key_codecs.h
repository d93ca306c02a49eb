// How map states turn user keys into the bytes both backends store and
// order by: Serde for MapState (any key type; the format existing map state
// has on disk), OrderedCodec for OrderedMapState. Internal to the map state
// implementations.
#pragma once

#include <string>
#include <string_view>

#include "engine/common/serde.h"
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

}  // namespace sluice::state
