#include "orchestrator/api/protobuf.h"

#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace ganglion::orchestrator {

namespace {

constexpr char kEnvelopeMagic[] = {'k', '8', 's', '\0'};
constexpr int kDepthMax = 16;

// A protobuf wire reader over one message's bytes.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  bool Varint(uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64 && pos_ < data_.size(); shift += 7) {
      const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      out |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool Bytes(std::string_view& out) {
    uint64_t n;
    if (!Varint(n) || n > data_.size() - pos_) return false;
    out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // Skips a field of `wire_type` (only the types proto3 uses).
  bool Skip(int wire_type) {
    uint64_t v;
    std::string_view s;
    switch (wire_type) {
      case 0:
        return Varint(v);
      case 1:
        return Advance(8);
      case 2:
        return Bytes(s);
      case 5:
        return Advance(4);
      default:
        return false;
    }
  }

 private:
  bool Advance(size_t n) {
    if (n > data_.size() - pos_) return false;
    pos_ += n;
    return true;
  }
  std::string_view data_;
  size_t pos_ = 0;
};

enum class Kind { kString, kInt, kBool, kBytes, kMessage, kStringMap, kBytesMap, kTime };

struct Message;
struct Field {
  std::string name;
  Kind kind;
  bool repeated = false;
  const Message* message = nullptr;  // for kMessage
};
struct Message {
  std::map<int, Field> fields;
};

const Message& TimeMessage() {  // only for the Kind::kTime decoder's field numbers
  static const Message m{};
  return m;
}

const Message& OwnerReference() {
  static const Message m{{{1, {"kind", Kind::kString}},
                          {3, {"name", Kind::kString}},
                          {4, {"uid", Kind::kString}},
                          {5, {"apiVersion", Kind::kString}},
                          {6, {"controller", Kind::kBool}},
                          {7, {"blockOwnerDeletion", Kind::kBool}}}};
  return m;
}

const Message& ObjectMeta() {
  static const Message m{{{1, {"name", Kind::kString}},
                          {2, {"generateName", Kind::kString}},
                          {3, {"namespace", Kind::kString}},
                          {5, {"uid", Kind::kString}},
                          {6, {"resourceVersion", Kind::kString}},
                          {7, {"generation", Kind::kInt}},
                          {8, {"creationTimestamp", Kind::kTime}},
                          {9, {"deletionTimestamp", Kind::kTime}},
                          {10, {"deletionGracePeriodSeconds", Kind::kInt}},
                          {11, {"labels", Kind::kStringMap}},
                          {12, {"annotations", Kind::kStringMap}},
                          {13, {"ownerReferences", Kind::kMessage, true, &OwnerReference()}},
                          {14, {"finalizers", Kind::kString, true}}}};
  return m;
}

const Message& NamespaceSpec() {
  static const Message m{{{1, {"finalizers", Kind::kString, true}}}};
  return m;
}

const Message& Namespace() {
  static const Message m{{{1, {"metadata", Kind::kMessage, false, &ObjectMeta()}},
                          {2, {"spec", Kind::kMessage, false, &NamespaceSpec()}}}};
  return m;
}

const Message& ConfigMap() {
  static const Message m{{{1, {"metadata", Kind::kMessage, false, &ObjectMeta()}},
                          {2, {"data", Kind::kStringMap}},
                          {3, {"binaryData", Kind::kBytesMap}},
                          {4, {"immutable", Kind::kBool}}}};
  return m;
}

absl::Status Malformed() {
  return absl::InvalidArgumentError("malformed protobuf message");
}

absl::StatusOr<Json> Decode(std::string_view data, const Message& message, int depth);

absl::StatusOr<std::pair<std::string, std::string>> MapEntry(std::string_view data) {
  Reader r(data);
  std::pair<std::string, std::string> kv;
  while (!r.done()) {
    uint64_t tag;
    if (!r.Varint(tag)) return Malformed();
    std::string_view s;
    if ((tag & 7) != 2) {
      if (!r.Skip(tag & 7)) return Malformed();
      continue;
    }
    if (!r.Bytes(s)) return Malformed();
    if ((tag >> 3) == 1) kv.first = std::string(s);
    if ((tag >> 3) == 2) kv.second = std::string(s);
  }
  return kv;
}

absl::StatusOr<std::string> TimeOf(std::string_view data) {
  Reader r(data);
  int64_t seconds = 0;
  while (!r.done()) {
    uint64_t tag, v;
    if (!r.Varint(tag)) return Malformed();
    if ((tag & 7) != 0) {
      if (!r.Skip(tag & 7)) return Malformed();
      continue;
    }
    if (!r.Varint(v)) return Malformed();
    if ((tag >> 3) == 1) seconds = static_cast<int64_t>(v);
  }
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(seconds),
                          absl::UTCTimeZone());
}

