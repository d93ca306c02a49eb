// murmur3_32 against published MurmurHash3_x86_32 vectors, sha256_hex
// against FIPS 180-2 vectors.
#include "engine/common/hash.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/common/sha256.h"

namespace sluice {
namespace {

std::string bytes(std::initializer_list<int> bs) {
  std::string s;
  for (int b : bs) s.push_back(static_cast<char>(b));
  return s;
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

TEST(Murmur3, EmptyInputVectors) {
  EXPECT_EQ(murmur3_32("", 0), 0x00000000u);
  EXPECT_EQ(murmur3_32("", 1), 0x514E28B7u);
  EXPECT_EQ(murmur3_32("", 0xffffffff), 0x81F16F39u);
  EXPECT_EQ(murmur3_32(""), 0u) << "default seed is 0";
}

// Vectors published with several independent implementations (e.g. the
// MurmurHash.Net test suite), covering every tail length.
TEST(Murmur3, ByteVectorsCoverEveryTailLength) {
  EXPECT_EQ(murmur3_32(bytes({0xff, 0xff, 0xff, 0xff}), 0), 0x76293B50u);
  EXPECT_EQ(murmur3_32(bytes({0x21, 0x43, 0x65, 0x87}), 0), 0xF55B516Bu);
  EXPECT_EQ(murmur3_32(bytes({0x21, 0x43, 0x65, 0x87}), 0x5082EDEE), 0x2362F9DEu);
  EXPECT_EQ(murmur3_32(bytes({0x21, 0x43, 0x65}), 0), 0x7E4A8634u);
  EXPECT_EQ(murmur3_32(bytes({0x21, 0x43}), 0), 0xA0F7B07Au);
  EXPECT_EQ(murmur3_32(bytes({0x21}), 0), 0x72661CF4u);
  EXPECT_EQ(murmur3_32(bytes({0, 0, 0, 0}), 0), 0x2362F9DEu);
  EXPECT_EQ(murmur3_32(bytes({0, 0, 0}), 0), 0x85F0B427u);
  EXPECT_EQ(murmur3_32(bytes({0, 0}), 0), 0x30F4C306u);
  EXPECT_EQ(murmur3_32(bytes({0}), 0), 0x514E28B7u);
}

// Bitcoin Core's hash_tests (MurmurHash3 with the given seed over hex data).
TEST(Murmur3, BitcoinCoreVectors) {
  struct V {
    uint32_t expected;
    uint32_t seed;
    const char* hex;
  };
  const V vectors[] = {
      {0x00000000, 0x00000000, ""},
      {0x6a396f08, 0xFBA4C795, ""},
      {0x81f16f39, 0xffffffff, ""},
      {0x514e28b7, 0x00000000, "00"},
      {0xea3f0b17, 0xFBA4C795, "00"},
      {0xfd6cf10d, 0x00000000, "ff"},
      {0x16c6b7ab, 0x00000000, "0011"},
      {0x8eb51c3d, 0x00000000, "001122"},
      {0xb4471bf8, 0x00000000, "00112233"},
      {0xe2301fa8, 0x00000000, "0011223344"},
      {0xfc2e4a15, 0x00000000, "001122334455"},
      {0xb074502c, 0x00000000, "00112233445566"},
      {0x8034d2a0, 0x00000000, "0011223344556677"},
      {0xb4698def, 0x00000000, "001122334455667788"},
  };
  for (const auto& v : vectors) {
    EXPECT_EQ(murmur3_32(from_hex(v.hex), v.seed), v.expected) << v.hex << " seed " << v.seed;
  }
}

TEST(Murmur3, TextVectors) {
  EXPECT_EQ(murmur3_32("test", 0), 0xba6bd213u);
  EXPECT_EQ(murmur3_32("test", 0x9747b28c), 0x704b81dcu);
  EXPECT_EQ(murmur3_32("Hello, world!", 0), 0xc0363e43u);
  EXPECT_EQ(murmur3_32("Hello, world!", 0x9747b28c), 0x24884cbau);
  EXPECT_EQ(murmur3_32("The quick brown fox jumps over the lazy dog", 0), 0x2e4ff723u);
  EXPECT_EQ(murmur3_32("The quick brown fox jumps over the lazy dog", 0x9747b28c), 0x2fa826cdu);
}

// SMHasher's VerificationTest for MurmurHash3_x86_32: hash keys {0},
// {0,1}, ..., {0..254} (and the empty key) with seed 256 - len, store the
// hashes little-endian in one buffer, hash that with seed 0.
TEST(Murmur3, SmhasherVerificationValue) {
  std::string key;
  std::string hashes;
  for (int i = 0; i < 256; ++i) {
    uint32_t h = murmur3_32(key, static_cast<uint32_t>(256 - i));
    for (int b = 0; b < 4; ++b) hashes.push_back(static_cast<char>((h >> (8 * b)) & 0xff));
    key.push_back(static_cast<char>(i));
  }
  ASSERT_EQ(hashes.size(), 1024u);
  EXPECT_EQ(murmur3_32(hashes, 0), 0xB0F57EE3u);
}

TEST(Murmur3, ReadsOnlyTheGivenBytes) {
  // A view into a larger buffer hashes like a copy of just those bytes
  // (unaligned start, tail bytes followed by other data).
  const std::string big = "xxHello, world!yyyy";
  std::string_view view(big.data() + 2, 13);
  EXPECT_EQ(murmur3_32(view, 0x9747b28c), 0x24884cbau);
}

TEST(Sha256, FipsVectors) {
  EXPECT_EQ(sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, HashesEmbeddedNulBytes) {
  std::string with_nul("a\0b", 3);
  EXPECT_NE(sha256_hex(with_nul), sha256_hex("a"));
  EXPECT_EQ(sha256_hex(with_nul).size(), 64u);
}

TEST(Sha256, MillionAs) {
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace sluice
