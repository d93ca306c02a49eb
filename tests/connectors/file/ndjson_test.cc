// The NDJSON source and sink run as jobs on the LocalExecutor: every valid
// line read exactly once at any parallelism, malformed lines as dead
// letters with their origin, sink output that parses back.
#include "connectors/file/ndjson.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "tests/connectors/file/temp_dir.h"
#include "tests/runtime/test_job.h"

namespace sluice::file {
namespace {

using file_test::TempDir;
using file_test::write_file;
using rt_test::Collected;
using rt_test::TestJob;

struct Rec {
  int64_t id = 0;
  std::string name;
  SLUICE_FIELDS(id, name)
  auto operator<=>(const Rec&) const = default;
};

/// A malformed line the test expects as a dead letter.
struct ExpectedDeadLetter {
  std::string origin;
  int64_t line = 0;
  int64_t offset = 0;
  std::string payload;
  auto operator<=>(const ExpectedDeadLetter&) const = default;
};

std::ostream& operator<<(std::ostream& os, const ExpectedDeadLetter& d) {
  return os << d.origin << ":" << d.line << "@" << d.offset << " '" << d.payload << "'";
}

std::string json_string(const std::string& s) {
  std::string out;
  json_append_string(out, s);
  return out;
}

/// Input files written by the test, with what reading them must produce.
struct Input {
  std::vector<Rec> records;
  std::vector<ExpectedDeadLetter> dead;
  int blank = 0;
};

/// Writes `files` NDJSON files into `dir` with valid records, malformed
/// lines of several kinds, blank lines and CRLF endings; the last line of
/// file 1 has no newline. Also a hidden file, which must not be read.
Input write_input(const TempDir& dir, int files, int lines_per_file) {
  Input in;
  std::mt19937 rng(1234);
  int64_t next_id = 0;
  const std::vector<std::string> names = {"plain", "with \"quotes\"", "back\\slash", "tab\there",
                                          "unicode \xc3\xa9\xe2\x82\xac", ""};
  for (int f = 0; f < files; ++f) {
    std::string path = dir.file("part-" + std::to_string(f) + ".ndjson");
    std::string content;
    for (int i = 0; i < lines_per_file; ++i) {
      int64_t offset = static_cast<int64_t>(content.size());
      int64_t line_no = i + 1;
      bool last = i + 1 == lines_per_file;
      std::string eol = (last && f == 1) ? "" : (rng() % 5 == 0 ? "\r\n" : "\n");
      std::string text;
      unsigned kind = rng() % 20;
      if (kind < 13) {
        Rec r{next_id++, names[rng() % names.size()] + " " + std::to_string(i)};
        text = "{\"id\":" + std::to_string(r.id) + ",\"name\":" + json_string(r.name) + "}";
        if (kind == 0) text = "{\"name\":" + json_string(r.name) + ",\"extra\":[1,2],\"id\":" + std::to_string(r.id) + "}";
        in.records.push_back(r);
      } else if (kind < 15) {
        text = (kind == 13) ? "" : " \t ";
        ++in.blank;
      } else {
        switch (kind) {
          case 15: text = "{\"id\":" + std::to_string(i) + ",\"na"; break;          // truncated
          case 16: text = "{\"id\":\"seven\",\"name\":\"x\"}"; break;               // wrong type
          case 17: text = "{\"id\":" + std::to_string(i) + "}"; break;               // missing field
          case 18: text = "not json at all " + std::to_string(i); break;
          default: text = "{\"id\":1,\"name\":\"x\"} trailing"; break;             // garbage after
        }
        in.dead.push_back({path, line_no, offset, text});
      }
      content += text + eol;
    }
    write_file(path, content);
  }
  write_file(dir.file(".hidden.ndjson"), "{\"id\":-1,\"name\":\"hidden\"}\n");
  return in;
}

TEST(NdjsonSource, EveryValidLineOnceAndEachMalformedLineOneDeadLetterAtParallelismOneToFour) {
  TempDir dir;
  Input in = write_input(dir, 3, 700);
  ASSERT_GT(in.dead.size(), 50u);
  ASSERT_GT(in.blank, 50);
  std::vector<Rec> expected = in.records;
  std::sort(expected.begin(), expected.end());
  std::vector<ExpectedDeadLetter> expected_dead = in.dead;
  std::sort(expected_dead.begin(), expected_dead.end());

  for (int p = 1; p <= 4; ++p) {
    SCOPED_TRACE("parallelism " + std::to_string(p));
    auto out = std::make_shared<Collected<Rec>>();
    auto dead = std::make_shared<Collected<DeadLetter>>();
    TestJob job("ndjson-p" + std::to_string(p));
    auto& env = job.env();
    env.set_dead_letter_sink(rt_test::collect_into(dead));
    env.from_source<Rec>(std::make_shared<NdjsonFileSource<Rec>>(dir.path()),
                         runtime::WatermarkStrategy<Rec>::no_watermarks(), "files")
        .sink_to(rt_test::collect_into(out));
    Status st = job.prepare(p);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    st = job.run();
    ASSERT_TRUE(st.is_ok()) << st.to_string();

    std::vector<Rec> got = out->values();
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, expected);

    std::set<int> readers;
    for (const auto& item : out->items()) readers.insert(item.subtask);
    EXPECT_EQ(static_cast<int>(readers.size()), p) << "every subtask reads a share";

    std::vector<ExpectedDeadLetter> got_dead;
    for (const auto& dl : dead->values()) {
      got_dead.push_back({dl.origin, dl.line, dl.offset, dl.payload});
      EXPECT_FALSE(dl.reason.empty()) << "a dead letter says what was wrong";
      EXPECT_EQ(dl.operator_name, "files");
    }
    std::sort(got_dead.begin(), got_dead.end());
    EXPECT_EQ(got_dead, expected_dead);
  }
}

TEST(NdjsonSource, SingleFileWithOnlyBlankLinesProducesNothing) {
  TempDir dir;
  std::string path = dir.file("blank.ndjson");
  write_file(path, "\n   \n\t\n\r\n\n");
  auto out = std::make_shared<Collected<Rec>>();
  auto dead = std::make_shared<Collected<DeadLetter>>();
  TestJob job("blank");
  auto& env = job.env();
  env.set_dead_letter_sink(rt_test::collect_into(dead));
  env.from_source<Rec>(std::make_shared<NdjsonFileSource<Rec>>(path),
                       runtime::WatermarkStrategy<Rec>::no_watermarks(), "files")
      .sink_to(rt_test::collect_into(out));
  ASSERT_TRUE(job.prepare(2).is_ok());
  Status st = job.run();
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(out->size(), 0u);
  EXPECT_EQ(dead->size(), 0u) << "blank lines are skipped, not rejected";
}

TEST(NdjsonSource, ARecordOverTheSizeLimitIsADeadLetterAndTheRestFlows) {
  TempDir dir;
  std::string path = dir.file("big.ndjson");
  // A 12 MiB line (over the 4 MiB default) between two good records, and a
  // malformed line that is not UTF-8.
  std::string huge = "{\"id\":2,\"name\":\"" + std::string(12 << 20, 'x') + "\"}";
  write_file(path, "{\"id\":1,\"name\":\"a\"}\n" + huge + "\n\xff\xfe{\n{\"id\":3,\"name\":\"c\"}\n");
  auto out = std::make_shared<Collected<Rec>>();
  auto dead = std::make_shared<Collected<DeadLetter>>();
  TestJob job("big");
  auto& env = job.env();
  env.set_dead_letter_sink(rt_test::collect_into(dead));
  env.from_source<Rec>(std::make_shared<NdjsonFileSource<Rec>>(path), runtime::WatermarkStrategy<Rec>::no_watermarks(),
                       "files")
      .sink_to(rt_test::collect_into(out));
  ASSERT_TRUE(job.prepare(1).is_ok());
  Status st = job.run();
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(out->size(), 2u) << "the records around it arrive";
  auto dls = dead->values();
  ASSERT_EQ(dls.size(), 2u);
  std::sort(dls.begin(), dls.end(), [](const auto& a, const auto& b) { return a.line < b.line; });
  EXPECT_EQ(dls[0].line, 2);
  EXPECT_NE(dls[0].reason.find("exceeds the limit"), std::string::npos) << dls[0].reason;
  EXPECT_EQ(dls[0].payload_bytes, static_cast<int64_t>(huge.size()));
  EXPECT_LE(dls[0].payload.size(), size_t{64} << 10) << "only its start is kept";
  EXPECT_EQ(dls[1].line, 3);
  EXPECT_EQ(dls[1].payload_encoding, "base64");
  EXPECT_EQ(dls[1].payload, base64_encode("\xff\xfe{"));
}

TEST(NdjsonSource, AStringOverTheFieldLimitIsADeadLetterWithReasonAndOrigin) {
  TempDir dir;
  std::string path = dir.file("fields.ndjson");
  // With a limit of 1000 bytes: a name of 1000 two-byte characters (2000
  // bytes), a name of exactly 1000 bytes (fine), and an escaped name whose
  // unescaped form is over the limit.
  std::string long_name = "{\"id\":2,\"name\":\"";
  for (int i = 0; i < 1000; ++i) long_name += "\xc3\xa9";
  long_name += "\"}";
  const std::string at_limit = "{\"id\":3,\"name\":\"" + std::string(1000, 'a') + "\"}";
  std::string escaped = "{\"id\":4,\"name\":\"";
  for (int i = 0; i < 1001; ++i) escaped += "\\u00e9";  // 6 bytes in, 2 out: 2002 > 1000
  escaped += "\"}";
  write_file(path, "{\"id\":1,\"name\":\"a\"}\n" + long_name + "\n" + at_limit + "\n" + escaped + "\n");
  auto out = std::make_shared<Collected<Rec>>();
  auto dead = std::make_shared<Collected<DeadLetter>>();
  TestJob job("fields");
  auto& env = job.env();
  env.set_dead_letter_sink(rt_test::collect_into(dead));
  auto source = NdjsonFileSource<Rec>::from_uri("file://" + path + "?max-field-bytes=1000");
  ASSERT_TRUE(source.is_ok()) << source.status().to_string();
  EXPECT_NE((*source)->description().find("max-field-bytes=1000"), std::string::npos);
  env.from_source<Rec>(*source, runtime::WatermarkStrategy<Rec>::no_watermarks(), "files")
      .sink_to(rt_test::collect_into(out));
  ASSERT_TRUE(job.prepare(1).is_ok());
  Status st = job.run();
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  auto got = out->values();
  std::sort(got.begin(), got.end());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, 1);
  EXPECT_EQ(got[1].id, 3) << "a string at the limit is fine";
  auto dls = dead->values();
  ASSERT_EQ(dls.size(), 2u);
  std::sort(dls.begin(), dls.end(), [](const auto& a, const auto& b) { return a.line < b.line; });
  EXPECT_EQ(dls[0].line, 2);
  EXPECT_EQ(dls[0].origin, path);
  EXPECT_NE(dls[0].reason.find("field 'name': string of 2000 bytes exceeds the limit of 1000 bytes "
                               "(source parameter max-field-bytes)"),
            std::string::npos)
      << dls[0].reason;
  EXPECT_EQ(dls[0].payload_encoding, "utf8");
  EXPECT_EQ(dls[0].payload, long_name) << "the whole record, as it was";
  EXPECT_EQ(dls[1].line, 4);
  EXPECT_NE(dls[1].reason.find("string of 2002 bytes"), std::string::npos) << dls[1].reason;
  EXPECT_EQ(dls[1].payload_encoding, "utf8");
  for (const auto& d : dls) EXPECT_TRUE(is_valid_utf8(to_json(d))) << "dead letters are valid JSON";
}

