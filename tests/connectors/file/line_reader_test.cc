#include "connectors/file/line_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "connectors/file/zstd_stream.h"
#include "tests/connectors/file/temp_dir.h"

namespace sluice::file {
namespace {

using file_test::TempDir;
using file_test::write_file;

constexpr size_t kPadding = 64;

/// A line as the test expects it: text without "\n" or a final "\r",
/// 1-based number and byte offset within its file.
struct RefLine {
  std::string path;
  std::string text;
  int64_t line_no = 0;
  int64_t offset = 0;
  auto tie() const { return std::tie(path, line_no, offset, text); }
  bool operator==(const RefLine& o) const { return tie() == o.tie(); }
  bool operator<(const RefLine& o) const { return tie() < o.tie(); }
};

std::ostream& operator<<(std::ostream& os, const RefLine& l) {
  return os << l.path << ":" << l.line_no << "@" << l.offset << " '" << l.text << "'";
}

/// The reference split of one file's content into lines.
std::vector<RefLine> reference_lines(const std::string& path, const std::string& content) {
  std::vector<RefLine> out;
  size_t start = 0;
  int64_t no = 1;
  while (start < content.size()) {
    size_t nl = content.find('\n', start);
    size_t end = nl == std::string::npos ? content.size() : nl;
    std::string text = content.substr(start, end - start);
    if (!text.empty() && text.back() == '\r') text.pop_back();
    out.push_back({path, text, no++, static_cast<int64_t>(start)});
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

/// Reads every remaining line; checks the padding guarantee on each.
/// `resolve`: asks for every line's number (else a range starting inside a
/// file leaves them counted from its first line, and the lines before it
/// uncounted).
std::vector<RefLine> read_all(LineReader& r, size_t max_lines = SIZE_MAX, bool resolve = true) {
  std::vector<RefLine> out;
  Line line;
  while (out.size() < max_lines) {
    auto more = r.next(line);
    EXPECT_TRUE(more.is_ok()) << more.status().to_string();
    if (!more.is_ok() || !*more) break;
    if (resolve) {
      Status st = r.resolve_line_no(line);
      EXPECT_TRUE(st.is_ok()) << st.to_string();
    }
    EXPECT_GE(line.readable, line.size + kPadding) << "line " << line.line_no;
    EXPECT_NE(line.path, nullptr);
    out.push_back({line.path ? *line.path : "", std::string(line.data, line.size), line.line_no, line.offset});
  }
  return out;
}

/// Files written into `dir`, their FileInfos and reference lines.
struct Corpus {
  std::vector<FileInfo> files;
  std::vector<RefLine> lines;
};

Corpus make_corpus(const TempDir& dir, const std::vector<std::string>& contents) {
  Corpus c;
  for (size_t i = 0; i < contents.size(); ++i) {
    std::string path = dir.file("f" + std::to_string(i));
    write_file(path, contents[i]);
    c.files.push_back({path, static_cast<int64_t>(contents[i].size())});
    auto ls = reference_lines(path, contents[i]);
    c.lines.insert(c.lines.end(), ls.begin(), ls.end());
  }
  return c;
}

std::vector<RefLine> read_whole(const Corpus& c, size_t chunk) {
  LineReader r(c.files, split_share(c.files, 0, 1), kPadding, chunk);
  return read_all(r);
}

const std::string kMixed =
    "first line\n"
    "\n"
    "windows line\r\n"
    "a somewhat longer line that will cross several tiny chunks\n"
    "   \n"
    "\r\n"
    "x\n"
    "last line without a newline";

TEST(LineReader, LinesCrossingTinyChunksAreReadWhole) {
  TempDir dir;
  Corpus c = make_corpus(dir, {kMixed});
  for (size_t chunk : {2, 3, 4, 5, 7, 16, 1024}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    EXPECT_EQ(read_whole(c, chunk), c.lines);
  }
}

// The smallest chunk. Separate from the test above so a failure here names
// the size that breaks.
TEST(LineReader, ChunkOfOneByteStillReadsWholeLines) {
  TempDir dir;
  Corpus c = make_corpus(dir, {"ab\ncd\n"});
  EXPECT_EQ(read_whole(c, 1), c.lines);
}

TEST(LineReader, CrLfEndingsAreStrippedButCountInOffsets) {
  TempDir dir;
  Corpus c = make_corpus(dir, {"a\r\nbb\r\n\r\nccc\r\n"});
  auto lines = read_whole(c, 3);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].text, "a");
  EXPECT_EQ(lines[1].text, "bb");
  EXPECT_EQ(lines[1].offset, 3);
  EXPECT_EQ(lines[2].text, "");
  EXPECT_EQ(lines[3].text, "ccc");
  EXPECT_EQ(lines[3].offset, 9);
  EXPECT_EQ(lines[3].line_no, 4);
}

TEST(LineReader, LastLineWithoutNewlineIsRead) {
  TempDir dir;
  Corpus c = make_corpus(dir, {"one\ntwo"});
  auto lines = read_whole(c, 2);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].text, "two");
  EXPECT_EQ(lines[1].offset, 4);
  EXPECT_EQ(lines[1].line_no, 2);
}

