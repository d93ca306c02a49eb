#include "jobs/fraud/scorer/model.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <sstream>

namespace sluice::fraud_scorer {

namespace {

std::string json_error(const char* what, simdjson::error_code e) {
  return std::string(what) + " (" + simdjson::error_message(e) + ")";
}

}  // namespace

double Model::sigmoid(double z) {
  // Stable on both tails: exp() of a large positive argument is never taken.
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

Result<std::shared_ptr<const Model>> Model::parse(std::string_view json, const ModelLimits& limits) {
  if (json.size() > limits.max_file_bytes) {
    return Status::invalid_argument("model file is " + std::to_string(json.size()) + " bytes, more than the limit of " +
                                    std::to_string(limits.max_file_bytes));
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto e = parser.parse(json.data(), json.size()).get(doc)) return Status::invalid_argument(json_error("model is not JSON", e));
  simdjson::dom::object root;
  if (auto e = doc.get_object().get(root)) return Status::invalid_argument(json_error("model is not a JSON object", e));
  auto m = std::make_shared<Model>();
  std::string_view version;
  if (auto e = root["version"].get_string().get(version)) {
    return Status::invalid_argument(json_error("model: \"version\" must be a string", e));
  }
  if (version.empty() || version.size() > limits.max_name_bytes) {
    return Status::invalid_argument("model: \"version\" must have 1 to " + std::to_string(limits.max_name_bytes) + " characters");
  }
  m->version_ = std::string(version);
  if (auto e = root["bias"].get_double().get(m->bias_)) return Status::invalid_argument(json_error("model: \"bias\" must be a number", e));
  simdjson::dom::object weights;
  if (auto e = root["weights"].get_object().get(weights)) {
    return Status::invalid_argument(json_error("model: \"weights\" must be an object", e));
  }
  if (weights.size() > limits.max_features) {
    return Status::invalid_argument("model: more than " + std::to_string(limits.max_features) + " weights");
  }
  for (auto [name, value] : weights) {
    if (name.empty() || name.size() > limits.max_name_bytes) {
      return Status::invalid_argument("model: weight names must have 1 to " + std::to_string(limits.max_name_bytes) + " characters");
    }
    double x = 0;
    if (auto e = value.get_double().get(x)) {
      return Status::invalid_argument(json_error(("model: weight \"" + std::string(name) + "\" must be a number").c_str(), e));
    }
    if (!m->index_.emplace(std::string(name), m->weights_.size()).second) {
      return Status::invalid_argument("model: weight \"" + std::string(name) + "\" is given twice");
    }
    m->weights_.push_back(x);
  }
  // Other keys (a description, training metadata) are ignored. simdjson
  // refuses NaN and infinities, so every number here is finite.
  return std::shared_ptr<const Model>(std::move(m));
}

// --- store -----------------------------------------------------------------------

Result<std::unique_ptr<ModelStore>> ModelStore::open(std::string path, ModelLimits limits) {
  std::unique_ptr<ModelStore> s(new ModelStore(std::move(path), limits));
  FileId id;
  SLUICE_ASSIGN_OR_RETURN(s->model_, s->load(&id));
  s->seen_ = id;
  spdlog::info("scorer: model {} from {} ({} weights)", s->model_->version(), s->path_, s->model_->size());
  return s;
}

ModelStore::FileId ModelStore::stat_file() const {
  struct stat st {};
  FileId id;
  if (::stat(path_.c_str(), &st) != 0) return id;
  id.ino = st.st_ino;
  id.size = st.st_size;
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return id;
}

Result<std::shared_ptr<const Model>> ModelStore::load(FileId* id) const {
  *id = stat_file();
  if (id->size < 0) return Status::not_found("cannot read model file '" + path_ + "'");
  if (static_cast<size_t>(id->size) > limits_.max_file_bytes) {
    return Status::invalid_argument("model file '" + path_ + "' is " + std::to_string(id->size) +
                                    " bytes, more than the limit of " + std::to_string(limits_.max_file_bytes));
  }
  std::ifstream in(path_, std::ios::binary);
  if (!in) return Status::not_found("cannot read model file '" + path_ + "'");
  std::string text;
  text.resize(limits_.max_file_bytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  auto m = Model::parse(text, limits_);
  if (!m.is_ok()) return m.status().with_context("model file '" + path_ + "'");
  return m;
}

std::shared_ptr<const Model> ModelStore::current() const {
  std::lock_guard lk(mu_);
  return model_;
}

Status ModelStore::reload(std::string_view why) {
  FileId id;
  auto m = load(&id);
  std::lock_guard lk(mu_);
  seen_ = id;
  if (!m.is_ok()) {
    ++failed_;
    spdlog::error("scorer: reload ({}) failed, model {} keeps serving: {}", why, model_->version(), m.status().message());
    return m.status();
  }
  ++reloads_;
  spdlog::info("scorer: reload ({}): model {} -> {} ({} weights)", why, model_->version(), (*m)->version(), (*m)->size());
  model_ = std::move(m).value();
  return Status::ok();
}

Status ModelStore::reload_if_changed() {
  FileId id = stat_file();
  {
    std::lock_guard lk(mu_);
    if (id == seen_) return Status::ok();
  }
  return reload("file changed");
}

uint64_t ModelStore::reloads() const {
  std::lock_guard lk(mu_);
  return reloads_;
}

uint64_t ModelStore::failed_reloads() const {
  std::lock_guard lk(mu_);
  return failed_;
}

}  // namespace sluice::fraud_scorer