TEST(NdjsonSource, FieldLimitParameterIsChecked) {
  for (const char* bad : {"0", "-1", "x", "1073741825"}) {
    auto s = NdjsonFileSource<Rec>::from_uri(std::string("file:///tmp/x.ndjson?max-field-bytes=") + bad);
    ASSERT_FALSE(s.is_ok()) << bad;
    EXPECT_NE(s.status().message().find("max-field-bytes must be 1..1073741824"), std::string::npos)
        << s.status().to_string();
  }
}

/// Runs the NDJSON source over `path` at `parallelism` into collectors.
Status run_source(const std::string& path, int parallelism, std::shared_ptr<Collected<Rec>> out,
                  std::shared_ptr<Collected<DeadLetter>> dead) {
  TestJob job("ndjson");
  auto& env = job.env();
  env.set_dead_letter_sink(rt_test::collect_into(dead));
  env.from_source<Rec>(std::make_shared<NdjsonFileSource<Rec>>(path),
                       runtime::WatermarkStrategy<Rec>::no_watermarks(), "files")
      .sink_to(rt_test::collect_into(out));
  SLUICE_RETURN_IF_ERROR(job.prepare(parallelism));
  return job.run();
}

TEST(NdjsonSource, MoreSubtasksThanLinesReadsEachLineOnce) {
  TempDir dir;
  std::string path = dir.file("tiny.ndjson");
  write_file(path, "{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"name\":\"b\"}");
  auto out = std::make_shared<Collected<Rec>>();
  auto dead = std::make_shared<Collected<DeadLetter>>();
  Status st = run_source(path, 4, out, dead);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  auto got = out->values();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<Rec>{{1, "a"}, {2, "b"}}));
  EXPECT_EQ(dead->size(), 0u);
}

