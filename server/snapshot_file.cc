#include "server/snapshot_file.h"

#include <openssl/evp.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ganglion::server {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[] = "GANGLION-SNAPSHOT-1\n";
constexpr size_t kMagicBytes = sizeof(kMagic) - 1;
constexpr size_t kHashBytes = 32;
constexpr size_t kChunkBytes = 1 << 20;
constexpr uint32_t kNameBytesMax = 4096;
// etcdctl recognises a snapshot's trailing hash by the file size: a multiple
// of 512 bytes plus the 32-byte hash.
constexpr uint64_t kAlignBytes = 512;

struct Sha256 {
  Sha256() : ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  }
  void Update(const void* data, size_t n) { EVP_DigestUpdate(ctx.get(), data, n); }
  std::array<unsigned char, kHashBytes> Final() {
    std::array<unsigned char, kHashBytes> out{};
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx.get(), out.data(), &len);
    return out;
  }
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx;
};

// Writes through the hash.
class HashedWriter {
 public:
  explicit HashedWriter(std::ofstream* out) : out_(out) {}
  void Write(const void* data, size_t n) {
    out_->write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    hash_.Update(data, n);
    written_ += n;
  }
  uint64_t written() const { return written_; }
  void U32(uint32_t v) {
    unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                          static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
    Write(b, 4);
  }
  void U64(uint64_t v) {
    U32(static_cast<uint32_t>(v >> 32));
    U32(static_cast<uint32_t>(v));
  }
  std::array<unsigned char, kHashBytes> Final() { return hash_.Final(); }

 private:
  std::ofstream* out_;
  Sha256 hash_;
  uint64_t written_ = 0;
};

class HashedReader {
 public:
  explicit HashedReader(std::ifstream* in) : in_(in) {}
  bool Read(void* data, size_t n) {
    in_->read(static_cast<char*>(data), static_cast<std::streamsize>(n));
    if (static_cast<size_t>(in_->gcount()) != n) return false;
    hash_.Update(data, n);
    read_ += n;
    return true;
  }
  uint64_t read() const { return read_; }
  bool U32(uint32_t* v) {
    unsigned char b[4];
    if (!Read(b, 4)) return false;
    *v = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
    return true;
  }
  bool U64(uint64_t* v) {
    uint32_t hi = 0, lo = 0;
    if (!U32(&hi) || !U32(&lo)) return false;
    *v = (uint64_t{hi} << 32) | lo;
    return true;
  }
  std::array<unsigned char, kHashBytes> Final() { return hash_.Final(); }

 private:
  std::ifstream* in_;
  Sha256 hash_;
  uint64_t read_ = 0;
};

}  // namespace

absl::Status PackSnapshot(const std::string& checkpoint_dir, const std::string& out_file) {
  std::ofstream out(out_file, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("create ", out_file));
  HashedWriter w(&out);
  w.Write(kMagic, kMagicBytes);
  std::error_code ec;
  std::vector<char> buf(kChunkBytes);
  for (const auto& entry : fs::directory_iterator(checkpoint_dir, ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    std::ifstream in(entry.path(), std::ios::binary);
    if (!in) return absl::InternalError(absl::StrCat("open ", entry.path().string()));
    const uint64_t size = entry.file_size();
    w.U32(static_cast<uint32_t>(name.size()));
    w.Write(name.data(), name.size());
    w.U64(size);
    uint64_t left = size;
    while (left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
      in.read(buf.data(), static_cast<std::streamsize>(n));
      if (static_cast<size_t>(in.gcount()) != n) {
        return absl::InternalError(absl::StrCat("short read of ", entry.path().string()));
      }
      w.Write(buf.data(), n);
      left -= n;
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("list ", checkpoint_dir, ": ", ec.message()));
  w.U32(0);
  const std::string pad((kAlignBytes - w.written() % kAlignBytes) % kAlignBytes, '\0');
  w.Write(pad.data(), pad.size());
  auto hash = w.Final();
  out.write(reinterpret_cast<const char*>(hash.data()), kHashBytes);
  out.flush();
  if (!out) return absl::InternalError(absl::StrCat("write ", out_file));
  return absl::OkStatus();
}

absl::Status UnpackSnapshot(const std::string& file, const std::string& out_dir) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("open snapshot ", file));
  auto bad = [&](const std::string& why) {
    std::error_code ec;
    fs::remove_all(out_dir, ec);
    return absl::DataLossError(absl::StrCat("snapshot ", file, ": ", why));
  };
  HashedReader r(&in);
  char magic[kMagicBytes];
  if (!r.Read(magic, kMagicBytes) || std::string(magic, kMagicBytes) != kMagic) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot ", file, ": not a ganglion snapshot file"));
  }
  std::error_code ec;
  if (fs::exists(out_dir, ec)) return absl::AlreadyExistsError(out_dir + " exists");
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", out_dir, ": ", ec.message()));
  std::vector<char> buf(kChunkBytes);
  for (;;) {
    uint32_t name_len = 0;
    if (!r.U32(&name_len)) return bad("truncated");
    if (name_len == 0) break;
    if (name_len > kNameBytesMax) return bad("file name too long");
    std::string name(name_len, '\0');
    if (!r.Read(name.data(), name_len)) return bad("truncated");
    if (name.find('/') != std::string::npos || name == "." || name == "..") {
      return bad("bad file name " + name);
    }
    uint64_t size = 0;
    if (!r.U64(&size)) return bad("truncated");
    std::ofstream out(out_dir + "/" + name, std::ios::binary | std::ios::trunc);
    if (!out) return bad("cannot create " + name);
    uint64_t left = size;
    while (left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
      if (!r.Read(buf.data(), n)) return bad("truncated");
      out.write(buf.data(), static_cast<std::streamsize>(n));
      left -= n;
    }
    if (!out) return bad("cannot write " + name);
  }
  std::string pad((kAlignBytes - r.read() % kAlignBytes) % kAlignBytes, '\0');
  if (!r.Read(pad.data(), pad.size())) return bad("truncated");
  auto expected = r.Final();
  std::array<unsigned char, kHashBytes> got{};
  in.read(reinterpret_cast<char*>(got.data()), kHashBytes);
  if (static_cast<size_t>(in.gcount()) != kHashBytes || got != expected) {
    return bad("hash mismatch (damaged or truncated)");
  }
  return absl::OkStatus();
}

}  // namespace ganglion::server