absl::StatusOr<Json> Decode(std::string_view data, const Message& message, int depth) {
  if (depth > kDepthMax) return Malformed();
  Json out = Json::object();
  Reader r(data);
  while (!r.done()) {
    uint64_t tag;
    if (!r.Varint(tag)) return Malformed();
    const int number = static_cast<int>(tag >> 3);
    const int wire = static_cast<int>(tag & 7);
    auto it = message.fields.find(number);
    if (it == message.fields.end()) {
      if (!r.Skip(wire)) return Malformed();
      continue;
    }
    const Field& f = it->second;
    Json value;
    if (f.kind == Kind::kInt || f.kind == Kind::kBool) {
      uint64_t v;
      if (wire != 0 || !r.Varint(v)) return Malformed();
      value = f.kind == Kind::kBool ? Json(v != 0) : Json(static_cast<int64_t>(v));
    } else {
      std::string_view s;
      if (wire != 2 || !r.Bytes(s)) return Malformed();
      switch (f.kind) {
        case Kind::kString:
          value = std::string(s);
          break;
        case Kind::kBytes:
          value = absl::Base64Escape(std::string(s));
          break;
        case Kind::kTime: {
          auto t = TimeOf(s);
          if (!t.ok()) return t.status();
          value = *t;
          break;
        }
        case Kind::kMessage: {
          auto m = Decode(s, *f.message, depth + 1);
          if (!m.ok()) return m.status();
          value = *std::move(m);
          break;
        }
        case Kind::kStringMap:
        case Kind::kBytesMap: {
          auto kv = MapEntry(s);
          if (!kv.ok()) return kv.status();
          out[f.name][kv->first] =
              f.kind == Kind::kBytesMap ? absl::Base64Escape(kv->second) : kv->second;
          continue;
        }
        default:
          return Malformed();
      }
    }
    if (f.repeated) {
      out[f.name].push_back(std::move(value));
    } else {
      out[f.name] = std::move(value);
    }
  }
  (void)TimeMessage;
  return out;
}

}  // namespace

absl::StatusOr<Json> DecodeProtobufObject(const std::string& body) {
  if (body.size() < sizeof(kEnvelopeMagic) ||
      body.compare(0, sizeof(kEnvelopeMagic), std::string(kEnvelopeMagic, 4)) != 0) {
    return absl::InvalidArgumentError("the protobuf body lacks the k8s envelope");
  }
  Reader r(std::string_view(body).substr(sizeof(kEnvelopeMagic)));
  std::string api_version, kind;
  std::string_view raw;
  while (!r.done()) {
    uint64_t tag;
    if (!r.Varint(tag)) return Malformed();
    std::string_view s;
    if ((tag & 7) != 2) {
      if (!r.Skip(tag & 7)) return Malformed();
      continue;
    }
    if (!r.Bytes(s)) return Malformed();
    if ((tag >> 3) == 1) {  // TypeMeta
      Reader t(s);
      while (!t.done()) {
        uint64_t ttag;
        std::string_view ts;
        if (!t.Varint(ttag) || (ttag & 7) != 2 || !t.Bytes(ts)) return Malformed();
        if ((ttag >> 3) == 1) api_version = std::string(ts);
        if ((ttag >> 3) == 2) kind = std::string(ts);
      }
    } else if ((tag >> 3) == 2) {
      raw = s;
    }
  }
  const Message* message = nullptr;
  if (api_version == "v1" && kind == "Namespace") message = &Namespace();
  if (api_version == "v1" && kind == "ConfigMap") message = &ConfigMap();
  if (message == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat("protobuf bodies of ", api_version, "/", kind, " are not supported"));
  }
  auto object = Decode(raw, *message, 0);
  if (!object.ok()) return object.status();
  (*object)["apiVersion"] = api_version;
  (*object)["kind"] = kind;
  return object;
}

}  // namespace ganglion::orchestrator