struct TextRec {
  int64_t id = 0;
  Text name;  // borrowed from the read buffer by the source's parser
  SLUICE_FIELDS(id, name)
};

// Lines are parsed in place in the reader's 256 KiB buffer, their strings
// borrowed from it: a record whose last byte is the buffer's last (its
// newline in the next read), a malformed line right after it, strings of
// lengths around the 16-byte scan step (some with escapes), and a last
// line without newline that ends the file, at parallelism 1 and 2 (a
// share boundary inside the file).
TEST(NdjsonSource, LinesAtTheEndOfAReadAndALastLineWithoutNewlineParseInPlaceWithExactDeadLetters) {
  TempDir dir;
  const std::string path = dir.file("edges.ndjson");
  const size_t kChunk = size_t{256} << 10;  // NdjsonReader's read size
  std::string content;
  std::vector<Rec> want;
  std::vector<ExpectedDeadLetter> want_dead;
  int64_t line = 0;
  auto record = [&](int64_t id, const std::string& name) {
    return "{\"id\":" + std::to_string(id) + ",\"name\":" + json_string(name) + "}";
  };
  auto add = [&](const std::string& text, bool good, const Rec& r, const char* eol) {
    ++line;
    if (good) want.push_back(r);
    else want_dead.push_back({path, line, static_cast<int64_t>(content.size()), text});
    content += text + eol;
  };
  int64_t id = 0;
  auto name_of = [](int64_t i) {
    std::string n(static_cast<size_t>(i % 37), static_cast<char>('a' + i % 26));
    if (i % 5 == 0 && !n.empty()) n[n.size() / 2] = '"';  // written escaped
    return n;
  };
  while (content.size() + 200 < kChunk) {
    Rec r{id, name_of(id)};
    ++id;
    add(record(r.id, r.name), true, r, "\n");
  }
  // Ends with the buffer's last byte: the name fills the room left.
  const std::string bare = record(id, "");
  Rec at_end{id++, std::string(kChunk - content.size() - bare.size(), 'z')};
  add(record(at_end.id, at_end.name), true, at_end, "\n");
  ASSERT_EQ(content.size(), kChunk + 1);
  add("{\"id\":7,\"name\":\"unterminated", false, {}, "\n");
  add("{\"id\":8,\"name\":\"a\"}{\"id\":9,\"name\":\"b\"}", false, {}, "\n");  // two values on a line
  for (int i = 0; i < 300; ++i) {
    Rec r{id, name_of(id)};
    ++id;
    add(record(r.id, r.name), true, r, i % 3 == 0 ? "\r\n" : "\n");
  }
  add("{\"id\":10,\"name\":12}", false, {}, "\n");
  Rec last{id++, "last \\ line"};
  add(record(last.id, last.name), true, last, "");  // no newline: the file ends in the value
  write_file(path, content);
  std::sort(want.begin(), want.end());
  std::sort(want_dead.begin(), want_dead.end());

  for (int p = 1; p <= 2; ++p) {
    SCOPED_TRACE("parallelism " + std::to_string(p));
    auto out = std::make_shared<Collected<TextRec>>();
    auto dead = std::make_shared<Collected<DeadLetter>>();
    TestJob job("ndjson-edges");
    auto& env = job.env();
    env.set_dead_letter_sink(rt_test::collect_into(dead));
    env.from_source<TextRec>(std::make_shared<NdjsonFileSource<TextRec>>(path),
                             runtime::WatermarkStrategy<TextRec>::no_watermarks(), "files")
        .sink_to(rt_test::collect_into(out));
    Status st = job.prepare(p);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    st = job.run();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    std::vector<Rec> got;
    for (const auto& r : out->values()) got.push_back({r.id, r.name.str()});
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, want);
    std::vector<ExpectedDeadLetter> got_dead;
    for (const auto& dl : dead->values()) {
      got_dead.push_back({dl.origin, dl.line, dl.offset, dl.payload});
      EXPECT_FALSE(dl.reason.empty());
    }
    std::sort(got_dead.begin(), got_dead.end());
    EXPECT_EQ(got_dead, want_dead);
  }
}

