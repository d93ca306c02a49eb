// The scorer's model: logistic regression over named features, read from a
// JSON file, and the store that swaps in a new version on reload.
//
//   {"version":"lr-2026-12-01","bias":-4.0,
//    "weights":{"amount_log":0.9,"failed_logins_10m":0.6,"new_device":1.5}}
//
// score = 1 / (1 + exp(-(bias + sum_i weights[i] * features[i]))); a feature
// the model has and the request lacks is 0, a request feature the model
// does not know is ignored (and counted).
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/common/status.h"

namespace sluice::fraud_scorer {

/// Limits of a model file. Defaults in brackets.
struct ModelLimits {
  size_t max_file_bytes = 4u << 20;  ///< [4 MiB]
  size_t max_features = 10'000;      ///< [10 000] weights
  size_t max_name_bytes = 128;       ///< [128] a feature name or the version
};

/// One immutable model version. Shared (shared_ptr) by the store and the
/// requests being scored with it, so a reload never pulls it from under one.
class Model {
 public:
  struct Scored {
    double score = 0;
    size_t unknown = 0;  ///< request features the model does not know
  };

  /// Parses the JSON text of a model file; the error says what to fix.
  static Result<std::shared_ptr<const Model>> parse(std::string_view json, const ModelLimits& limits = {});

  /// Any thread. `features` are (name, value) pairs; values must be finite
  /// (the endpoints check that).
  /// The terms are added in the model's weight order, whatever order the
  /// features come in (a protobuf map's, a JSON object's): the same request
  /// gets the same score, to the last bit, on both endpoints.
  template <class Features>
  Scored score(const Features& features) const {
    Scored s;
    thread_local std::vector<std::pair<size_t, double>> terms;
    terms.clear();
    for (const auto& [name, value] : features) {
      auto it = index_.find(std::string_view(name));
      if (it == index_.end()) ++s.unknown;
      else terms.emplace_back(it->second, weights_[it->second] * value);
    }
    std::sort(terms.begin(), terms.end());
    double z = bias_;
    for (const auto& t : terms) z += t.second;
    s.score = sigmoid(z);
    return s;
  }
  static double sigmoid(double z);

  const std::string& version() const { return version_; }
  double bias() const { return bias_; }
  size_t size() const { return weights_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::string version_;
  double bias_ = 0;
  std::unordered_map<std::string, size_t, Hash, std::equal_to<>> index_;  // name -> position in weights_
  std::vector<double> weights_;
};

/// The current model of a running scorer and the file it comes from.
/// Thread-safe: request threads call current(), the main thread calls
/// reload()/reload_if_changed(). Owned by the process's main object.
class ModelStore {
 public:
  /// Loads `path`; an invalid file is an error (the scorer does not start).
  static Result<std::unique_ptr<ModelStore>> open(std::string path, ModelLimits limits = {});

  std::shared_ptr<const Model> current() const;
  /// Reads the file again. Valid: swapped in. Invalid or unreadable: the
  /// old model keeps serving, the error says why (and is logged).
  Status reload(std::string_view why);
  /// reload() if the file's identity (inode, size, mtime) changed since the
  /// last attempt; OK when unchanged.
  Status reload_if_changed();

  uint64_t reloads() const;
  uint64_t failed_reloads() const;
  const std::string& path() const { return path_; }

 private:
  struct FileId {
    ino_t ino = 0;
    off_t size = -1;
    int64_t mtime_ns = 0;
    bool operator==(const FileId&) const = default;
  };
  ModelStore(std::string path, ModelLimits limits) : path_(std::move(path)), limits_(limits) {}
  Result<std::shared_ptr<const Model>> load(FileId* id) const;
  FileId stat_file() const;

  const std::string path_;
  const ModelLimits limits_;
  mutable std::mutex mu_;  // guards model_, the file id and the counters
  std::shared_ptr<const Model> model_;
  FileId seen_;
  uint64_t reloads_ = 0, failed_ = 0;
};

}  // namespace sluice::fraud_scorer
