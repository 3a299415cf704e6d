#include "orchestrator/api/status.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ganglion::orchestrator {

namespace {

Json Details(const ResourceType& type, const std::string& name) {
  Json d = {{"name", name}, {"kind", type.plural}};
  if (!type.group.empty()) d["group"] = type.group;
  return d;
}

}  // namespace

Json StatusJson(const ApiError& error) {
  Json s = {{"kind", "Status"},    {"apiVersion", "v1"},       {"metadata", Json::object()},
            {"status", "Failure"}, {"message", error.message}, {"code", error.code}};
  if (!error.reason.empty()) s["reason"] = error.reason;
  if (!error.details.is_null()) s["details"] = error.details;
  return s;
}

Json SuccessStatusJson(const ResourceType& type, const std::string& name) {
  Json d = Details(type, name);
  return {{"kind", "Status"},
          {"apiVersion", "v1"},
          {"metadata", Json::object()},
          {"status", "Success"},
          {"details", d}};
}

ApiError BadRequest(std::string message) {
  return {400, "BadRequest", std::move(message), {}};
}

ApiError NotFoundError(const ResourceType& type, const std::string& name) {
  return {404, "NotFound", absl::StrCat(type.QualifiedResource(), " \"", name, "\" not found"),
          Details(type, name)};
}

ApiError NotFoundPath(const std::string& path) {
  return {404, "NotFound", absl::StrCat("the server could not find the requested resource"),
          Json{{"causes", Json::array({{{"reason", "UnexpectedServerResponse"},
                                        {"message", "404 page not found: " + path}}})}}};
}

ApiError AlreadyExists(const ResourceType& type, const std::string& name) {
  return {409, "AlreadyExists",
          absl::StrCat(type.QualifiedResource(), " \"", name, "\" already exists"),
          Details(type, name)};
}

ApiError Conflict(const ResourceType& type, const std::string& name, const std::string& why) {
  return {409, "Conflict",
          absl::StrCat("Operation cannot be fulfilled on ", type.QualifiedResource(), " \"", name,
                       "\": ", why),
          Details(type, name)};
}

ApiError Invalid(const ResourceType& type, const std::string& name, const FieldErrors& errors) {
  Json causes = Json::array();
  std::vector<std::string> parts;
  for (const FieldError& e : errors) {
    causes.push_back({{"reason", e.reason}, {"message", e.message}, {"field", e.field}});
    parts.push_back(absl::StrCat(e.field, ": ", e.message));
  }
  Json details = {{"name", name}, {"kind", type.kind}, {"causes", causes}};
  if (!type.group.empty()) details["group"] = type.group;
  std::string message = absl::StrCat(type.kind, " \"", name, "\" is invalid: ");
  if (parts.size() == 1) {
    absl::StrAppend(&message, parts[0]);
  } else {
    absl::StrAppend(&message, "[", absl::StrJoin(parts, ", "), "]");
  }
  return {422, "Invalid", message, details};
}

ApiError Expired(std::string message) {
  return {410, "Expired", std::move(message), {}};
}

ApiError MethodNotSupported(const std::string& resource, const std::string& verb) {
  return {405,
          "MethodNotAllowed",
          absl::StrCat(verb, " is not supported on resources of kind \"", resource, "\""),
          {}};
}

ApiError UnsupportedMediaType(const std::string& content_type) {
  return {415,
          "UnsupportedMediaType",
          absl::StrCat("the body of the request was in an unknown format - accepted media types "
                       "include: application/json-patch+json, application/merge-patch+json, "
                       "application/strategic-merge-patch+json (got \"",
                       content_type, "\")"),
          {}};
}

ApiError NotAcceptable() {
  return {406,
          "NotAcceptable",
          "only the following media types are accepted: application/json, "
          "application/json;as=Table;v=v1;g=meta.k8s.io",
          {}};
}

ApiError TooManyRequests() {
  return {429, "TooManyRequests", "Too many requests, please try again later.",
          Json{{"retryAfterSeconds", 1}}};
}

ApiError Internal(std::string message) {
  return {500, "InternalError", absl::StrCat("Internal error occurred: ", message), {}};
}

ApiError Forbidden(const ResourceType& type, const std::string& name, std::string why) {
  return {403, "Forbidden",
          absl::StrCat(type.QualifiedResource(), " \"", name, "\" is forbidden: ", why),
          Details(type, name)};
}

ApiError FromStore(const absl::Status& status, const ResourceType& type, const std::string& name) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return NotFoundError(type, name);
    case absl::StatusCode::kAlreadyExists:
      return AlreadyExists(type, name);
    case absl::StatusCode::kAborted:
      return Conflict(type, name,
                      "the object has been modified; please apply your changes to the latest "
                      "version and try again");
    case absl::StatusCode::kOutOfRange:
      return Expired(absl::StrCat("too old resource version: ", status.message()));
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return {503, "ServiceUnavailable",
              absl::StrCat("the storage is unavailable: ", status.message()),
              Json{{"retryAfterSeconds", 1}}};
    default:
      return Internal(std::string(status.message()));
  }
}

}  // namespace ganglion::orchestrator