TEST(NdjsonSource, DeadLetterOfAHugeMalformedLineKeepsItsFirst64KiB) {
  TempDir dir;
  std::string path = dir.file("huge.ndjson");
  std::string huge = "{\"id\":1,\"name\":\"" + std::string(100'000, 'x');  // unterminated
  std::string valid = "{\"id\":2,\"name\":\"ok\"}";
  write_file(path, huge + "\n" + valid + "\n");
  auto out = std::make_shared<Collected<Rec>>();
  auto dead = std::make_shared<Collected<DeadLetter>>();
  Status st = run_source(path, 1, out, dead);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  ASSERT_EQ(dead->size(), 1u);
  DeadLetter dl = dead->values()[0];
  EXPECT_EQ(dl.line, 1);
  EXPECT_EQ(dl.offset, 0);
  EXPECT_EQ(dl.payload, huge.substr(0, 64 * 1024));
  EXPECT_EQ(out->values(), (std::vector<Rec>{{2, "ok"}})) << "the line after it is still read";
}

TEST(NdjsonSource, MissingInputFailsTheJobNamingThePath) {
  TempDir dir;
  std::string path = dir.file("missing.ndjson");
  auto out = std::make_shared<Collected<Rec>>();
  TestJob job("missing");
  job.env()
      .from_source<Rec>(std::make_shared<NdjsonFileSource<Rec>>(path),
                        runtime::WatermarkStrategy<Rec>::no_watermarks(), "files")
      .sink_to(rt_test::collect_into(out));
  ASSERT_TRUE(job.prepare(1).is_ok());
  Status st = job.run();
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(path), std::string::npos) << st.to_string();
}