TEST(LineReader, LineMuchLongerThanTheChunkIsReadWhole) {
  TempDir dir;
  std::string big(10'000, 'z');
  big[5000] = 'm';
  Corpus c = make_corpus(dir, {"short\n" + big + "\nafter\n"});
  for (size_t chunk : {2, 8, 100}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    auto lines = read_whole(c, chunk);
    EXPECT_EQ(lines, c.lines);
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[1].text.size(), big.size());
  }
}

TEST(LineReader, EmptyFileHasNoLines) {
  TempDir dir;
  Corpus c = make_corpus(dir, {""});
  EXPECT_TRUE(read_whole(c, 4).empty());
}

TEST(LineReader, SeveralFilesNumberTheirLinesFromOne) {
  TempDir dir;
  Corpus c = make_corpus(dir, {"a1\na2\n", "", "b1\r\nb2", "c1\n\nc3\n"});
  auto lines = read_whole(c, 3);
  EXPECT_EQ(lines, c.lines);
  std::map<std::string, int64_t> first_line_no;
  for (const auto& l : lines) first_line_no.emplace(l.path, l.line_no);
  for (const auto& [path, no] : first_line_no) EXPECT_EQ(no, 1) << path;
}

/// A corpus of several files with every kind of line, for share tests.
Corpus share_corpus(const TempDir& dir) {
  std::vector<std::string> contents;
  for (int f = 0; f < 3; ++f) {
    std::string s;
    for (int i = 0; i < 40 + 13 * f; ++i) {
      switch ((i + f) % 6) {
        case 0: s += "f" + std::to_string(f) + " line " + std::to_string(i) + "\n"; break;
        case 1: s += "\n"; break;
        case 2: s += "crlf " + std::to_string(i) + "\r\n"; break;
        case 3: s += std::string(37 + i, 'a' + static_cast<char>(i % 26)) + "\n"; break;
        case 4: s += "x\n"; break;
        default: s += "{\"n\":" + std::to_string(i) + "}\n"; break;
      }
    }
    if (f == 1) s += "no newline at the end";
    contents.push_back(s);
  }
  return make_corpus(dir, contents);
}

TEST(LineReader, SharesOfParallelismOneToEightReadEveryLineExactlyOnce) {
  TempDir dir;
  Corpus c = share_corpus(dir);
  std::vector<RefLine> expected = c.lines;
  std::sort(expected.begin(), expected.end());
  for (int p = 1; p <= 8; ++p) {
    for (size_t chunk : {3, 64, 4096}) {
      SCOPED_TRACE("parallelism " + std::to_string(p) + ", chunk " + std::to_string(chunk));
      std::vector<RefLine> all;
      for (int i = 0; i < p; ++i) {
        LineReader r(c.files, split_share(c.files, i, p), kPadding, chunk);
        auto mine = read_all(r);
        all.insert(all.end(), mine.begin(), mine.end());
      }
      std::sort(all.begin(), all.end());
      EXPECT_EQ(all, expected);
    }
  }
}

