#include "orchestrator/api/patch.h"

#include <algorithm>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "orchestrator/types/schema.h"

namespace ganglion::orchestrator {

namespace {

constexpr absl::string_view kPatchDirective = "$patch";
constexpr absl::string_view kRetainKeys = "$retainKeys";
constexpr absl::string_view kSetElementOrder = "$setElementOrder/";
constexpr absl::string_view kDeleteFromPrimitiveList = "$deleteFromPrimitiveList/";
// Nesting deeper than any served type, so a hostile patch cannot exhaust the stack.
constexpr int kDepthMax = 64;

// Where in the object a merge is: the schema of the object being merged, or
// of the values of the map being merged. Both null: no schema (a patch there
// merges maps and replaces lists, like a JSON merge patch).
struct Context {
  const TypeSchema* object = nullptr;
  const TypeSchema* map_values = nullptr;
};

// The schema of `field` of the object `ctx` describes, or null.
const FieldSchema* FieldOf(const Context& ctx, std::string_view field) {
  return ctx.object == nullptr ? nullptr : FindField(*ctx.object, field);
}

// The context of the value under key `key` of the object or map `ctx` describes.
Context Enter(const Context& ctx, std::string_view key) {
  if (ctx.map_values != nullptr) return Context{ctx.map_values, nullptr};
  const FieldSchema* f = FieldOf(ctx, key);
  if (f == nullptr || f->type != ValueType::kObject) return Context{};
  const TypeSchema* type = FindTypeSchema(f->object_type);
  if (f->shape == Shape::kMap) return Context{nullptr, type};
  if (f->shape == Shape::kList) return Context{};  // lists are merged by MergeList
  return Context{type, nullptr};
}

// The merge key of list field `field`, or nullopt for a list a patch
// replaces whole (or, for "merge" lists of scalars, merges as a set).
std::optional<std::string> MergeKey(const Context& ctx, std::string_view field) {
  const FieldSchema* f = FieldOf(ctx, field);
  if (f == nullptr || f->merge_key.empty() ||
      f->patch_strategy.find("merge") == std::string_view::npos) {
    return std::nullopt;
  }
  return std::string(f->merge_key);
}

// Lists of scalars that a patch merges into (set union) instead of replacing.
bool IsMergedPrimitiveList(const Context& ctx, std::string_view field) {
  const FieldSchema* f = FieldOf(ctx, field);
  return f != nullptr && f->shape == Shape::kList && f->type != ValueType::kObject &&
         f->patch_strategy.find("merge") != std::string_view::npos;
}

bool IsDirectiveKey(absl::string_view key) {
  return key == kPatchDirective || key == kRetainKeys || absl::StartsWith(key, kSetElementOrder) ||
         absl::StartsWith(key, kDeleteFromPrimitiveList);
}

// Removes directives from a value that has nothing to merge with.
Json Strip(const Json& v) {
  if (v.is_object()) {
    Json out = Json::object();
    for (auto& [k, x] : v.items()) {
      if (!IsDirectiveKey(k) && !x.is_null()) out[k] = Strip(x);
    }
    return out;
  }
  if (v.is_array()) {
    Json out = Json::array();
    for (const Json& x : v) {
      if (x.is_object() && x.contains(std::string(kPatchDirective))) continue;
      out.push_back(Strip(x));
    }
    return out;
  }
  return v;
}

absl::StatusOr<std::optional<Json>> MergeMap(const Json& original, const Json& patch,
                                             const Context& ctx, int depth);

absl::StatusOr<Json> MergeList(const Json& original, const Json& patch, const Context& ctx,
                               std::string_view field, int depth) {
  // A {"$patch": "replace"} element: the rest of the patch is the new list.
  for (const Json& e : patch) {
    if (e.is_object() && e.value(std::string(kPatchDirective), "") == "replace") {
      Json rest = Json::array();
      for (const Json& x : patch) {
        if (!(x.is_object() && x.contains(std::string(kPatchDirective)))) rest.push_back(Strip(x));
      }
      return rest;
    }
  }
  const Json base = original.is_array() ? original : Json::array();
  if (IsMergedPrimitiveList(ctx, field)) {
    Json out = base;
    for (const Json& e : patch) {
      if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
    }
    return out;
  }
  const std::optional<std::string> key = MergeKey(ctx, field);
  if (!key.has_value()) return Strip(patch);
  Json out = base;
  const FieldSchema* list_field = FieldOf(ctx, field);
  Context element{FindTypeSchema(list_field->object_type), nullptr};
  for (const Json& e : patch) {
    if (!e.is_object() || !e.contains(*key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("map: ", e.dump(), " does not contain declared merge key: ", *key));
    }
    auto same = [&](const Json& x) {
      return x.is_object() && x.contains(*key) && x[*key] == e[*key];
    };
    if (e.value(std::string(kPatchDirective), "") == "delete") {
      out.erase(std::remove_if(out.begin(), out.end(), same), out.end());
      continue;
    }
    auto it = std::find_if(out.begin(), out.end(), same);
    auto merged = MergeMap(it == out.end() ? Json::object() : *it, e, element, depth + 1);
    if (!merged.ok()) return merged.status();
    if (!merged->has_value()) {
      if (it != out.end()) out.erase(it);
    } else if (it == out.end()) {
      out.push_back(**merged);
    } else {
      *it = **merged;
    }
  }
  return out;
}

// Orders `list` by `order` (elements or {key: value} maps); elements the
// order does not name keep their relative order after the named ones.
Json Reorder(const Json& list, const Json& order, const std::optional<std::string>& key) {
  if (!list.is_array() || !order.is_array()) return list;
  auto rank = [&](const Json& e) -> size_t {
    for (size_t i = 0; i < order.size(); ++i) {
      if (key.has_value()) {
        if (e.is_object() && order[i].is_object() && e.contains(*key) && order[i].contains(*key) &&
            e[*key] == order[i][*key]) {
          return i;
        }
      } else if (e == order[i]) {
        return i;
      }
    }
    return order.size();
  };
  std::vector<Json> items(list.begin(), list.end());
  std::stable_sort(items.begin(), items.end(),
                   [&](const Json& a, const Json& b) { return rank(a) < rank(b); });
  return Json(items);
}

// nullopt: the map is deleted ($patch: delete).
absl::StatusOr<std::optional<Json>> MergeMap(const Json& original, const Json& patch,
                                             const Context& ctx, int depth) {
  if (depth > kDepthMax) return absl::InvalidArgumentError("patch nested too deeply");
  if (!patch.is_object()) return std::optional<Json>(patch);
  const std::string directive = patch.value(std::string(kPatchDirective), "");
  if (directive == "delete") return std::optional<Json>();
  if (directive == "replace") return std::optional<Json>(Strip(patch));
  if (!directive.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("Unknown patch type: ", directive));
  }
  Json out = original.is_object() ? original : Json::object();
  for (auto& [k, v] : patch.items()) {
    if (IsDirectiveKey(k)) continue;
    if (v.is_null()) {
      out.erase(k);
    } else if (v.is_object()) {
      Context child = Enter(ctx, k);
      auto merged = MergeMap(out.contains(k) ? out[k] : Json::object(), v, child, depth + 1);
      if (!merged.ok()) return merged.status();
      if (merged->has_value()) {
        out[k] = **merged;
      } else {
        out.erase(k);
      }
    } else if (v.is_array()) {
      auto merged = MergeList(out.contains(k) ? out[k] : Json(), v, ctx, k, depth + 1);
      if (!merged.ok()) return merged.status();
      out[k] = *merged;
    } else {
      out[k] = v;
    }
  }
  for (auto& [k, v] : patch.items()) {
    if (absl::StartsWith(k, kDeleteFromPrimitiveList)) {
      const std::string field = k.substr(kDeleteFromPrimitiveList.size());
      if (out.contains(field) && out[field].is_array() && v.is_array()) {
        Json kept = Json::array();
        for (const Json& e : out[field]) {
          if (std::find(v.begin(), v.end(), e) == v.end()) kept.push_back(e);
        }
        out[field] = kept;
      }
    }
  }
  for (auto& [k, v] : patch.items()) {
    if (absl::StartsWith(k, kSetElementOrder)) {
      const std::string field = k.substr(kSetElementOrder.size());
      if (out.contains(field)) out[field] = Reorder(out[field], v, MergeKey(ctx, field));
    }
  }
  if (auto it = patch.find(std::string(kRetainKeys)); it != patch.end()) {
    if (!it->is_array()) return absl::InvalidArgumentError("$retainKeys must be a list");
    Json kept = Json::object();
    for (auto& [k, v] : out.items()) {
      if (std::find(it->begin(), it->end(), Json(k)) != it->end()) kept[k] = v;
    }
    out = kept;
  }
  return std::optional<Json>(out);
}

}  // namespace