TEST(SubtaskPath, NamesOneFilePerSubtaskBeforeTheExtension) {
  EXPECT_EQ(subtask_path("/out/counts.ndjson", 0, 1), "/out/counts.ndjson");
  EXPECT_EQ(subtask_path("/out/counts.ndjson", 0, 3), "/out/counts-0.ndjson");
  EXPECT_EQ(subtask_path("/out/counts.ndjson", 2, 3), "/out/counts-2.ndjson");
  EXPECT_EQ(subtask_path("/out/counts", 1, 2), "/out/counts-1");
  EXPECT_EQ(subtask_path("/out.d/counts", 1, 2), "/out.d/counts-1") << "a dot in a directory is no extension";
  EXPECT_EQ(subtask_path("counts.tar.gz", 1, 2), "counts.tar-1.gz");
  EXPECT_EQ(subtask_path("counts.json", 4, 5), "counts-4.json");
}

/// Parses an NDJSON file of {"id":..,"name":..} with simdjson's DOM parser
/// (independent of Sluice's own reader); a line that does not parse fails.
std::vector<Rec> parse_back(const std::string& path) {
  std::vector<Rec> out;
  std::string content = file_test::read_file(path);
  simdjson::dom::parser parser;
  size_t start = 0;
  int line = 0;
  while (start < content.size()) {
    ++line;
    size_t nl = content.find('\n', start);
    EXPECT_NE(nl, std::string::npos) << path << " line " << line << " has no newline";
    if (nl == std::string::npos) nl = content.size();
    std::string text = content.substr(start, nl - start);
    start = nl + 1;
    simdjson::dom::element doc;
    auto err = parser.parse(text).get(doc);
    if (err) {
      ADD_FAILURE() << path << " line " << line << " is not JSON: " << text;
      continue;
    }
    Rec r;
    std::string_view name;
    if (doc["id"].get(r.id) || doc["name"].get(name)) {
      ADD_FAILURE() << path << " line " << line << " lacks id/name: " << text;
      continue;
    }
    r.name = std::string(name);
    out.push_back(r);
  }
  return out;
}