TEST(LineReader, SeekToASavedPositionResumesWithTheNextLine) {
  TempDir dir;
  Corpus c = share_corpus(dir);
  // A share that spans a file boundary, and the whole input.
  for (auto [share, shares] : {std::pair{1, 3}, std::pair{0, 1}}) {
    auto ranges = split_share(c.files, share, shares);
    LineReader full(c.files, ranges, kPadding, 16);
    std::vector<RefLine> expected = read_all(full);
    ASSERT_FALSE(expected.empty());
    for (size_t k = 0; k <= expected.size(); k += (k < 5 ? 1 : 7)) {
      SCOPED_TRACE("share " + std::to_string(share) + "/" + std::to_string(shares) + ", after " +
                   std::to_string(k) + " lines");
      LineReader first(c.files, ranges, kPadding, 5);
      // No line number asked for while reading: position() counts the
      // lines before the range itself.
      auto head = read_all(first, k, /*resolve=*/k % 2 == 0);
      ASSERT_EQ(head.size(), k);
      auto at = first.position();
      ASSERT_TRUE(at.is_ok()) << at.status().to_string();
      LinePosition pos = *at;

      // The position survives serialization (it is checkpoint state).
      LinePosition restored;
      ASSERT_TRUE(deserialize(serialize(pos), restored).is_ok());

      LineReader second(c.files, ranges, kPadding, 7);
      second.seek(restored);
      auto tail = read_all(second);
      std::vector<RefLine> expected_tail(expected.begin() + static_cast<long>(k), expected.end());
      EXPECT_EQ(tail, expected_tail);
    }
  }
}

TEST(LineReader, ZstdFilesOfSeveralFramesAreReadWholeByOneShareAndResumeAtAPosition) {
  TempDir dir;
  // Plain and compressed files mixed; the compressed one in three frames
  // (as the partitioned sink ends a frame at every checkpoint).
  Corpus c = make_corpus(dir, {kMixed + "\n", "plain 1\nplain 2\n"});
  std::string text;
  for (int i = 0; i < 300; ++i) text += "compressed line " + std::to_string(i) + (i % 7 ? "" : "\r") + "\n";
  std::string zst;
  {
    ZstdCompressor z;
    ASSERT_TRUE(z.append(text.substr(0, 1000), zst).is_ok());
    ASSERT_TRUE(z.end_frame(zst).is_ok());
    ASSERT_TRUE(z.append(text.substr(1000, 3000), zst).is_ok());
    ASSERT_TRUE(z.end_frame(zst).is_ok());
    ASSERT_TRUE(z.append(text.substr(4000), zst).is_ok());
    ASSERT_TRUE(z.end_frame(zst).is_ok());
  }
  const std::string zpath = dir.file("f2.ndjson.zst");
  write_file(zpath, zst);
  c.files.push_back({zpath, static_cast<int64_t>(zst.size()), true});
  auto zl = reference_lines(zpath, text);
  c.lines.insert(c.lines.end(), zl.begin(), zl.end());
  std::vector<RefLine> expected = c.lines;
  std::sort(expected.begin(), expected.end());
  for (int p = 1; p <= 4; ++p) {
    SCOPED_TRACE("parallelism " + std::to_string(p));
    std::vector<RefLine> all;
    int holders = 0;
    for (int i = 0; i < p; ++i) {
      LineReader r(c.files, split_share(c.files, i, p), kPadding, 64);
      auto mine = read_all(r);
      holders += std::any_of(mine.begin(), mine.end(), [&](const RefLine& l) { return l.path == zpath; }) ? 1 : 0;
      all.insert(all.end(), mine.begin(), mine.end());
    }
    EXPECT_EQ(holders, 1) << "one share reads the compressed file, whole";
    std::sort(all.begin(), all.end());
    EXPECT_EQ(all, expected);
  }
  // Resume inside the compressed file.
  std::vector<FileInfo> only{c.files.back()};
  auto ranges = split_share(only, 0, 1);
  LineReader first(only, ranges, kPadding, 100);
  auto head = read_all(first, 123);
  LineReader second(only, ranges, kPadding, 33);
  second.seek(*first.position());
  auto tail = read_all(second);
  EXPECT_EQ(tail, std::vector<RefLine>(zl.begin() + 123, zl.end()));
  // A file cut inside a frame is an error, not a silent end.
  write_file(zpath, zst.substr(0, zst.size() - 5));
  LineReader cut(only, ranges, kPadding, 64);
  Line line;
  Status last;
  for (;;) {
    auto more = cut.next(line);
    if (!more.is_ok()) {
      last = more.status();
      break;
    }
    if (!*more) break;
  }
  EXPECT_FALSE(last.is_ok()) << "a truncated .zst must fail the read";
}

