#include "orchestrator/api/protobuf.h"

#include <cstring>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace ganglion::orchestrator {

namespace {

constexpr char kEnvelopeMagic[] = {'k', '8', 's', '\0'};

enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

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
  bool Fixed64(uint64_t& out) {
    if (8 > data_.size() - pos_) return false;
    out = 0;
    for (int i = 7; i >= 0; --i) out = (out << 8) | static_cast<uint8_t>(data_[pos_ + i]);
    pos_ += 8;
    return true;
  }
  bool Bytes(std::string_view& out) {
    uint64_t n;
    if (!Varint(n) || n > data_.size() - pos_) return false;
    out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // Skips a field of `wire_type` (only the types proto2/proto3 still use).
  bool Skip(int wire_type) {
    uint64_t v;
    std::string_view s;
    switch (wire_type) {
      case kVarint:
        return Varint(v);
      case kFixed64:
        return Advance(8);
      case kLengthDelimited:
        return Bytes(s);
      case kFixed32:
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

absl::Status Malformed(const std::string& where) {
  return absl::InvalidArgumentError(absl::StrCat("malformed protobuf message at ", where));
}

absl::StatusOr<Json> DecodeMessage(std::string_view data, const TypeSchema& type, int depth,
                                   const std::string& where);

// {seconds = 1, nanos = 2}; nullopt when both are zero (an unset time).
absl::StatusOr<std::optional<std::string>> DecodeTime(std::string_view data, bool micro,
                                                      const std::string& where) {
  Reader r(data);
  int64_t seconds = 0;
  int64_t nanos = 0;
  while (!r.done()) {
    uint64_t tag, v;
    if (!r.Varint(tag)) return Malformed(where);
    if ((tag & 7) != kVarint) {
      if (!r.Skip(tag & 7)) return Malformed(where);
      continue;
    }
    if (!r.Varint(v)) return Malformed(where);
    if ((tag >> 3) == 1) seconds = static_cast<int64_t>(v);
    if ((tag >> 3) == 2) nanos = static_cast<int32_t>(v);
  }
  if (seconds == 0 && nanos == 0) return std::nullopt;
  const absl::Time t = absl::FromUnixSeconds(seconds) + absl::Nanoseconds(nanos);
  return absl::FormatTime(micro ? "%Y-%m-%dT%H:%M:%E6SZ" : "%Y-%m-%dT%H:%M:%SZ", t,
                          absl::UTCTimeZone());
}

// The JSON of one value of `field` whose wire bytes/number are given.
// nullopt: the value is "unset" and is omitted from the JSON.
absl::StatusOr<std::optional<Json>> DecodeValue(const FieldSchema& field, int wire, uint64_t number,
                                                std::string_view bytes, int depth,
                                                const std::string& where) {
  const bool length_delimited = wire == kLengthDelimited;
  switch (field.type) {
    case ValueType::kInt32:
      if (wire != kVarint) return Malformed(where);
      return Json(static_cast<int32_t>(number));
    case ValueType::kInt64:
      if (wire != kVarint) return Malformed(where);
      return Json(static_cast<int64_t>(number));
    case ValueType::kBool:
      if (wire != kVarint) return Malformed(where);
      return Json(number != 0);
    case ValueType::kDouble: {
      if (wire != kFixed64) return Malformed(where);
      double d;
      static_assert(sizeof(d) == sizeof(number));
      std::memcpy(&d, &number, sizeof(d));
      return Json(d);
    }
    case ValueType::kString:
      if (!length_delimited) return Malformed(where);
      return Json(std::string(bytes));
    case ValueType::kBytes:
      if (!length_delimited) return Malformed(where);
      return Json(absl::Base64Escape(std::string(bytes)));
    case ValueType::kObject: {
      if (!length_delimited) return Malformed(where);
      const TypeSchema* type = FindTypeSchema(field.object_type);
      if (type == nullptr) {
        return absl::InternalError("no schema for " + std::string(field.object_type));
      }
      auto m = DecodeMessage(bytes, *type, depth + 1, where);
      if (!m.ok()) return m.status();
      return std::optional<Json>(*std::move(m));
    }
    case ValueType::kQuantity: {
      if (!length_delimited) return Malformed(where);
      Reader r(bytes);
      std::string text;
      while (!r.done()) {
        uint64_t tag;
        std::string_view s;
        if (!r.Varint(tag)) return Malformed(where);
        if ((tag >> 3) == 1 && (tag & 7) == kLengthDelimited) {
          if (!r.Bytes(s)) return Malformed(where);
          text = std::string(s);
        } else if (!r.Skip(tag & 7)) {
          return Malformed(where);
        }
      }
      return Json(text);
    }
    case ValueType::kIntOrString: {
      if (!length_delimited) return Malformed(where);
      Reader r(bytes);
      uint64_t kind = 0, int_value = 0;
      std::string str_value;
      while (!r.done()) {
        uint64_t tag;
        std::string_view s;
        if (!r.Varint(tag)) return Malformed(where);
        const uint64_t n = tag >> 3;
        if ((n == 1 || n == 2) && (tag & 7) == kVarint) {
          if (!r.Varint(n == 1 ? kind : int_value)) return Malformed(where);
        } else if (n == 3 && (tag & 7) == kLengthDelimited) {
          if (!r.Bytes(s)) return Malformed(where);
          str_value = std::string(s);
        } else if (!r.Skip(tag & 7)) {
          return Malformed(where);
        }
      }
      if (kind == 1) return Json(str_value);
      return Json(static_cast<int32_t>(int_value));
    }
    case ValueType::kTime:
    case ValueType::kMicroTime: {
      if (!length_delimited) return Malformed(where);
      auto t = DecodeTime(bytes, field.type == ValueType::kMicroTime, where);
      if (!t.ok()) return t.status();
      if (!t->has_value()) return std::optional<Json>();
      return Json(**t);
    }
    case ValueType::kRawJson: {
      if (!length_delimited) return Malformed(where);
      Reader r(bytes);
      std::string_view raw;
      while (!r.done()) {
        uint64_t tag;
        if (!r.Varint(tag)) return Malformed(where);
        if ((tag >> 3) == 1 && (tag & 7) == kLengthDelimited) {
          if (!r.Bytes(raw)) return Malformed(where);
        } else if (!r.Skip(tag & 7)) {
          return Malformed(where);
        }
      }
      if (raw.empty()) return std::optional<Json>();
      Json j = Json::parse(raw, nullptr, false);
      if (j.is_discarded()) {
        return absl::InvalidArgumentError(
            absl::StrCat("the raw value at ", where, " is not JSON (only JSON is accepted)"));
      }
      return std::optional<Json>(std::move(j));
    }
  }
  return Malformed(where);
}

bool IsZero(const Json& v) {
  return (v.is_string() && v.get_ref<const std::string&>().empty()) ||
         (v.is_number_integer() && v.get<int64_t>() == 0) ||
         (v.is_number_float() && v.get<double>() == 0.0) || (v.is_boolean() && !v.get<bool>());
}

// A map entry {key = 1, value = 2}.
absl::Status DecodeMapEntry(const FieldSchema& field, std::string_view data, int depth,
                            const std::string& where, Json& map) {
  Reader r(data);
  std::string key;
  std::optional<Json> value;
  while (!r.done()) {
    uint64_t tag, number = 0;
    if (!r.Varint(tag)) return Malformed(where);
    const int wire = static_cast<int>(tag & 7);
    std::string_view bytes;
    if (wire == kVarint) {
      if (!r.Varint(number)) return Malformed(where);
    } else if (wire == kFixed64) {
      if (!r.Fixed64(number)) return Malformed(where);
    } else if (wire == kLengthDelimited) {
      if (!r.Bytes(bytes)) return Malformed(where);
    } else if (!r.Skip(wire)) {
      return Malformed(where);
    }
    if ((tag >> 3) == 1) {
      if (wire != kLengthDelimited) return Malformed(where);
      key = std::string(bytes);
    } else if ((tag >> 3) == 2) {
      auto v = DecodeValue(field, wire, number, bytes, depth, absl::StrCat(where, ".", key));
      if (!v.ok()) return v.status();
      value = *std::move(v);
    }
  }
  // An absent value is the value type's zero: {} for messages, "0" for
  // quantities, "" for strings and bytes.
  if (!value.has_value()) {
    value = field.type == ValueType::kObject     ? Json::object()
            : field.type == ValueType::kQuantity ? Json("0")
                                                 : Json("");
  }
  map[key] = *std::move(value);
  return absl::OkStatus();
}

absl::StatusOr<Json> DecodeMessage(std::string_view data, const TypeSchema& type, int depth,
                                   const std::string& where) {
  if (depth > kProtobufDepthMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("protobuf message nested deeper than ", kProtobufDepthMax, " at ", where));
  }
  Json out = Json::object();
  Reader r(data);
  while (!r.done()) {
    uint64_t tag;
    if (!r.Varint(tag)) return Malformed(where);
    const int number = static_cast<int>(tag >> 3);
    const int wire = static_cast<int>(tag & 7);
    const FieldSchema* field = nullptr;
    for (const FieldSchema& f : type.fields) {
      if (f.proto_number == number && number != 0) field = &f;
    }
    if (field == nullptr) {  // a field this server's schema does not know: skipped
      if (!r.Skip(wire)) return Malformed(where);
      continue;
    }
    const std::string path =
        where.empty() ? std::string(field->json_name) : where + "." + std::string(field->json_name);
    uint64_t scalar = 0;
    std::string_view bytes;
    if (wire == kVarint) {
      if (!r.Varint(scalar)) return Malformed(path);
    } else if (wire == kFixed64) {
      if (!r.Fixed64(scalar)) return Malformed(path);
    } else if (wire == kLengthDelimited) {
      if (!r.Bytes(bytes)) return Malformed(path);
    } else {
      return Malformed(path);
    }
    const std::string name(field->json_name);
    switch (field->shape) {
      case Shape::kMap: {
        if (wire != kLengthDelimited) return Malformed(path);
        if (!out[name].is_object()) out[name] = Json::object();
        if (auto s = DecodeMapEntry(*field, bytes, depth + 1, path, out[name]); !s.ok()) return s;
        break;
      }
      case Shape::kInline: {
        auto v = DecodeValue(*field, wire, scalar, bytes, depth, where);
        if (!v.ok()) return v.status();
        if (v->has_value()) {
          for (auto& [k, x] : (*v)->items()) out[k] = x;
        }
        break;
      }
      case Shape::kList: {
        const bool packable = field->type == ValueType::kInt32 ||
                              field->type == ValueType::kInt64 || field->type == ValueType::kBool ||
                              field->type == ValueType::kDouble;
        if (!out[name].is_array()) out[name] = Json::array();
        if (packable && wire == kLengthDelimited) {  // a packed repeated scalar
          Reader packed(bytes);
          while (!packed.done()) {
            uint64_t element;
            const int element_wire = field->type == ValueType::kDouble ? kFixed64 : kVarint;
            if (!(element_wire == kFixed64 ? packed.Fixed64(element) : packed.Varint(element))) {
              return Malformed(path);
            }
            auto v = DecodeValue(*field, element_wire, element, {}, depth, path);
            if (!v.ok()) return v.status();
            out[name].push_back(v->value_or(Json()));
          }
          break;
        }
        auto v = DecodeValue(*field, wire, scalar, bytes, depth,
                             absl::StrCat(path, "[", out[name].size(), "]"));
        if (!v.ok()) return v.status();
        out[name].push_back(v->value_or(Json()));
        break;
      }
      case Shape::kOne: {
        auto v = DecodeValue(*field, wire, scalar, bytes, depth, path);
        if (!v.ok()) return v.status();
        if (!v->has_value()) {
          out.erase(name);
        } else if (IsZero(**v) && !field->Has(kPointer) && field->Has(kOmitEmpty)) {
          out.erase(name);  // proto2 carries a plain field's zero; Go's JSON omits it
        } else {
          out[name] = **std::move(v);
        }
        break;
      }
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<Json> DecodeProtobufMessage(std::string_view data, const TypeSchema& type) {
  return DecodeMessage(data, type, 0, "");
}

absl::StatusOr<Json> DecodeProtobufObject(const std::string& body) {
  if (body.size() < sizeof(kEnvelopeMagic) ||
      body.compare(0, sizeof(kEnvelopeMagic), std::string(kEnvelopeMagic, 4)) != 0) {
    return absl::InvalidArgumentError("the protobuf body lacks the k8s envelope");
  }
  // runtime.Unknown: typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2,
  // contentEncoding = 3, contentType = 4.
  Reader r(std::string_view(body).substr(sizeof(kEnvelopeMagic)));
  std::string api_version, kind, content_encoding;
  std::string_view raw;
  while (!r.done()) {
    uint64_t tag;
    if (!r.Varint(tag)) return Malformed("the envelope");
    std::string_view s;
    if ((tag & 7) != kLengthDelimited) {
      if (!r.Skip(tag & 7)) return Malformed("the envelope");
      continue;
    }
    if (!r.Bytes(s)) return Malformed("the envelope");
    if ((tag >> 3) == 1) {
      Reader t(s);
      while (!t.done()) {
        uint64_t ttag;
        std::string_view ts;
        if (!t.Varint(ttag) || (ttag & 7) != kLengthDelimited || !t.Bytes(ts)) {
          return Malformed("the envelope's typeMeta");
        }
        if ((ttag >> 3) == 1) api_version = std::string(ts);
        if ((ttag >> 3) == 2) kind = std::string(ts);
      }
    } else if ((tag >> 3) == 2) {
      raw = s;
    } else if ((tag >> 3) == 3) {
      content_encoding = std::string(s);
    }
  }
  if (!content_encoding.empty()) {
    return absl::UnimplementedError(
        absl::StrCat("protobuf bodies with contentEncoding \"", content_encoding, "\""));
  }
  const size_t slash = api_version.find('/');
  const std::string group = slash == std::string::npos ? "" : api_version.substr(0, slash);
  const std::string version =
      slash == std::string::npos ? api_version : api_version.substr(slash + 1);
  const TypeSchema* type = kind.empty() ? nullptr : SchemaOfKind(group, version, kind);
  if (type == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat("protobuf bodies of ", api_version, "/", kind, " are not supported"));
  }
  auto object = DecodeMessage(raw, *type, 0, "");
  if (!object.ok()) return object.status();
  (*object)["apiVersion"] = api_version;
  (*object)["kind"] = kind;
  return object;
}

}  // namespace ganglion::orchestrator