TEST(NdjsonSink, OutputOfEverySubtaskParsesBackToTheInput) {
  std::vector<Rec> records;
  const std::vector<std::string> names = {"plain", "\"quoted\"", "back\\slash", "new\nline",
                                          "tab\t", "ctrl \x01", "unicode \xc3\xa9", ""};
  for (int i = 0; i < 1500; ++i) records.push_back(Rec{i * 7 - 300, names[i % names.size()] + std::to_string(i)});
  std::vector<Rec> expected = records;
  std::sort(expected.begin(), expected.end());

  for (int p : {1, 3}) {
    SCOPED_TRACE("parallelism " + std::to_string(p));
    TempDir dir;
    std::string target = dir.file("out.ndjson");
    TestJob job("sink-p" + std::to_string(p));
    job.env()
        .from_source<Rec>(std::make_shared<rt_test::VectorSource<Rec>>(records),
                          runtime::WatermarkStrategy<Rec>::no_watermarks(), "records")
        .sink_to(NdjsonSink<Rec>::to_file(target), "ndjson");
    ASSERT_TRUE(job.prepare(p).is_ok());
    Status st = job.run();
    ASSERT_TRUE(st.is_ok()) << st.to_string();

    std::vector<Rec> got;
    std::set<std::string> visible;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      std::string name = e.path().filename().string();
      if (name[0] != '.') visible.insert(name);
    }
    std::set<std::string> expected_files;
    for (int s = 0; s < p; ++s) expected_files.insert(p == 1 ? "out.ndjson" : "out-" + std::to_string(s) + ".ndjson");
    EXPECT_EQ(visible, expected_files);
    for (const auto& name : expected_files) {
      auto part = parse_back(dir.file(name));
      got.insert(got.end(), part.begin(), part.end());
    }
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, expected);
  }
}

}  // namespace
}  // namespace sluice::file