absl::StatusOr<Json> ApplyJsonPatch(const Json& document, const Json& patch) {
  if (!patch.is_array()) return absl::InvalidArgumentError("a JSON patch must be a list");
  try {
    return document.patch(patch);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("the JSON patch cannot be applied: ", e.what()));
  }
}

absl::StatusOr<Json> ApplyMergePatch(const Json& document, const Json& patch) {
  Json out = document;
  out.merge_patch(patch);
  return out;
}

absl::StatusOr<Json> ApplyStrategicMergePatch(const Json& document, const Json& patch,
                                              std::string_view kind) {
  if (!patch.is_object()) {
    return absl::InvalidArgumentError("a strategic merge patch must be a JSON object");
  }
  const TypeSchema* schema = nullptr;
  if (kind == "Scale") schema = SchemaOfKind("autoscaling", "v1", "Scale");
  for (const ResourceType& t : AllResourceTypes()) {
    if (schema == nullptr && t.kind == kind) schema = SchemaOfKind(t.group, t.version, t.kind);
  }
  auto merged = MergeMap(document, patch, Context{schema, nullptr}, 0);
  if (!merged.ok()) return merged.status();
  if (!merged->has_value()) return absl::InvalidArgumentError("the patch deletes the object");
  return **merged;
}

}  // namespace ganglion::orchestrator
