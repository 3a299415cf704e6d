// API errors as Kubernetes reports them: a `Status` object with an HTTP code,
// a machine-readable reason (NotFound, AlreadyExists, Conflict, Invalid,
// BadRequest, Expired, ...) and a message kubectl prints as is. It must never
// leak an internal error's text as a client mistake: store failures map to
// 5xx unless they mean NotFound/AlreadyExists/Conflict/Expired.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator {

struct ApiError {
  int code = 500;
  std::string reason;  // "" for a plain 500
  std::string message;
  Json details;  // null or {name, group, kind, causes}
};

Json StatusJson(const ApiError& error);
Json SuccessStatusJson(const ResourceType& type, const std::string& name);

ApiError BadRequest(std::string message);
ApiError NotFoundError(const ResourceType& type, const std::string& name);
ApiError NotFoundPath(const std::string& path);
ApiError AlreadyExists(const ResourceType& type, const std::string& name);
ApiError Conflict(const ResourceType& type, const std::string& name, const std::string& why);
ApiError Invalid(const ResourceType& type, const std::string& name, const FieldErrors& errors);
ApiError Expired(std::string message);
ApiError MethodNotSupported(const std::string& resource, const std::string& verb);
ApiError UnsupportedMediaType(const std::string& content_type);
ApiError NotAcceptable();
ApiError TooManyRequests();
ApiError Internal(std::string message);
ApiError Forbidden(const ResourceType& type, const std::string& name, std::string why);

// A store error for an object of `type` named `name`.
ApiError FromStore(const absl::Status& status, const ResourceType& type, const std::string& name);

}  // namespace ganglion::orchestrator
