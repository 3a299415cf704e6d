// pods/<name>/log: the API server does not keep container logs; the node
// agent that runs the pod does. This resolves which agent (the Node's
// InternalIP and daemonEndpoints.kubeletEndpoint.Port) and what to ask it
// (GET /containerLogs/<ns>/<pod>/<container>?...), and fetches an answer
// that is not a follow. A follow is streamed by the HTTP server (api_server.cc).
#pragma once

#include <map>
#include <string>
#include <variant>

#include "orchestrator/api/handler.h"
#include "orchestrator/api/status.h"

namespace ganglion::orchestrator {

// From the pod, its Node and the request's query.
std::variant<LogTarget, ApiError> ResolveLogTarget(const Json& pod, const Json* node,
                                                   const std::map<std::string, std::string>& query);
// A blocking GET of a non-follow target, at most `timeout`; the agent's
// answer as text/plain, or its error as a Status.
HttpResponse FetchLogs(const LogTarget& target, absl::Duration timeout);

}  // namespace ganglion::orchestrator