TEST(LineReader, SeekAfterTheLastLineReadsNothing) {
  TempDir dir;
  Corpus c = make_corpus(dir, {"a\nb\n"});
  auto ranges = split_share(c.files, 0, 1);
  LineReader first(c.files, ranges, kPadding, 4);
  ASSERT_EQ(read_all(first).size(), 2u);
  LineReader second(c.files, ranges, kPadding, 4);
  second.seek(*first.position());
  EXPECT_TRUE(read_all(second).empty());
}

TEST(LineReader, LinesOverTheLimitComeBackCutWithTheirSizeAndTheNextLinesFollow) {
  TempDir dir;
  // Seeded random lengths around the limit, some far over it.
  const size_t kLimit = 100;
  uint64_t seed = 17;
  auto rnd = [&] { return seed = seed * 6364136223846793005ull + 1442695040888963407ull, seed >> 33; };
  std::string content;
  std::vector<size_t> lengths;
  for (int i = 0; i < 200; ++i) {
    size_t n = rnd() % 7 == 0 ? kLimit + rnd() % 5000 : rnd() % (kLimit + 1);
    lengths.push_back(n);
    content += std::string(n, static_cast<char>('a' + i % 26)) + "\n";
  }
  Corpus c = make_corpus(dir, {content});
  for (size_t chunk : {size_t{7}, size_t{64}, size_t{4096}}) {
    LineReader r(c.files, split_share(c.files, 0, 1), kPadding, chunk, kLimit);
    Line line;
    size_t i = 0;
    int64_t offset = 0;
    while (true) {
      auto more = r.next(line);
      ASSERT_TRUE(more.is_ok()) << more.status().to_string();
      if (!*more) break;
      ASSERT_LT(i, lengths.size());
      SCOPED_TRACE("seed 17, chunk " + std::to_string(chunk) + ", line " + std::to_string(i + 1));
      EXPECT_EQ(line.line_no, static_cast<int64_t>(i + 1));
      EXPECT_EQ(line.offset, offset);
      EXPECT_EQ(line.oversize, lengths[i] > kLimit);
      EXPECT_EQ(line.full_size, lengths[i]);
      if (line.oversize) {
        EXPECT_GE(line.size, kLimit) << "at least the limit's worth is kept";
        EXPECT_LE(line.size, kOversizeKeep);
      } else {
        EXPECT_EQ(line.size, lengths[i]);
      }
      EXPECT_GE(line.readable, line.size + kPadding);
      EXPECT_EQ(std::string(line.data, line.size), std::string(line.size, static_cast<char>('a' + i % 26)));
      offset += static_cast<int64_t>(lengths[i] + 1);
      ++i;
    }
    EXPECT_EQ(i, lengths.size()) << "chunk " << chunk;
  }
}

TEST(LineReader, AHugeLineIsSkippedWithoutBufferingIt) {
  TempDir dir;
  std::string content = "{\"a\":1}\n" + std::string(20 << 20, 'x') + "\n{\"a\":2}\n";
  Corpus c = make_corpus(dir, {content});
  LineReader r(c.files, split_share(c.files, 0, 1), kPadding, 1 << 16, 1 << 20);
  auto lines = read_all(r);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2].text, "{\"a\":2}");
  EXPECT_EQ(lines[2].line_no, 3);
  EXPECT_GE(lines[1].text.size(), size_t{1} << 16);
  EXPECT_LE(lines[1].text.size(), kOversizeKeep);
}

}  // namespace
}  // namespace sluice::file
