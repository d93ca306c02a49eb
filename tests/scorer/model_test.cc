// The scorer's model: the math against an independent reference on seeded
// random models and requests, the file format's refusals, and reloads.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "jobs/fraud/scorer/model.h"
#include "tests/integration/support.h"

namespace sluice::fraud_scorer {
namespace {

// The reference: the textbook formula in long double, features looked up by
// a linear scan of the model's weights.
long double reference_score(double bias, const std::vector<std::pair<std::string, double>>& weights,
                            const std::vector<std::pair<std::string, double>>& features) {
  long double z = bias;
  for (const auto& [name, x] : features) {
    for (const auto& [w_name, w] : weights) {
      if (w_name == name) z += static_cast<long double>(w) * x;
    }
  }
  return 1.0L / (1.0L + std::exp(-z));
}

std::string model_json(const std::string& version, double bias, const std::vector<std::pair<std::string, double>>& w) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", bias);
  std::string s = "{\"version\":\"" + version + "\",\"bias\":" + buf + ",\"weights\":{";
  for (size_t i = 0; i < w.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%.17g", w[i].second);
    s += (i ? "," : "") + ("\"" + w[i].first + "\":") + buf;
  }
  return s + "}}";
}

TEST(ScorerModel, ScoresMatchAReferenceOnSeededRandomModelsAndRequests) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay: set it here)");
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> coef(-3, 3), value(-2, 5);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::pair<std::string, double>> weights;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) weights.emplace_back("f" + std::to_string(i), coef(rng));
    const double bias = coef(rng);
    auto m = Model::parse(model_json("v" + std::to_string(round), bias, weights));
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    std::vector<std::pair<std::string, double>> features;
    size_t unknown = 0;
    for (int i = 0; i < 15; ++i) {
      if (rng() % 3 == 0) continue;  // missing: 0
      features.emplace_back("f" + std::to_string(i), value(rng));
      unknown += i >= n ? 1 : 0;
    }
    auto got = (*m)->score(features);
    const long double want = reference_score(bias, weights, features);
    EXPECT_NEAR(got.score, static_cast<double>(want), 1e-12) << "round " << round;
    EXPECT_EQ(got.unknown, unknown) << "round " << round;
  }
}

TEST(ScorerModel, TheIssueExampleScoresAsComputedByHand) {
  auto m = Model::parse(R"({"version":"lr-2026-12-01","bias":-4.0,"weights":{"amount_log":0.9,"failed_logins_10m":0.6,
                           "new_device":1.5,"api_errors_5m":0.3,"country_change":1.2}})");
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  // z = -4 + 0.9*3 + 1.5*1 = 0.2; unknown "zzz" ignored, the rest missing (0).
  std::map<std::string, double> f{{"amount_log", 3}, {"new_device", 1}, {"zzz", 100}};
  auto s = (*m)->score(f);
  EXPECT_NEAR(s.score, 1 / (1 + std::exp(-0.2)), 1e-15);
  EXPECT_EQ(s.unknown, 1u);
  EXPECT_EQ((*m)->version(), "lr-2026-12-01");
}

TEST(ScorerModel, ExtremeInputsGiveZeroOrOneNeverNaN) {
  auto m = Model::parse(R"({"version":"x","bias":0,"weights":{"a":1e300}})");
  ASSERT_TRUE(m.is_ok());
  std::map<std::string, double> hi{{"a", 1e300}}, lo{{"a", -1e300}};
  EXPECT_EQ((*m)->score(hi).score, 1.0);
  EXPECT_EQ((*m)->score(lo).score, 0.0);
}

TEST(ScorerModel, InvalidFilesAreRefusedSayingWhy) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not JSON"},
      {"[1,2]", "not a JSON object"},
      {R"({"bias":1,"weights":{}})", "version"},
      {R"({"version":"","bias":1,"weights":{}})", "version"},
      {R"({"version":"v","weights":{}})", "bias"},
      {R"({"version":"v","bias":"high","weights":{}})", "bias"},
      {R"({"version":"v","bias":1})", "weights"},
      {R"({"version":"v","bias":1,"weights":{"a":"x"}})", "weight \"a\""},
      {R"({"version":"v","bias":1,"weights":{"a":1,"a":2}})", "given twice"},
      {R"({"version":"v","bias":1,"weights":{"a":1}} {})", "not JSON"},
      {R"({"version":"v","bias":1,"weights":{"a":1e999}})", "not JSON"},
  };
  for (const auto& [text, why] : cases) {
    auto m = Model::parse(text);
    ASSERT_FALSE(m.is_ok()) << text;
    EXPECT_NE(m.status().message().find(why), std::string::npos) << text << " -> " << m.status().message();
  }
  ModelLimits small;
  small.max_features = 2;
  EXPECT_FALSE(Model::parse(R"({"version":"v","bias":1,"weights":{"a":1,"b":2,"c":3}})", small).is_ok());
  small.max_file_bytes = 10;
  EXPECT_FALSE(Model::parse(R"({"version":"v","bias":1,"weights":{}})", small).is_ok());
}

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

TEST(ScorerModelStore, AnInvalidNewFileKeepsTheOldModelServing) {
  it::TempDir dir;
  const std::string path = dir.file("model.json");
  write(path, model_json("v1", -1, {{"a", 2}}));
  auto store = ModelStore::open(path);
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  auto v1 = (*store)->current();
  write(path, R"({"version":"v2","bias":)");
  Status st = (*store)->reload("test");
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("model.json"), std::string::npos) << st.message();
  EXPECT_EQ((*store)->current()->version(), "v1");
  EXPECT_EQ((*store)->failed_reloads(), 1u);
  ::unlink(path.c_str());
  EXPECT_FALSE((*store)->reload("test").is_ok());
  EXPECT_EQ((*store)->current()->version(), "v1");

  write(path, model_json("v2", 0, {{"a", 1}}));
  EXPECT_TRUE((*store)->reload("test").is_ok());
  EXPECT_EQ((*store)->current()->version(), "v2");
  // A request holding the old model still scores with it.
  std::map<std::string, double> f{{"a", 1}};
  EXPECT_NEAR(v1->score(f).score, 1 / (1 + std::exp(-1.0)), 1e-15);
}

TEST(ScorerModelStore, ReloadIfChangedPicksUpANewFileAndNothingElse) {
  it::TempDir dir;
  const std::string path = dir.file("model.json");
  write(path, model_json("v1", 0, {}));
  auto store = ModelStore::open(path);
  ASSERT_TRUE(store.is_ok());
  EXPECT_TRUE((*store)->reload_if_changed().is_ok());
  EXPECT_EQ((*store)->reloads(), 0u);  // unchanged: not even read
  // A new file renamed over the old one (how deploy tools replace files).
  write(path + ".new", model_json("v2-longer", 0, {}));
  ASSERT_EQ(::rename((path + ".new").c_str(), path.c_str()), 0);
  EXPECT_TRUE((*store)->reload_if_changed().is_ok());
  EXPECT_EQ((*store)->current()->version(), "v2-longer");
  EXPECT_EQ((*store)->reloads(), 1u);
}

TEST(ScorerModelStore, AScorerDoesNotStartOnAnInvalidModel) {
  it::TempDir dir;
  write(dir.file("m.json"), "{}");
  EXPECT_FALSE(ModelStore::open(dir.file("m.json")).is_ok());
  EXPECT_FALSE(ModelStore::open(dir.file("missing.json")).is_ok());
}

}  // namespace
}  // namespace sluice::fraud_scorer
